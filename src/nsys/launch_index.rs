//! Links every GPU operation to the API call that launched it. The join key
//! is (process, correlationId): correlation ids repeat across processes.
//! All kernels of one CUDA graph launch share that launch's correlation id.
//! Correlation ids are small integers per process, so each process gets an
//! array indexed by id. Only one id in six or seven is an API call in the
//! runtime table (the rest went to driver calls and activity records), so
//! past 4 MiB that array becomes a bit per id and the calls in id order,
//! found by rank; a hash map takes over when a process's ids are too
//! sparse even for that.

use super::bit_set::BitSet;
use super::slots::{OptionalIds, RunIdGroups, RunSlots, NONE};
use super::trace::{global_id, Trace};
use rustc_hash::FxHashMap;

/// For each kernel and memory operation, the index of its launching API call.
#[derive(Debug, Default)]
pub struct LaunchIndex {
    pub kernel_call: LaunchingCalls,
    pub memop_call: LaunchingCalls,
    /// Graph trace mode rows: the `cudaGraphLaunch` behind each.
    pub graph_exec_call: LaunchingCalls,
    /// API calls whose (process, correlation id) an earlier call already had.
    pub duplicate_calls: u64,
    /// API calls per name id, in order of first appearance. Counted in the
    /// pass that sizes the tables, which reads every call anyway: as a pass
    /// of its own in the graph report it took 83–131 ms at 1 GB.
    pub calls_per_name: Vec<(i64, u64)>,
}

/// Per GPU operation, the index of its launching API call, if any.
pub type LaunchingCalls = OptionalIds;

/// Which table a process's ids get.
#[derive(Debug, PartialEq, Eq)]
enum TableKind {
    Array,
    Ranked,
    Sparse,
}

impl TableKind {
    /// For `count` ids over `span`: up to 64 ids per call are ranked, at
    /// worst 8 bytes of bits per call, still less than a hash map.
    fn for_ids(span: i64, count: usize, array_ids: i64) -> TableKind {
        if span > 0 && span <= array_ids && span <= 8 * count as i64 + 4096 {
            TableKind::Array
        } else if span > 0 && span <= 64 * count as i64 + 65536 {
            TableKind::Ranked
        } else {
            TableKind::Sparse
        }
    }
}

/// The number of ids from `min` to `max`, both included.
fn span(min: i64, max: i64) -> i64 {
    max.saturating_sub(min).saturating_add(1)
}

/// correlationId → API call index, for one process.
enum CallsById {
    /// A slot per id: the fastest while it stays in cache.
    Array {
        min: i64,
        calls: Vec<u32>,
    },
    Ranked(RankedIds),
    Sparse(FxHashMap<i64, u32>),
}

/// Ids a process may span before its array gives way to ranked ids
/// (4 MiB of slots). Past that, filling the array and faulting in its
/// pages cost more than ranking saves: the 76 MB export spans 6.3 M ids,
/// and ranked ids made its whole digest 0.115 → 0.108 s (best of 30) and
/// its peak RSS 96 → 85 MB; the SYNTHETIC 1 GB export spans 82 M, where
/// they cut the index from 414–436 to 295–387 ms. Below it the array wins:
/// ranked ids made a 58k-kernel profile's index (813 k ids) 1.3 → 2.2 ms.
const ARRAY_IDS: i64 = 1 << 20;

/// The ids between `min` and `min + 64 * bits.len()` as a bitset, the
/// number of ids before each 64-bit word, and the calls in id order: about
/// one byte per id and four per call, where a plain array indexed by id
/// took four per id (328 MB on the SYNTHETIC 1 GB export, against 64 MB).
struct RankedIds {
    min: i64,
    bits: BitSet,
    ranks: Vec<u32>,
    calls: Vec<u32>,
    /// While the ids come in increasing order, as they do in the runtime
    /// table, each new id's call is pushed as it is marked: its rank is the
    /// number of calls before it, and the second pass is not needed.
    in_order: Option<(i64, Vec<u32>)>,
}

