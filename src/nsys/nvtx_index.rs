//! NVTX containment without a quadratic join. A GPU operation belongs to an
//! NVTX range when the API call that launched it lies inside the range on the
//! same thread (NVIDIA's rule). One sweep per thread over ranges and calls,
//! both sorted by start, finds every enclosing range in
//! O((ranges + calls) · depth).

use super::bit_set::BitSet;
use super::launch_index::LaunchIndex;
use super::trace::Trace;
use rustc_hash::FxHashMap as HashMap;

/// Which ranges enclose each launching API call, and how ranges nest.
#[derive(Debug, Default)]
pub struct NvtxIndex {
    /// End of each range in `trace.nvtx`, open ranges clamped to the last
    /// NVTX timestamp as `nsys stats` does.
    pub clamped_end: Vec<i64>,
    /// Ranges that start and end on the same thread: only these project.
    pub projectable: Vec<bool>,
    /// The swept calls: launching calls on threads with ranges. Only they
    /// get a span, found by rank; a span per API call took 98 MB on the
    /// SYNTHETIC 1 GB export, where most calls launch nothing.
    swept: BitSet,
    swept_ranks: Vec<u32>,
    /// Per swept call, by rank, where its enclosing ranges sit in
    /// `enclosing`: (first, count). The sweep writes each call's ranges in
    /// one run, so they need no grouping afterwards; a call in the same
    /// ranges as the call before shares that call's run.
    spans: Vec<(u32, u32)>,
    enclosing: Vec<u32>,
    /// Tightest enclosing projectable range on the same thread.
    pub parent: Vec<Option<u32>>,
}

impl NvtxIndex {
    pub fn build(trace: &Trace, launches: &LaunchIndex) -> NvtxIndex {
        let ranges = &trace.nvtx;
        let clamped_end = clamped_ends(trace);
        let projectable: Vec<bool> = ranges.iter().map(|r| r.end_global_tid.is_none()).collect();
        let ranges_by_thread = projectable_ranges_by_thread(trace, &projectable);
        let threads = trace.api_calls.threads();
        let (mut calls_of_slot, swept) = swept_calls(trace, launches, &ranges_by_thread);
        let (swept_ranks, swept_count) = swept.word_ranks();

        let mut spans = vec![(0u32, 0u32); swept_count as usize];
        let mut enclosing: Vec<u32> = Vec::new();
        let mut parent = vec![None; ranges.len()];
        let slot_of_thread = slots_by_thread(threads);
        for (tid, mut thread_ranges) in ranges_by_thread {
            // Outermost first where ranges start together.
            thread_ranges
                .sort_unstable_by_key(|&i| (ranges[i as usize].start, -clamped_end[i as usize], i));
            let thread = slot_of_thread
                .get(&tid)
                .and_then(|&slot| calls_of_slot[slot].take());
            if let Some(calls) = thread.map(|t| t.in_start_order(trace)) {
                let mut sweep = Sweep {
                    spans: &mut spans,
                    swept: &swept,
                    swept_ranks: &swept_ranks,
                    enclosing: &mut enclosing,
                    last: (0, 0),
                };
                sweep.calls(trace, &clamped_end, &thread_ranges, &calls);
            }
            sweep_parents(ranges, &clamped_end, &thread_ranges, &mut parent);
        }

        NvtxIndex {
            clamped_end,
            projectable,
            swept,
            swept_ranks,
            spans,
            enclosing,
            parent,
        }
    }

    /// Every projectable range that encloses API call `call`.
    pub fn enclosing(&self, call: u32) -> &[u32] {
        if !self.swept.contains(call as usize) {
            return &[];
        }
        let (first, count) = self.spans[self.swept.rank(call as usize, &self.swept_ranks)];
        &self.enclosing[first as usize..first as usize + count as usize]
    }

    /// The ranges around a launch's call; none for a launch without one.
    pub fn around_call(&self, call: Option<u32>) -> &[u32] {
        call.map_or(&[], |c| self.enclosing(c))
    }

    /// The innermost enclosing range: the one that started last, as in
    /// `cuda_gpu_kern_sum:nvtx-name` (`ORDER BY start DESC LIMIT 1`).
    pub fn innermost(&self, trace: &Trace, call: u32) -> Option<u32> {
        self.enclosing(call)
            .iter()
            .copied()
            .max_by_key(|&r| (trace.nvtx[r as usize].start, r))
    }

