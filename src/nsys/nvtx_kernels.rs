//! The `nvtx-kernels` report (`nvtx_kern_sum`): every kernel counted in
//! every NVTX range that encloses its launch, grouped by (range name and
//! style, thread, kernel name).
//!
//! A kernel sits in several ranges at once (a step, a layer, an op), so a
//! duration pushed into each enclosing group made this the report with the
//! most list writes: 17.4 M into about 2,200 lists on the SYNTHETIC 1 GB
//! export, for 5.9 M kernels. Instead, each kernel's duration goes once into
//! its *signature*: its kernel name under its sequence of range keys. A
//! group's durations are then the lists of the signatures that hold its
//! range key, gathered once when its statistics are taken. The gathered
//! order is signature by signature, not kernel by kernel, which moves a
//! standard deviation only in its last bits (about 1e-14 of it).
//!
//! A group's range instances are counted from the runs of enclosing ranges
//! each signature met, in kernel order; see [`range_instances`].

use super::launch_index::LaunchIndex;
use super::nvtx_index::NvtxIndex;
use super::slots::{DenseIds, GroupTable};
use super::trace::{global_id, NameStyle, RangeStyle, Trace};
use crate::stats::{DurationList, DurationStats};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;

/// One row of the `nvtx-kernels` report (`nvtx_kern_sum`).
#[derive(Debug, Clone, Serialize)]
pub struct NvtxKernelSummary {
    /// `None` for kernels launched outside every range.
    pub range: Option<String>,
    pub style: Option<RangeStyle>,
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    /// Range instances that held these kernels.
    pub range_instances: u64,
    /// Distinct kernel launches.
    pub kernel_instances: u64,
    pub kernel: String,
    /// Over (range instance, kernel) pairs, like NVIDIA's query.
    #[serde(flatten)]
    pub time: DurationStats,
}

/// A group's range part: range name and style, thread. `None` for the
/// kernels outside every range.
type RangeKey = (Option<(u32, RangeStyle)>, Option<i64>);

const NONE: u32 = u32::MAX;

/// Dense numbers for range keys, cached per range instance: reading the
/// range row (and the launching call's thread) for every kernel was a
/// cache miss each at 1 GB.
struct RangeKeys {
    numbers: HashMap<RangeKey, u32>,
    keys: Vec<RangeKey>,
    of_range: Vec<u32>,
}

impl RangeKeys {
    fn new(ranges: usize) -> RangeKeys {
        RangeKeys {
            numbers: HashMap::default(),
            keys: Vec::new(),
            of_range: vec![NONE; ranges],
        }
    }

    fn number(&mut self, key: RangeKey) -> u32 {
        let next = self.keys.len() as u32;
        let rk = *self.numbers.entry(key).or_insert(next);
        if rk == next {
            self.keys.push(key);
        }
        rk
    }

    /// The key number of range instance `r`; `key` is called only the first
    /// time `r` is seen.
    fn of_range(&mut self, r: u32, key: impl FnOnce() -> RangeKey) -> u32 {
        match self.of_range[r as usize] {
            NONE => {
                let rk = self.number(key());
                self.of_range[r as usize] = rk;
                rk
            }
            rk => rk,
        }
    }
}

/// Sequences of range keys as nodes of a trie: node 0 is the empty
/// sequence, and each node is its parent plus one key.
struct KeySequences {
    children: GroupTable,
    /// Per node: (parent, last key).
    nodes: Vec<(u32, u32)>,
}

impl KeySequences {
    fn new() -> KeySequences {
        KeySequences {
            children: GroupTable::default(),
            nodes: vec![(NONE, NONE)],
        }
    }

    fn child(&mut self, node: u32, rk: u32) -> u32 {
        let next = self.nodes.len() as u32;
        let (child, new) = self.children.group(node as usize, rk as usize, next);
        if new {
            self.nodes.push((node, rk));
        }
        child
    }

    /// The keys of `node`, first key first.
    fn keys(&self, mut node: u32) -> Vec<u32> {
        let mut keys = Vec::new();
        while node != 0 {
            let (parent, rk) = self.nodes[node as usize];
            keys.push(rk);
            node = parent;
        }
        keys.reverse();
        keys
    }
}

