//! One row per engine step, in time order: its CPU duration, the GPU time
//! and kernels it launched, how it compares with its phase's median, and
//! the `--filter-nvtx NAME/INDEX` that digests that step alone. The phase
//! report gives medians; this is where the one slow step is found.

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
}

/// What the LLM view knows of a step.
pub struct StepFacts {
    /// The step's range, an index into [`Trace::nvtx`].
    pub range: u32,
    pub phase: Phase,
    pub tokens: Option<u64>,
    pub gpu_ns: i64,
    pub kernels: u64,
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