impl RankedIds {
    /// A table for ids from `min` over `span`, for `count` calls.
    fn new(min: i64, span: usize, count: usize) -> RankedIds {
        RankedIds {
            min,
            bits: BitSet::new(span),
            ranks: Vec::new(),
            calls: Vec::new(),
            in_order: Some((i64::MIN, Vec::with_capacity(count))),
        }
    }

    /// The bit of an id, or `None` outside the table.
    fn position(&self, corr: i64) -> Option<usize> {
        let off = usize::try_from(corr.checked_sub(self.min)?).ok()?;
        (off < self.bits.capacity()).then_some(off)
    }

    /// First pass: mark an id, and while ids increase, record its call.
    /// Returns false when the id was already marked (the first call keeps
    /// it, as in a join).
    fn mark(&mut self, corr: i64, call: u32) -> bool {
        let off = self.position(corr).expect("id inside the process's range");
        let fresh = self.bits.insert(off);
        if fresh {
            match &mut self.in_order {
                Some((last, calls)) if corr > *last => {
                    *last = corr;
                    calls.push(call);
                }
                Some(_) => self.in_order = None,
                None => {}
            }
        }
        fresh
    }

    /// Between the passes: ranks from the marks, and the calls recorded in
    /// id order, or room for them; true when the second pass must place
    /// them.
    fn seal(&mut self) -> bool {
        let (ranks, total) = self.bits.word_ranks();
        self.ranks = ranks;
        match self.in_order.take() {
            Some((_, calls)) => {
                self.calls = calls;
                false
            }
            None => {
                self.calls = vec![NONE; total as usize];
                true
            }
        }
    }

    /// The slot of a marked id in `calls`.
    fn slot(&self, corr: i64) -> Option<usize> {
        let off = self.position(corr)?;
        self.bits
            .contains(off)
            .then(|| self.bits.rank(off, &self.ranks))
    }

    /// Second pass: record a call; the first call with an id wins, as in a join.
    fn insert(&mut self, corr: i64, call: u32) {
        if let Some(slot) = self.slot(corr) {
            if self.calls[slot] == NONE {
                self.calls[slot] = call;
            }
        }
    }

    fn get(&self, corr: i64) -> Option<u32> {
        self.slot(corr)
            .map(|s| self.calls[s])
            .filter(|&i| i != NONE)
    }
}

/// Pass 1's marks for one process while its ids only grow, as they do in
/// the runtime table: the bits and the calls in id order that ranked ids
/// need, so that pass 1 leaves a ranked table ready and pass 2 is skipped
/// (at 1 GB each pass reads 293 MB of calls). Dropped when an id steps
/// back or the bits outgrow what [`CallsById::with_range`] keeps ranked;
/// that process then takes pass 2 as before.
struct GrowingMarks {
    min: i64,
    last: i64,
    words: Vec<u64>,
    calls: Vec<u32>,
    /// Calls whose id the call before already had.
    duplicates: u64,
}

impl GrowingMarks {
    /// Room for `room` calls: the runtime table's first process usually
    /// makes nearly all of them.
    fn new(corr: i64, call: u32, room: usize) -> GrowingMarks {
        let mut calls = Vec::with_capacity(room.max(1));
        calls.push(call);
        GrowingMarks {
            min: corr,
            last: corr,
            words: vec![1],
            calls,
            duplicates: 0,
        }
    }

    /// Marks the process's `count`-th call; false when the marks must go.
    #[inline]
    fn mark(&mut self, corr: i64, call: u32, count: usize) -> bool {
        if corr == self.last {
            self.duplicates += 1;
            return true;
        }
        if corr < self.last {
            return false;
        }
        let off = corr.abs_diff(self.min);
        if off >= 64 * count as u64 + 65536 {
            return false;
        }
        let word = (off / 64) as usize;
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (off % 64);
        self.calls.push(call);
        self.last = corr;
        true
    }

