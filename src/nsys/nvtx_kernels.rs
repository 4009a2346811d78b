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
//! A group's range instances are counted as its kernels come (see
//! [`Group::meet`]); only a group whose ranges step back is counted again,
//! exactly, in a second pass.

use super::launch_index::LaunchIndex;
use super::nvtx_index::NvtxIndex;
use super::slots::{DenseIds, GroupTable, NONE};
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

    /// The node of a sequence made before, if it was.
    fn find(&self, keys: impl IntoIterator<Item = u32>) -> Option<u32> {
        keys.into_iter()
            .try_fold(0, |node, rk| self.children.get(node as usize, rk as usize))
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
    durations: DurationList,
    /// The group of each range key of the sequence, in order.
    groups: Vec<u32>,
    /// The last run of enclosing ranges this signature met.
    last_run: u32,
}

/// One `nvtx-kernels` group: (range key, kernel name).
struct Group {
    key: (RangeKey, i64),
    /// Signatures, once per time the group's range key is in theirs: a
    /// kernel in two nested ranges of one name counts in both.
    parts: Vec<u32>,
    kernels: u64,
    /// Range instances met, counted as they come, and the last one.
    ranges: u64,
    last_range: u32,
    /// A range came after a later one, so `ranges` may count one twice.
    unordered: bool,
}

impl Group {
    /// Counts range `r`. Kernels come nearly in range order: where a
    /// group's ranges only increase, each change is a new one. A group
    /// whose ranges step back (kernels of two streams out of launch order,
    /// nested ranges of one name) is marked, to be counted exactly.
    #[inline]
    fn meet(&mut self, r: u32) {
        if r != self.last_range {
            self.unordered |= self.last_range != NONE && r < self.last_range;
            self.last_range = r;
            self.ranges += 1;
        }
    }
}