    /// For each (thread, time) point: every projectable range on that thread
    /// open at that time. Used to place captured graph nodes in the ranges
    /// that were open while the graph was captured.
    pub fn ranges_at(&self, trace: &Trace, points: &[(i64, i64)]) -> Vec<Vec<u32>> {
        let mut by_thread: HashMap<i64, Vec<u32>> = HashMap::default();
        for (i, r) in trace.nvtx.iter().enumerate() {
            if self.projectable[i] {
                by_thread.entry(r.global_tid).or_default().push(i as u32);
            }
        }
        for v in by_thread.values_mut() {
            v.sort_unstable_by_key(|&i| trace.nvtx[i as usize].start);
        }
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_unstable_by_key(|&i| points[i]);
        let mut out = vec![Vec::new(); points.len()];
        let mut i = 0;
        while i < order.len() {
            let tid = points[order[i]].0;
            let mut j = i;
            while j < order.len() && points[order[j]].0 == tid {
                j += 1;
            }
            if let Some(ranges) = by_thread.get(&tid) {
                let mut next = 0;
                let mut active: Vec<u32> = Vec::new();
                for &p in &order[i..j] {
                    let t = points[p].1;
                    while next < ranges.len() && trace.nvtx[ranges[next] as usize].start <= t {
                        active.push(ranges[next]);
                        next += 1;
                    }
                    active.retain(|&r| self.clamped_end[r as usize] >= t);
                    out[p] = active.clone();
                }
            }
            i = j;
        }
        out
    }

    /// Nesting level of a range (0 at the top), `None` if its parent chain
    /// loops (identical intervals), which NVIDIA's recursive query also drops.
    pub fn level(&self, range: u32) -> Option<u32> {
        let mut level = 0;
        let mut cur = range;
        while let Some(p) = self.parent[cur as usize] {
            level += 1;
            cur = p;
            if level as usize > self.parent.len() {
                return None;
            }
        }
        Some(level)
    }
}

/// Each range's end, an open one clamped to the last NVTX timestamp as
/// `nsys stats` does.
fn clamped_ends(trace: &Trace) -> Vec<i64> {
    let ranges = &trace.nvtx;
    let last_ts = ranges
        .iter()
        .map(|r| r.end.map_or(r.start, |e| e.max(r.start)))
        .max()
        .unwrap_or(0);
    ranges.iter().map(|r| r.end.unwrap_or(last_ts)).collect()
}

fn projectable_ranges_by_thread(trace: &Trace, projectable: &[bool]) -> HashMap<i64, Vec<u32>> {
    let mut ranges_by_thread: HashMap<i64, Vec<u32>> = HashMap::default();
    for (i, r) in trace.nvtx.iter().enumerate() {
        if projectable[i] {
            ranges_by_thread
                .entry(r.global_tid)
                .or_default()
                .push(i as u32);
        }
    }
    ranges_by_thread
}

/// The calls the sweep places: launching calls on threads with ranges,
/// gathered per thread slot in call order, which is nearly start order.
/// One read of each launching call's row: its thread slot, and whether its
/// thread's calls are still in start order, so that a sorted thread is not
/// sorted.
fn swept_calls(
    trace: &Trace,
    launches: &LaunchIndex,
    ranges_by_thread: &HashMap<i64, Vec<u32>>,
) -> (Vec<Option<ThreadCalls>>, BitSet) {
    let mut launching = BitSet::new(trace.api_calls.len());
    for c in launches
        .kernel_call
        .iter()
        .chain(launches.memop_call.iter())
        .chain(launches.graph_exec_call.iter())
        .flatten()
    {
        launching.insert(c as usize);
    }
    let mut calls_of_slot: Vec<Option<ThreadCalls>> = trace
        .api_calls
        .threads()
        .iter()
        .map(|tid| {
            ranges_by_thread
                .contains_key(tid)
                .then(ThreadCalls::default)
        })
        .collect();
    let mut swept = BitSet::new(trace.api_calls.len());
    for c in launching.ones() {
        let call = &trace.api_calls[c];
        if let Some(thread) = &mut calls_of_slot[call.thread_slot() as usize] {
            thread.push(c as u32, call.start);
            swept.insert(c);
        }
    }
    (calls_of_slot, swept)
}

/// Each thread's slot in the call rows' list of threads.
fn slots_by_thread(threads: &[i64]) -> HashMap<i64, usize> {
    threads
        .iter()
        .enumerate()
        .map(|(slot, &tid)| (tid, slot))
        .collect()
}

/// One thread's launching calls, in call order, and whether that is also
/// start order: it is in most real exports, not in all.
struct ThreadCalls {
    calls: Vec<u32>,
    last_start: i64,
    sorted: bool,
}

impl Default for ThreadCalls {
    fn default() -> Self {
        ThreadCalls {
            calls: Vec::new(),
            last_start: i64::MIN,
            sorted: true,
        }
    }
}

