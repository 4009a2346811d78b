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

impl CallsById {
    /// An empty table for `count` ids between `min` and `max`.
    fn with_range(min: i64, max: i64, count: usize) -> CallsById {
        let span = max.saturating_sub(min).saturating_add(1);
        // Up to 64 ids per call: at worst 8 bytes of bits per call, still
        // less than a hash map.
        if span > 0 && span <= ARRAY_IDS && span <= 8 * count as i64 + 4096 {
            CallsById::Array {
                min,
                calls: vec![NONE; span as usize],
            }
        } else if span > 0 && span <= 64 * count as i64 + 65536 {
            CallsById::Ranked(RankedIds::new(min, span as usize, count))
        } else {
            CallsById::Sparse(FxHashMap::default())
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

/// The per-process tables, with the process of the previous call
/// remembered: calls come in long runs from one process.
struct ProcessTables {
    slots: RunSlots<i64>,
    tables: Vec<CallsById>,
}

impl ProcessTables {
    /// Pass 1: the id range and call count of every process, and the
    /// calls per name id.
    fn sized_for(trace: &Trace) -> (ProcessTables, Vec<(i64, u64)>) {
        let mut slots = RunSlots::default();
        let mut ranges: Vec<(i64, i64, usize)> = Vec::new();
        let mut per_name: RunIdGroups<(), u64> = RunIdGroups::default();
        for call in &trace.api_calls {
            *per_name.get((), call.name()) += 1;
            let (slot, new) = slots.slot(global_id::process(call.global_tid));
            if new {
                ranges.push((i64::MAX, i64::MIN, 0));
            }
            let r = &mut ranges[slot];
            r.0 = r.0.min(call.correlation());
            r.1 = r.1.max(call.correlation());
            r.2 += 1;
        }
        let tables = ranges
            .into_iter()
            .map(|(min, max, count)| CallsById::with_range(min, max, count))
            .collect();
        let calls_per_name = per_name
            .into_groups()
            .into_iter()
            .map(|((), id, n)| (id, n))
            .collect();
        (ProcessTables { slots, tables }, calls_per_name)
    }

    /// Every process was numbered in pass 1, so this only finds its slot.
    fn table_mut(&mut self, global_tid: i64) -> &mut CallsById {
        let (slot, _) = self.slots.slot(global_id::process(global_tid));
        &mut self.tables[slot]
    }

    fn get(&self, pid: Option<i64>, corr: i64) -> Option<u32> {
        self.tables[self.slots.get(pid?)?].get(corr)
    }
}

impl LaunchIndex {
    pub fn build(trace: &Trace) -> LaunchIndex {
        let (mut index, calls_per_name) = ProcessTables::sized_for(trace);
        // Pass 2: record (or, in ranked ids, mark) every call; pass 3, where
        // ranked ids came out of order: place the calls.
        let mut duplicate_calls = 0;
        for (i, call) in trace.api_calls.iter().enumerate() {
            let fresh = index
                .table_mut(call.global_tid)
                .mark(call.correlation(), i as u32);
            duplicate_calls += u64::from(!fresh);
        }
        let ranked = index
            .tables
            .iter_mut()
            .map(CallsById::seal)
            .fold(false, |a, b| a | b);
        if ranked {
            for (i, call) in trace.api_calls.iter().enumerate() {
                index
                    .table_mut(call.global_tid)
                    .insert(call.correlation(), i as u32);
            }
        }
        let lookup = |pid: Option<i64>, corr: i64| index.get(pid, corr);
        LaunchIndex {
            kernel_call: trace
                .kernels
                .iter()
                .map(|k| lookup(k.global_pid(), k.correlation()))
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
            duplicate_calls,
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

    #[test]
    fn the_table_kind_follows_the_id_span() {
        let kind = |span: i64, count: usize| match CallsById::with_range(1, span, count) {
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