    /// The ranked table that pass 2 would have built from the same calls.
    fn into_ranked(self, span: usize) -> RankedIds {
        let mut words = self.words;
        words.resize(span.div_ceil(64), 0);
        let bits = BitSet::from_words(words);
        let (ranks, _) = bits.word_ranks();
        RankedIds {
            min: self.min,
            bits,
            ranks,
            calls: self.calls,
            in_order: None,
        }
    }
}

impl CallsById {
    /// An empty table for `count` ids between `min` and `max`.
    fn with_range(min: i64, max: i64, count: usize, array_ids: i64) -> CallsById {
        let span = span(min, max);
        match TableKind::for_ids(span, count, array_ids) {
            TableKind::Array => CallsById::Array {
                min,
                calls: vec![NONE; span as usize],
            },
            TableKind::Ranked => CallsById::Ranked(RankedIds::new(min, span as usize, count)),
            TableKind::Sparse => CallsById::Sparse(FxHashMap::default()),
        }
    }

    /// First pass over the calls: records the call, except in ranked ids,
    /// which only mark it. Returns false when the id was taken.
    fn mark(&mut self, corr: i64, call: u32) -> bool {
        match self {
            CallsById::Array { min, calls } => {
                let slot = &mut calls[(corr - *min) as usize];
                let fresh = *slot == NONE;
                if fresh {
                    *slot = call;
                }
                fresh
            }
            CallsById::Ranked(ids) => ids.mark(corr, call),
            CallsById::Sparse(map) => match map.entry(corr) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(call);
                    true
                }
            },
        }
    }

    /// Between the passes; true when this table needs the second pass.
    fn seal(&mut self) -> bool {
        match self {
            CallsById::Ranked(ids) => ids.seal(),
            _ => false,
        }
    }

    /// Second pass over the calls, in the same order: ranked ids only.
    fn insert(&mut self, corr: i64, call: u32) {
        if let CallsById::Ranked(ids) = self {
            ids.insert(corr, call);
        }
    }

    /// Both passes over `ids`, as `LaunchIndex::build` runs them.
    #[cfg(test)]
    fn filled(mut self, ids: &[(i64, u32)]) -> CallsById {
        for &(c, i) in ids {
            self.mark(c, i);
        }
        if self.seal() {
            for &(c, i) in ids {
                self.insert(c, i);
            }
        }
        self
    }

    fn get(&self, corr: i64) -> Option<u32> {
        match self {
            CallsById::Array { min, calls } => corr
                .checked_sub(*min)
                .and_then(|off| calls.get(usize::try_from(off).ok()?))
                .copied()
                .filter(|&i| i != NONE),
            CallsById::Ranked(ids) => ids.get(corr),
            CallsById::Sparse(map) => map.get(&corr).copied(),
        }
    }
}

/// What pass 1 learns of one process's calls.
struct ProcessIds {
    min: i64,
    max: i64,
    count: usize,
    /// `None` when pass 1 keeps no marks, or once they were dropped.
    marks: Option<GrowingMarks>,
}

impl ProcessIds {
    /// The process's first call; `marks_room` is the room for its marks,
    /// or `None` when pass 1 keeps none.
    fn first(corr: i64, call: u32, marks_room: Option<usize>) -> ProcessIds {
        ProcessIds {
            min: corr,
            max: corr,
            count: 1,
            marks: marks_room.map(|room| GrowingMarks::new(corr, call, room)),
        }
    }

    #[inline]
    fn add(&mut self, corr: i64, call: u32) {
        if let Some(m) = &mut self.marks {
            if !m.mark(corr, call, self.count) {
                self.marks = None;
            }
        }
        self.min = self.min.min(corr);
        self.max = self.max.max(corr);
        self.count += 1;
    }