/// The kernels of one kernel name under one sequence of range keys: they
/// belong to the same groups, so their durations are kept once.
struct Signature {
    keys: u32,
    name: i64,
    name_slot: u32,
    durations: DurationList,
    /// The last run of enclosing ranges recorded for this signature.
    last_run: u32,
}

/// The enclosing ranges of each kernel, kept once per run of kernels with
/// the same ranges, and the signature each kernel falls in.
struct Signatures {
    range_keys: RangeKeys,
    sequences: KeySequences,
    names: DenseIds,
    /// Per key sequence, per name slot: the signature.
    of: GroupTable,
    list: Vec<Signature>,
    /// Runs of enclosing ranges, one after another.
    runs: Vec<u32>,
    /// The current run: where it starts in `runs`, and its key sequence.
    run: (u32, u32),
    /// (signature, run start, run length) each time a signature meets a new
    /// run: the pairs that `range_instances` counts.
    members: Vec<(u32, u32, u32)>,
    /// The thread and key sequence of the last kernel outside every range.
    outside: Option<(Option<i64>, u32)>,
}

impl Signatures {
    fn new(ranges: usize) -> Signatures {
        Signatures {
            range_keys: RangeKeys::new(ranges),
            sequences: KeySequences::new(),
            names: DenseIds::default(),
            of: GroupTable::default(),
            list: Vec::new(),
            runs: Vec::new(),
            run: (0, 0),
            members: Vec::new(),
            outside: None,
        }
    }

    /// Makes `enclosing` the current run, unless it already is.
    fn enter(&mut self, trace: &Trace, enclosing: &[u32], thread: impl Fn() -> Option<i64>) {
        let start = self.run.0 as usize;
        if !self.runs.is_empty() && self.runs[start..] == *enclosing {
            return;
        }
        let start = self.runs.len() as u32;
        self.runs.extend_from_slice(enclosing);
        let mut node = 0;
        for &r in enclosing {
            let rk = self.range_keys.of_range(r, || {
                let range = &trace.nvtx[r as usize];
                (Some((range.name, range.style)), thread())
            });
            node = self.sequences.child(node, rk);
        }
        self.run = (start, node);
    }

    /// The key sequence of a kernel outside every range, on `thread`.
    fn outside(&mut self, thread: Option<i64>) -> u32 {
        match self.outside {
            Some((t, node)) if t == thread => node,
            _ => {
                let rk = self.range_keys.number((None, thread));
                let node = self.sequences.child(0, rk);
                self.outside = Some((thread, node));
                node
            }
        }
    }

    /// Counts a kernel under key sequence `keys`; `run` is its run of
    /// enclosing ranges, `None` outside every range.
    #[inline]
    fn add(&mut self, keys: u32, run: Option<(u32, u32)>, name: i64, duration: i64) {
        let name_slot = self.names.slot(name);
        let next = self.list.len() as u32;
        let (s, new) = self.of.group(keys as usize, name_slot as usize, next);
        if new {
            self.list.push(Signature {
                keys,
                name,
                name_slot,
                durations: DurationList::default(),
                last_run: NONE,
            });
        }
        let sig = &mut self.list[s as usize];
        sig.durations.push(duration);
        if let Some((start, len)) = run {
            if sig.last_run != start {
                sig.last_run = start;
                self.members.push((s, start, len));
            }
        }
    }
}

/// One `nvtx-kernels` group and the signatures it gathers.
struct Group {
    key: (RangeKey, i64),
    /// Signatures, once per time the group's range key is in theirs: a
    /// kernel in two nested ranges of one name counts in both.
    parts: Vec<u32>,
    kernels: u64,
}

