//! One row per engine step, in time order: its CPU duration, the GPU time
//! and kernels it launched, how it compares with its phase's median, and
//! the `--filter-nvtx NAME/INDEX` that digests that step alone. The phase
//! report gives medians; this is where the one slow step is found.
//!
//! Each step also has a GPU window: from its first GPU work to its last,
//! and how much of that some of its work ran. A decode step whose GPU sits
//! idle between kernels is bound by the CPU's launches, which is what CUDA
//! graphs exist to remove.

use super::llm::Phase;
use super::time_filter::range_spec;
use super::trace::Trace;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// One engine step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    /// Position among all steps by start time, from 0.
    pub step: u64,
    pub phase: Phase,
    /// The range as `--filter-nvtx` names it: its text, `@domain` when in
    /// a named domain.
    pub range: String,
    /// The INDEX of `--filter-nvtx RANGE/INDEX` that selects this step:
    /// its rank by start among the ranges of that name. Null in a digest
    /// that was itself filtered, where a rank would not be the file's.
    pub filter_index: Option<u64>,
    pub start_ns: i64,
    /// Null for a range that never ended.
    pub duration_ns: Option<i64>,
    /// Kernels launched inside the step (graph kernels: by the step that
    /// launched the graph), plus whole-graph executions in graph trace mode.
    pub gpu_ns: i64,
    /// Kernel rows among them; graph executions of graph trace mode are not
    /// counted.
    pub kernels: u64,
    pub tokens: Option<u64>,
    /// Duration ÷ the median duration of the phase's steps.
    pub vs_phase_median: Option<f64>,
    /// The start of the step's first GPU work and the end of its last;
    /// null when it launched none.
    pub gpu_start_ns: Option<i64>,
    pub gpu_end_ns: Option<i64>,
    /// Of that window, the time some of the step's GPU work ran: the union
    /// of its intervals, so overlapping kernels count once.
    pub gpu_busy_ns: i64,
    /// `gpu_busy_ns` ÷ the window; null for a window of no length.
    pub gpu_busy_pct: Option<f64>,
    /// CUDA API calls the step's thread made inside the step range, and
    /// their summed duration (as `cuda_api_sum` sums them).
    pub api_calls: u64,
    pub api_ns: i64,
}

/// What the LLM view knows of a step.
pub struct StepFacts {
    /// The step's range, an index into [`Trace::nvtx`].
    pub range: u32,
    pub phase: Phase,
    pub tokens: Option<u64>,
    pub gpu_ns: i64,
    pub kernels: u64,
    pub window: GpuWindow,
    /// API calls inside the step, and their time.
    pub api: (u64, i64),
}

/// The steps as rows, by start time; `medians` is each phase's median
/// step duration, as the phase report gives it.
pub fn step_rows(trace: &Trace, steps: &[StepFacts], medians: &[(Phase, f64)]) -> Vec<StepRow> {
    let ranks = (trace.filter.is_none()).then(|| filter_ranks(trace, steps));
    let mut rows: Vec<StepRow> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = &trace.nvtx[s.range as usize];
            let duration_ns = r.end.map(|e| e - r.start);
            let median = medians
                .iter()
                .find(|(phase, _)| *phase == s.phase)
                .map_or(0.0, |&(_, m)| m);
            let (gpu_start_ns, gpu_end_ns) = s.window.bounds().unzip();
            StepRow {
                step: 0,
                phase: s.phase,
                range: range_spec(trace, r),
                filter_index: ranks.as_ref().map(|ranks| ranks[i]),
                start_ns: r.start,
                duration_ns,
                gpu_ns: s.gpu_ns,
                kernels: s.kernels,
                tokens: s.tokens,
                vs_phase_median: duration_ns
                    .filter(|_| median > 0.0)
                    .map(|d| d as f64 / median),
                gpu_start_ns,
                gpu_end_ns,
                gpu_busy_ns: s.window.busy_ns(),
                gpu_busy_pct: s.window.busy_pct(),
                api_calls: s.api.0,
                api_ns: s.api.1,
            }
        })
        .collect();
    rows.sort_by_key(|r| r.start_ns);
    for (i, r) in rows.iter_mut().enumerate() {
        r.step = i as u64;
    }
    rows
}

/// Each step's rank by start among the ranges of its name, as
/// `--filter-nvtx` counts them: every range of that name, step or not, on
/// any thread, ties in table order.
fn filter_ranks(trace: &Trace, steps: &[StepFacts]) -> Vec<u64> {
    let mut by_name: FxHashMap<u32, Vec<(i64, u32)>> = FxHashMap::default();
    for s in steps {
        by_name
            .entry(trace.nvtx[s.range as usize].name)
            .or_default();
    }
    for (i, r) in trace.nvtx.iter().enumerate() {
        if let Some(list) = by_name.get_mut(&r.name) {
            list.push((r.start, i as u32));
        }
    }
    let mut rank: FxHashMap<u32, u64> = FxHashMap::default();
    for list in by_name.values_mut() {
        list.sort_by_key(|&(start, _)| start);
        rank.extend(list.iter().enumerate().map(|(k, &(_, i))| (i, k as u64)));
    }
    steps.iter().map(|s| rank[&s.range]).collect()
}