    /// The complete ranked table and its duplicate count, where the
    /// marks lasted and ranked ids suit the span; otherwise `self` back.
    fn into_ranked(self, array_ids: i64) -> Result<(CallsById, u64), ProcessIds> {
        let span = span(self.min, self.max);
        match self.marks {
            Some(marks) if TableKind::for_ids(span, self.count, array_ids) == TableKind::Ranked => {
                let duplicates = marks.duplicates;
                Ok((
                    CallsById::Ranked(marks.into_ranked(span as usize)),
                    duplicates,
                ))
            }
            marks => Err(ProcessIds { marks, ..self }),
        }
    }
}

/// The per-process tables, with the process of the previous call
/// remembered: calls come in long runs from one process.
struct ProcessTables {
    slots: RunSlots<i64>,
    tables: Vec<CallsById>,
    /// Per process: the table was completed in pass 1.
    done: Vec<bool>,
    /// Calls whose id an earlier call of the process had: found in pass 1
    /// for the processes it completed, in pass 2 for the others.
    duplicate_calls: u64,
}

impl ProcessTables {
    /// Pass 1: the id range and call count of every process, the calls
    /// per name id, and the marks of processes whose ids only grow. A
    /// process's table is complete when `ProcessTables::done` says so.
    fn sized_for(trace: &Trace, choice: TableChoice) -> (ProcessTables, Vec<(i64, u64)>) {
        let mut slots = RunSlots::default();
        let mut processes: Vec<ProcessIds> = Vec::new();
        let mut per_name: RunIdGroups<(), u64> = RunIdGroups::default();
        for (i, call) in trace.api_calls.iter().enumerate() {
            *per_name.get((), call.name()) += 1;
            let (slot, new) = slots.slot(global_id::process(trace.api_calls.global_tid(call)));
            if new {
                let room = if slot == 0 { trace.api_calls.len() } else { 0 };
                let marks = choice.marks_in_pass_one.then_some(room);
                processes.push(ProcessIds::first(call.correlation(), i as u32, marks));
            } else {
                processes[slot].add(call.correlation(), i as u32);
            }
        }
        let calls_per_name = per_name
            .into_groups()
            .into_iter()
            .map(|((), id, n)| (id, n))
            .collect();
        let tables = ProcessTables::from_ids(slots, processes, choice.array_ids);
        (tables, calls_per_name)
    }

    /// Each process's table: complete where its marks made ranked ids,
    /// otherwise sized from its id range for pass 2.
    fn from_ids(slots: RunSlots<i64>, processes: Vec<ProcessIds>, array_ids: i64) -> Self {
        let mut done = Vec::with_capacity(processes.len());
        let mut duplicate_calls = 0;
        let tables = processes
            .into_iter()
            .map(|ids| match ids.into_ranked(array_ids) {
                Ok((table, duplicates)) => {
                    done.push(true);
                    duplicate_calls += duplicates;
                    table
                }
                Err(ids) => {
                    done.push(false);
                    CallsById::with_range(ids.min, ids.max, ids.count, array_ids)
                }
            })
            .collect();
        ProcessTables {
            slots,
            tables,
            done,
            duplicate_calls,
        }
    }

    /// Passes 2 and 3, for the processes pass 1 did not complete: pass 2
    /// records (or, in ranked ids, marks) every call; pass 3, where ranked
    /// ids came out of order, places the calls.
    fn complete(&mut self, trace: &Trace) {
        if self.done.iter().all(|&d| d) {
            return;
        }
        for (i, call) in trace.api_calls.iter().enumerate() {
            if let Some(table) = self.pending_mut(trace.api_calls.global_tid(call)) {
                let fresh = table.mark(call.correlation(), i as u32);
                self.duplicate_calls += u64::from(!fresh);
            }
        }
        let ranked = self
            .tables
            .iter_mut()
            .zip(&self.done)
            .filter(|(_, &done)| !done)
            .map(|(t, _)| t.seal())
            .fold(false, |a, b| a | b);
        if ranked {
            for (i, call) in trace.api_calls.iter().enumerate() {
                if let Some(table) = self.pending_mut(trace.api_calls.global_tid(call)) {
                    table.insert(call.correlation(), i as u32);
                }
            }
        }
    }