/// Signatures and groups, built in one pass over the kernels.
struct Signatures {
    range_keys: RangeKeys,
    sequences: KeySequences,
    names: DenseIds,
    /// Per key sequence, per name slot: the signature.
    of: GroupTable,
    list: Vec<Signature>,
    /// Per range key, per name slot: the group.
    group_of: GroupTable,
    groups: Vec<Group>,
    /// The enclosing ranges of the kernel before, their key sequence, and
    /// a number that changes whenever they do.
    current: Vec<u32>,
    current_keys: u32,
    run: u32,
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
            group_of: GroupTable::default(),
            groups: Vec::new(),
            current: Vec::new(),
            current_keys: 0,
            run: 0,
            outside: None,
        }
    }

    /// The key sequence of `enclosing`, which becomes the current run
    /// unless it already is.
    fn enter(&mut self, trace: &Trace, enclosing: &[u32], thread: impl Fn() -> Option<i64>) -> u32 {
        // Element by element: a few ranges, shorter than a memcmp call.
        let same = self.current.len() == enclosing.len()
            && self.current.iter().zip(enclosing).all(|(a, b)| a == b);
        if same {
            return self.current_keys;
        }
        self.current.clear();
        self.current.extend_from_slice(enclosing);
        self.run += 1;
        let mut node = 0;
        for &r in enclosing {
            let rk = self.range_keys.of_range(r, || {
                let range = &trace.nvtx[r as usize];
                (Some((range.name, range.style)), thread())
            });
            node = self.sequences.child(node, rk);
        }
        self.current_keys = node;
        node
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

    /// Counts a kernel under key sequence `keys`; `in_ranges` when they
    /// are the current run's, whose ranges its groups then meet.
    #[inline]
    fn add(&mut self, keys: u32, in_ranges: bool, name: i64, duration: i64) {
        let name_slot = self.names.slot(name);
        let next = self.list.len() as u32;
        let (s, new) = self.of.group(keys as usize, name_slot as usize, next);
        if new {
            let groups = self.groups_of(keys, name_slot, name, s);
            self.list.push(Signature {
                durations: DurationList::default(),
                groups,
                last_run: NONE,
            });
        }
        let sig = &mut self.list[s as usize];
        sig.durations.push(duration);
        if in_ranges && sig.last_run != self.run {
            sig.last_run = self.run;
            for (&g, &r) in sig.groups.iter().zip(&self.current) {
                self.groups[g as usize].meet(r);
            }
        }
    }

    /// The group of each range key of a new signature, made where new, in
    /// the order the signatures and their keys came.
    fn groups_of(&mut self, keys: u32, name_slot: u32, name: i64, sig: u32) -> Vec<u32> {
        let keys = self.sequences.keys(keys);
        let mut groups = Vec::with_capacity(keys.len());
        for &rk in &keys {
            let next = self.groups.len() as u32;
            let (g, new) = self.group_of.group(rk as usize, name_slot as usize, next);
            if new {
                self.groups.push(Group {
                    key: (self.range_keys.keys[rk as usize], name),
                    parts: Vec::new(),
                    kernels: 0,
                    ranges: 0,
                    last_range: NONE,
                    unordered: false,
                });
            }
            self.groups[g as usize].parts.push(sig);
            groups.push(g);
        }
        groups
    }

    /// Each group's kernels, once the signatures are complete: a kernel
    /// counts once in a group, even in two of its ranges.
    fn count_kernels(&mut self) {
        for sig in &self.list {
            for (j, &g) in sig.groups.iter().enumerate() {
                if !sig.groups[..j].contains(&g) {
                    self.groups[g as usize].kernels += sig.durations.len() as u64;
                }
            }
        }
    }
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
    let kernels = KernelRanges {
        trace,
        launches,
        index,
        names,
        innermost,
    };
    let mut sigs = signatures(&kernels);
    sigs.count_kernels();
    if sigs.groups.iter().any(|g| g.unordered) {
        recount_unordered(&kernels, &mut sigs);
    }
    let mut rows = summary_rows(trace, &sigs);
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

/// A row per group, its durations gathered from its signatures' lists.
fn summary_rows(trace: &Trace, sigs: &Signatures) -> Vec<NvtxKernelSummary> {
    let mut gathered = DurationList::default();
    let mut scratch = Vec::new();
    sigs.groups
        .iter()
        .filter_map(|group| {
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
                range_instances: group.ranges,
                kernel_instances: group.kernels,
                kernel: trace.strings.get(name).to_string(),
                time,
            })
        })
        .collect()
}

/// Each kernel with its name and enclosing ranges, as the report counts
/// them.
struct KernelRanges<'a> {
    trace: &'a Trace,
    launches: &'a LaunchIndex,
    index: &'a NvtxIndex,
    names: NameStyle,
    innermost: bool,
}

impl KernelRanges<'_> {
    /// Calls `f` with each kernel's index, name id, enclosing ranges, and
    /// the thread of its launching call (read only when asked: the call
    /// row is far from the kernel row at 1 GB).
    fn each(&self, mut f: impl FnMut(usize, i64, &[u32], &dyn Fn() -> Option<i64>)) {
        let trace = self.trace;
        for i in 0..trace.kernels.len() {
            let name = trace.kernel_name_id(i, self.names);
            let call = self.launches.kernel_call.get(i);
            let thread = || call.map(|c| trace.api_calls.global_tid(&trace.api_calls[c as usize]));
            let innermost_range;
            let enclosing: &[u32] = match call {
                None => &[],
                Some(c) if self.innermost => {
                    innermost_range = self.index.innermost(trace, c);
                    innermost_range.as_slice()
                }
                Some(c) => self.index.enclosing(c),
            };
            f(i, name, enclosing, &thread);
        }
    }
}