/// `nvtx_kern_sum`: every kernel counted in every enclosing range; with
/// `innermost`, once in its deepest range (`cuda_gpu_kern_sum:nvtx-name`).
pub fn nvtx_kernel_summary(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &NvtxIndex,
    names: NameStyle,
    innermost: bool,
) -> Vec<NvtxKernelSummary> {
    let sigs = signatures(trace, launches, index, names, innermost);
    let (groups, groups_of_sig) = groups(&sigs);
    let range_instances = range_instances(&sigs, &groups_of_sig, groups.len());
    let mut gathered = DurationList::default();
    let mut scratch = Vec::new();
    let mut rows: Vec<NvtxKernelSummary> = groups
        .into_iter()
        .enumerate()
        .filter_map(|(g, group)| {
            gathered.clear();
            for &s in &group.parts {
                gathered.extend_from(&sigs.list[s as usize].durations);
            }
            let time = gathered.stats(&mut scratch)?;
            let ((range, thread), name) = group.key;
            Some(NvtxKernelSummary {
                range: range.map(|(n, _)| trace.nvtx_names[n as usize].clone()),
                style: range.map(|(_, s)| s),
                pid: thread.map(global_id::pid),
                tid: thread.map(global_id::tid),
                range_instances: range_instances[g],
                kernel_instances: group.kernels,
                kernel: trace.strings.get(name).to_string(),
                time,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        a.range
            .cmp(&b.range)
            .then(a.pid.cmp(&b.pid))
            .then(a.tid.cmp(&b.tid))
            .then(b.time.total_ns.cmp(&a.time.total_ns))
            .then_with(|| a.kernel.cmp(&b.kernel))
    });
    rows
}

/// Each kernel's duration in its signature, in one pass over the kernels.
fn signatures(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &NvtxIndex,
    names: NameStyle,
    innermost: bool,
) -> Signatures {
    let mut sigs = Signatures::new(trace.nvtx.len());
    for (i, k) in trace.kernels.iter().enumerate() {
        let name = trace.kernel_name_id(i, names);
        let call = launches.kernel_call.get(i);
        // Read only when a range or thread is first seen: the call row is
        // far from the kernel row at 1 GB.
        let thread = || call.map(|c| trace.api_calls[c as usize].global_tid);
        let innermost_range;
        let enclosing: &[u32] = match call {
            None => &[],
            Some(c) if innermost => {
                innermost_range = index.innermost(trace, c);
                innermost_range.as_slice()
            }
            Some(c) => index.enclosing(c),
        };
        if enclosing.is_empty() {
            let keys = sigs.outside(thread());
            sigs.add(keys, None, name, k.duration());
        } else {
            sigs.enter(trace, enclosing, thread);
            let (start, keys) = sigs.run;
            sigs.add(
                keys,
                Some((start, enclosing.len() as u32)),
                name,
                k.duration(),
            );
        }
    }
    sigs
}

/// The groups, in the order their first kernel came, and per signature
/// the group of each of its range keys.
fn groups(sigs: &Signatures) -> (Vec<Group>, Vec<Vec<u32>>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut group_of = GroupTable::default();
    let mut groups_of_sig = Vec::with_capacity(sigs.list.len());
    let keys_of: Vec<Vec<u32>> = (0..sigs.sequences.nodes.len() as u32)
        .map(|node| sigs.sequences.keys(node))
        .collect();
    for (s, sig) in sigs.list.iter().enumerate() {
        let keys = &keys_of[sig.keys as usize];
        let mut sig_groups = Vec::with_capacity(keys.len());
        for (j, &rk) in keys.iter().enumerate() {
            let next = groups.len() as u32;
            let (g, new) = group_of.group(rk as usize, sig.name_slot as usize, next);
            if new {
                groups.push(Group {
                    key: (sigs.range_keys.keys[rk as usize], sig.name),
                    parts: Vec::new(),
                    kernels: 0,
                });
            }
            let group = &mut groups[g as usize];
            group.parts.push(s as u32);
            if !keys[..j].contains(&rk) {
                group.kernels += sig.durations.len() as u64;
            }
            sig_groups.push(g);
        }
        groups_of_sig.push(sig_groups);
    }
    (groups, groups_of_sig)
}

/// How many distinct range instances each group saw. A group meets its
/// ranges in kernel order, which is nearly range order: where a group's
/// ranges come in increasing order, each change is a new range, counted
/// on the spot. Only a group whose ranges step back (kernels of two
/// streams out of launch order, nested ranges of one name) is counted
/// again, exactly, from its (group, range) pairs.
fn range_instances(sigs: &Signatures, groups_of_sig: &[Vec<u32>], groups: usize) -> Vec<u64> {
    let mut counts = vec![0u64; groups];
    let mut last = vec![NONE; groups];
    let mut unordered = vec![false; groups];
    for (g, r) in group_ranges(sigs, groups_of_sig) {
        let seen = &mut last[g as usize];
        if r != *seen {
            unordered[g as usize] |= *seen != NONE && r < *seen;
            *seen = r;
            counts[g as usize] += 1;
        }
    }
    if unordered.contains(&true) {
        let exact = exact_range_instances(sigs, groups_of_sig, groups, |g| unordered[g]);
        for (g, n) in exact.into_iter().enumerate() {
            if unordered[g] {
                counts[g] = n;
            }
        }
    }
    counts
}

/// Distinct range instances of the groups `wanted` picks, from their
/// (group, range) pairs sorted; 0 for the others.
fn exact_range_instances(
    sigs: &Signatures,
    groups_of_sig: &[Vec<u32>],
    groups: usize,
    wanted: impl Fn(usize) -> bool,
) -> Vec<u64> {
    let mut pairs: Vec<(u32, u32)> = group_ranges(sigs, groups_of_sig)
        .filter(|&(g, _)| wanted(g as usize))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut counts = vec![0u64; groups];
    for &(g, _) in &pairs {
        counts[g as usize] += 1;
    }
    counts
}

/// (group, range instance) for each range of each recorded run, in
/// kernel order, with repeats.
fn group_ranges<'a>(
    sigs: &'a Signatures,
    groups_of_sig: &'a [Vec<u32>],
) -> impl Iterator<Item = (u32, u32)> + 'a {
    sigs.members.iter().flat_map(move |&(s, start, len)| {
        let ranges = &sigs.runs[start as usize..(start + len) as usize];
        ranges
            .iter()
            .zip(&groups_of_sig[s as usize])
            .map(|(&r, &g)| (g, r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{open_profile, InputOptions};

    /// Hand-made runs, as no real export has them: a group whose ranges
    /// step back (group 1: ranges 1, 2, 1) and nested ranges of one range
    /// key (group 2: ranges 3 and 4, then 3 and 5) take the exact count.
    #[test]
    fn ranges_that_step_back_are_counted_once() {
        let mut sigs = Signatures::new(6);
        sigs.runs = vec![0, 1, 0, 2, 0, 1, 3, 4, 3, 5];
        sigs.members = vec![(0, 0, 2), (0, 2, 2), (0, 4, 2), (1, 6, 2), (1, 8, 2)];
        let groups_of_sig = vec![vec![0, 1], vec![2, 2]];
        assert_eq!(range_instances(&sigs, &groups_of_sig, 3), [1, 2, 3]);
    }

    /// On every real export, counting on the spot gives the exact counts,
    /// in both modes.
    #[test]
    fn range_instances_equal_exact_counts_on_real_exports() {
        let mut checked = 0;
        for file in crate::nsys::real_exports() {
            let profile = open_profile(&file, &InputOptions::default()).unwrap();
            // An export without kernels has nothing to count.
            let Ok(trace) = Trace::load(&profile, NameStyle::Demangled) else {
                continue;
            };
            let launches = LaunchIndex::build(&trace);
            let index = NvtxIndex::build(&trace, &launches);
            for innermost in [false, true] {
                let sigs = signatures(&trace, &launches, &index, NameStyle::Demangled, innermost);
                let (groups, groups_of_sig) = groups(&sigs);
                let exact = exact_range_instances(&sigs, &groups_of_sig, groups.len(), |_| true);
                assert_eq!(
                    range_instances(&sigs, &groups_of_sig, groups.len()),
                    exact,
                    "{}",
                    file.display()
                );
                checked += usize::from(exact.iter().any(|&n| n > 1));
            }
        }
        assert!(checked >= 2, "only {checked} exports with ranges");
    }
}