    /// The table of the call's process, unless pass 1 completed it. Every
    /// process was numbered in pass 1, so this only finds its slot.
    fn pending_mut(&mut self, global_tid: i64) -> Option<&mut CallsById> {
        let (slot, _) = self.slots.slot(global_id::process(global_tid));
        (!self.done[slot]).then(|| &mut self.tables[slot])
    }

    /// Finds the call of (process, id) pairs. GPU operations come in long
    /// runs from one process, so its slot is remembered rather than
    /// hashed again for each.
    fn lookup(&self) -> impl FnMut(Option<i64>, i64) -> Option<u32> + '_ {
        let mut last: Option<(i64, Option<usize>)> = None;
        move |pid, corr| {
            let pid = pid?;
            let slot = match last {
                Some((p, slot)) if p == pid => slot,
                _ => {
                    let slot = self.slots.get(pid);
                    last = Some((pid, slot));
                    slot
                }
            };
            self.tables[slot?].get(corr)
        }
    }
}

/// How `LaunchIndex::build` picks tables; the tests force the other ways
/// on real exports.
#[derive(Debug, Clone, Copy)]
struct TableChoice {
    array_ids: i64,
    marks_in_pass_one: bool,
}

impl LaunchIndex {
    pub fn build(trace: &Trace) -> LaunchIndex {
        LaunchIndex::build_with(
            trace,
            TableChoice {
                array_ids: ARRAY_IDS,
                marks_in_pass_one: true,
            },
        )
    }