/// Each kernel's duration in its signature, in one pass over the kernels.
fn signatures(kernels: &KernelRanges<'_>) -> Signatures {
    let trace = kernels.trace;
    let mut sigs = Signatures::new(trace.nvtx.len());
    kernels.each(|i, name, enclosing, thread| {
        let duration = trace.kernels.duration(&trace.kernels[i]);
        if enclosing.is_empty() {
            let keys = sigs.outside(thread());
            sigs.add(keys, false, name, duration);
        } else {
            let keys = sigs.enter(trace, enclosing, thread);
            sigs.add(keys, true, name, duration);
        }
    });
    sigs
}

/// Range instances of the groups marked unordered, counted exactly from
/// their sorted (group, range) pairs, in a second pass over the kernels.
/// No real export at hand needs it.
fn recount_unordered(kernels: &KernelRanges<'_>, sigs: &mut Signatures) {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    kernels.each(|_, name, enclosing, _| {
        if enclosing.is_empty() {
            return;
        }
        // Every range, key sequence, name and signature has its number from
        // the first pass, which saw the same kernels.
        let keys = enclosing
            .iter()
            .map(|&r| sigs.range_keys.of_range[r as usize]);
        let node = sigs.sequences.find(keys);
        let name_slot = sigs.names.slot(name);
        let Some(s) = node.and_then(|n| sigs.of.get(n as usize, name_slot as usize)) else {
            return;
        };
        for (&g, &r) in sigs.list[s as usize].groups.iter().zip(enclosing) {
            if sigs.groups[g as usize].unordered {
                pairs.push((g, r));
            }
        }
    });
    pairs.sort_unstable();
    pairs.dedup();
    for group in sigs.groups.iter_mut().filter(|g| g.unordered) {
        group.ranges = 0;
    }
    for &(g, _) in &pairs {
        sigs.groups[g as usize].ranges += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_meeting(ranges: &[u32]) -> Group {
        let mut group = Group {
            key: ((None, None), 0),
            parts: Vec::new(),
            kernels: 0,
            ranges: 0,
            last_range: NONE,
            unordered: false,
        };
        for &r in ranges {
            group.meet(r);
        }
        group
    }

    /// Hand-made range sequences, as no real export steps back: ranges that
    /// only increase are counted as they come; a step back (two streams out
    /// of order, or nested ranges of one name) marks the group.
    #[test]
    fn a_group_whose_ranges_step_back_is_marked() {
        let ordered = group_meeting(&[0, 0, 0, 2, 2, 7]);
        assert_eq!((ordered.ranges, ordered.unordered), (3, false));
        assert!(group_meeting(&[1, 2, 1]).unordered);
        assert!(group_meeting(&[3, 4, 3, 5]).unordered);
    }

    /// On every real export, in both modes: the counts made on the spot
    /// equal the exact recount, which is forced here on every group.
    #[test]
    fn range_instances_equal_the_exact_recount_on_real_exports() {
        let mut checked = 0;
        // An export without kernels has nothing to count.
        for (file, trace) in crate::nsys::real_traces() {
            let launches = LaunchIndex::build(&trace);
            let index = NvtxIndex::build(&trace, &launches);
            for innermost in [false, true] {
                let kernels = KernelRanges {
                    trace: &trace,
                    launches: &launches,
                    index: &index,
                    names: NameStyle::Demangled,
                    innermost,
                };
                let mut sigs = signatures(&kernels);
                let spot: Vec<u64> = sigs.groups.iter().map(|g| g.ranges).collect();
                assert!(sigs.groups.iter().all(|g| !g.unordered));
                for group in &mut sigs.groups {
                    group.unordered = true;
                }
                recount_unordered(&kernels, &mut sigs);
                let exact: Vec<u64> = sigs.groups.iter().map(|g| g.ranges).collect();
                assert_eq!(spot, exact, "{}", file.display());
                checked += usize::from(exact.iter().any(|&n| n > 1));
            }
        }
        assert!(checked >= 2, "only {checked} exports with ranges");
    }
}