/// One step's GPU work as its intervals arrive: the first start, and the
/// union of the intervals as one open segment plus the length of those
/// closed before it. Exact while no interval starts before the open
/// segment, which holds for kernels in start order, the order nsys writes
/// its kernel table in; a window that sees one out of order is measured
/// again from all its intervals ([`GpuWindow::measured`]).
#[derive(Debug, Clone, Copy)]
pub struct GpuWindow {
    first: i64,
    open_start: i64,
    open_end: i64,
    closed_ns: i64,
    any: bool,
    in_order: bool,
}

impl Default for GpuWindow {
    fn default() -> Self {
        GpuWindow {
            first: 0,
            open_start: 0,
            open_end: 0,
            closed_ns: 0,
            any: false,
            in_order: true,
        }
    }
}

impl GpuWindow {
    /// One interval; an end before its start counts as no time.
    #[inline]
    pub fn add(&mut self, start: i64, end: i64) {
        let end = end.max(start);
        if !self.any {
            (self.first, self.open_start, self.open_end) = (start, start, end);
            self.any = true;
        } else if start < self.open_start {
            self.in_order = false;
        } else if start <= self.open_end {
            self.open_end = self.open_end.max(end);
        } else {
            self.closed_ns += self.open_end - self.open_start;
            (self.open_start, self.open_end) = (start, end);
        }
    }

    /// Whether the window must be measured again from all its intervals.
    pub fn needs_measuring(&self) -> bool {
        !self.in_order
    }

    /// Marks the window for measuring again: an interval will come that
    /// [`GpuWindow::add`] cannot take in order.
    pub fn set_unordered(&mut self) {
        self.in_order = false;
    }

    /// The window of these intervals, measured by sorting them.
    pub fn measured(intervals: &mut [(i64, i64)]) -> GpuWindow {
        intervals.sort_unstable();
        let mut w = GpuWindow::default();
        for &(start, end) in intervals.iter() {
            w.add(start, end);
        }
        w
    }

    /// The first start and the last end; `None` without GPU work.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        // In order, no closed segment ends after the open one starts.
        self.any.then_some((self.first, self.open_end))
    }

    pub fn busy_ns(&self) -> i64 {
        if self.any {
            self.closed_ns + self.open_end - self.open_start
        } else {
            0
        }
    }

    pub fn busy_pct(&self) -> Option<f64> {
        let (start, end) = self.bounds()?;
        (end > start).then(|| crate::stats::percent(self.busy_ns() as f64, (end - start) as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::GpuWindow;

    /// What the window says of these intervals, added in the order given.
    fn streamed(intervals: &[(i64, i64)]) -> GpuWindow {
        let mut w = GpuWindow::default();
        intervals.iter().for_each(|&(s, e)| w.add(s, e));
        w
    }

    #[test]
    fn in_order_intervals_are_measured_as_they_come() {
        // Gaps, an overlap, one inside another, and one touching the last.
        let spans = [(0, 10), (20, 30), (25, 40), (26, 27), (40, 45), (50, 50)];
        let w = streamed(&spans);
        assert!(!w.needs_measuring());
        assert_eq!(w.bounds(), Some((0, 50)));
        assert_eq!(w.busy_ns(), 10 + 25);
        let sorted = GpuWindow::measured(&mut spans.to_vec());
        assert_eq!(
            (sorted.bounds(), sorted.busy_ns()),
            (w.bounds(), w.busy_ns())
        );
    }

    #[test]
    fn an_interval_out_of_order_asks_for_measuring() {
        let mut spans = vec![(20, 30), (0, 25), (40, 41)];
        assert!(streamed(&spans).needs_measuring());
        let w = GpuWindow::measured(&mut spans);
        assert_eq!((w.bounds(), w.busy_ns()), (Some((0, 41)), 31));
        assert_eq!(w.busy_pct(), Some(100.0 * 31.0 / 41.0));
    }

    #[test]
    fn no_work_and_no_length() {
        assert_eq!(GpuWindow::default().bounds(), None);
        assert_eq!(GpuWindow::default().busy_pct(), None);
        let w = streamed(&[(5, 3)]);
        assert_eq!(
            (w.bounds(), w.busy_ns(), w.busy_pct()),
            (Some((5, 5)), 0, None)
        );
    }
}