    fn build_with(trace: &Trace, choice: TableChoice) -> LaunchIndex {
        let (mut index, calls_per_name) = ProcessTables::sized_for(trace, choice);
        index.complete(trace);
        let mut lookup = index.lookup();
        LaunchIndex {
            kernel_call: trace
                .kernels
                .iter()
                .map(|k| lookup(trace.kernels.global_pid(k), k.correlation()))
                .collect(),
            memop_call: trace
                .memops
                .iter()
                .map(|m| lookup(m.gpu.global_pid, m.gpu.correlation))
                .collect(),
            graph_exec_call: trace
                .graph_executions
                .iter()
                .map(|g| lookup(g.gpu.global_pid, g.gpu.correlation))
                .collect(),
            duplicate_calls: index.duplicate_calls,
            calls_per_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranked_and_sparse_agree_and_first_call_wins() {
        // Ids over several 64-bit words, so ranks carry across words.
        let ids = vec![(5, 0), (7, 1), (5, 2), (9, 3), (200, 4), (130, 5), (64, 6)];
        let in_order = vec![(5, 0), (5, 2), (7, 1), (9, 3), (64, 6), (130, 5), (200, 4)];
        let (min, span) = (5, 196);
        let tables = [
            CallsById::Array {
                min,
                calls: vec![NONE; span],
            }
            .filled(&ids),
            CallsById::Ranked(RankedIds::new(min, span, ids.len())).filled(&ids),
            CallsById::Sparse(FxHashMap::default()).filled(&ids),
            // The same ids in increasing order (a repeat kept last, so the
            // same call wins): placed while marking, no second pass.
            CallsById::Ranked(RankedIds::new(min, span, ids.len())).filled(&in_order),
        ];
        for (c, want) in [
            (5, Some(0)),
            (7, Some(1)),
            (9, Some(3)),
            (64, Some(6)),
            (130, Some(5)),
            (200, Some(4)),
            (131, None),
            (201, None),
            (6, None),
            (4, None),
            (99, None),
        ] {
            for t in &tables {
                assert_eq!(t.get(c), want, "{c}");
            }
        }
    }

    /// Hand-made ids: increasing ids need no second pass, and one id
    /// that steps back asks for it.
    #[test]
    fn ranked_ids_in_order_are_placed_while_marking() {
        let mut ordered = RankedIds::new(0, 300, 3);
        for (corr, call) in [(3, 0), (70, 1), (70, 2), (250, 3)] {
            ordered.mark(corr, call);
        }
        assert!(!ordered.seal());
        assert_eq!(ordered.calls, [0, 1, 3]);
        let mut unordered = RankedIds::new(0, 300, 3);
        for (corr, call) in [(3, 0), (250, 1), (70, 2)] {
            unordered.mark(corr, call);
        }
        assert!(unordered.seal());
    }

    /// Hand-made ids: pass 1's marks give the table pass 2 would build,
    /// duplicates counted alike; an id that steps back, or bits past the
    /// ranked limit, drop them.
    #[test]
    fn growing_marks_build_the_ranked_table_of_pass_two() {
        let ids = [
            (5, 0),
            (7, 1),
            (7, 2),
            (64, 3),
            (200, 4),
            (201, 5),
            (201, 6),
        ];
        let mut marks = GrowingMarks::new(ids[0].0, ids[0].1, ids.len());
        for (n, &(corr, call)) in ids.iter().enumerate().skip(1) {
            assert!(marks.mark(corr, call, n));
        }
        assert_eq!(marks.duplicates, 2);
        let span = span(5, 201) as usize;
        let fused = CallsById::Ranked(marks.into_ranked(span));
        let passes = CallsById::Ranked(RankedIds::new(5, span, ids.len())).filled(&ids);
        for corr in 0..260 {
            assert_eq!(fused.get(corr), passes.get(corr), "{corr}");
        }
        assert_eq!(fused.get(7), Some(1), "the first call with an id wins");

        let mut stepping_back = GrowingMarks::new(10, 0, 0);
        assert!(stepping_back.mark(12, 1, 1));
        assert!(!stepping_back.mark(11, 2, 2));
        let mut too_sparse = GrowingMarks::new(0, 0, 0);
        assert!(!too_sparse.mark(64 + 65536, 1, 1));
    }

    /// On every real export: slot arrays, ranked ids placed in pass 2,
    /// and ranked ids marked in pass 1 find the same calls.
    #[test]
    fn every_table_choice_finds_the_same_calls_on_real_exports() {
        let mut checked = 0;
        for (file, trace) in crate::nsys::real_traces() {
            let choices = [(ARRAY_IDS, true), (0, false), (0, true)];
            let built: Vec<_> = choices
                .into_iter()
                .map(|(array_ids, marks_in_pass_one)| {
                    let choice = TableChoice {
                        array_ids,
                        marks_in_pass_one,
                    };
                    let index = LaunchIndex::build_with(&trace, choice);
                    let calls = |ids: &LaunchingCalls| ids.iter().collect::<Vec<_>>();
                    (
                        calls(&index.kernel_call),
                        calls(&index.memop_call),
                        calls(&index.graph_exec_call),
                        index.duplicate_calls,
                        index.calls_per_name,
                    )
                })
                .collect();
            assert!(built.windows(2).all(|w| w[0] == w[1]), "{}", file.display());
            checked += usize::from(built[0].0.iter().any(Option::is_some));
        }
        assert!(checked >= 2, "only {checked} exports with launches");
    }

    #[test]
    fn the_table_kind_follows_the_id_span() {
        let kind = |span: i64, count: usize| match CallsById::with_range(1, span, count, ARRAY_IDS)
        {
            CallsById::Array { .. } => "array",
            CallsById::Ranked(_) => "ranked",
            CallsById::Sparse(_) => "sparse",
        };
        assert_eq!(kind(900_000, 130_000), "array");
        assert_eq!(kind(7_000_000, 1_000_000), "ranked");
        assert_eq!(kind(20_000_000, 3_000_000), "ranked");
        assert_eq!(kind(20_000_000, 1_000_000), "ranked");
        assert_eq!(kind(1_000_000_000, 1_000), "sparse");
    }
}