impl ThreadCalls {
    fn push(&mut self, call: u32, start: i64) {
        self.sorted &= start >= self.last_start;
        self.last_start = start;
        self.calls.push(call);
    }

    fn in_start_order(mut self, trace: &Trace) -> Vec<u32> {
        if !self.sorted {
            // Nearly sorted: the run-aware stable sort is close to linear.
            self.calls
                .sort_by_key(|&c| trace.api_calls[c as usize].start);
        }
        self.calls
    }
}

/// Where a thread's sweep writes each call's enclosing ranges.
struct Sweep<'a> {
    spans: &'a mut [(u32, u32)],
    swept: &'a BitSet,
    swept_ranks: &'a [u32],
    enclosing: &'a mut Vec<u32>,
    /// The span written last.
    last: (u32, u32),
}

impl Sweep<'_> {
    /// Calls and ranges of one thread, both sorted by start. Each call's
    /// ranges go out in one run, outermost first.
    fn calls(&mut self, trace: &Trace, clamped_end: &[i64], thread_ranges: &[u32], calls: &[u32]) {
        let ranges = &trace.nvtx;
        let mut next = 0;
        let mut active: Vec<u32> = Vec::new();
        // While no range starts and none of the active ones ends, a call
        // inside all of them has the last call's run, if that run was all
        // of them too: most calls of a layer, found without walking the
        // ranges.
        let mut last_is_all_active = false;
        let mut earliest_end = i64::MAX;
        for &c in calls {
            let call = &trace.api_calls[c as usize];
            let call_end = trace.api_calls.end(call);
            let slot = self.swept.rank(c as usize, self.swept_ranks);
            let starts = next < thread_ranges.len()
                && ranges[thread_ranges[next] as usize].start <= call.start;
            if last_is_all_active && !starts && earliest_end >= call.start.max(call_end) {
                self.spans[slot] = self.last;
                continue;
            }
            while next < thread_ranges.len()
                && ranges[thread_ranges[next] as usize].start <= call.start
            {
                active.push(thread_ranges[next]);
                next += 1;
            }
            // A range that ended before this call starts cannot hold any later call.
            active.retain(|&r| clamped_end[r as usize] >= call.start);
            let first = self.enclosing.len();
            self.enclosing.extend(
                active
                    .iter()
                    .filter(|&&r| clamped_end[r as usize] >= call_end),
            );
            last_is_all_active = self.enclosing.len() - first == active.len();
            earliest_end = active
                .iter()
                .map(|&r| clamped_end[r as usize])
                .min()
                .unwrap_or(i64::MAX);
            self.spans[slot] = self.share_last_run(first);
        }
    }

    /// The span of the run just written from `first`. Consecutive calls
    /// mostly sit in the same ranges (a layer launches tens of kernels), so
    /// a run equal to the last one is dropped and the last span shared: on
    /// the SYNTHETIC 1 GB export the list of every call's ranges outgrew
    /// the cache and was copied as it doubled.
    fn share_last_run(&mut self, first: usize) -> (u32, u32) {
        let len = self.enclosing.len() - first;
        let (last_first, last_len) = (self.last.0 as usize, self.last.1 as usize);
        // Element by element: runs are a few ranges long, shorter than a
        // call to memcmp is worth.
        let run = &self.enclosing[first..];
        let last = &self.enclosing[last_first..last_first + last_len];
        if len == last_len && run.iter().zip(last).all(|(a, b)| a == b) {
            self.enclosing.truncate(first);
        } else {
            self.last = (first as u32, len as u32);
        }
        self.last
    }
}

/// The tightest enclosing range of each range on one thread, as NVIDIA's
/// NVTX_PARENT table defines it: minimal (start gap + end gap).
fn sweep_parents(
    ranges: &[super::trace::NvtxRange],
    clamped_end: &[i64],
    thread_ranges: &[u32],
    parent: &mut [Option<u32>],
) {
    let mut next = 0;
    let mut active: Vec<u32> = Vec::new();
    for &c in thread_ranges {
        let (cs, ce) = (ranges[c as usize].start, clamped_end[c as usize]);
        while next < thread_ranges.len() && ranges[thread_ranges[next] as usize].start <= cs {
            active.push(thread_ranges[next]);
            next += 1;
        }
        active.retain(|&r| clamped_end[r as usize] >= cs);
        parent[c as usize] = active
            .iter()
            .copied()
            .filter(|&p| p != c && clamped_end[p as usize] >= ce)
            .min_by_key(|&p| {
                (
                    (cs - ranges[p as usize].start) + (clamped_end[p as usize] - ce),
                    p,
                )
            });
    }
}
