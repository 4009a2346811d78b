//! `nsys-digest diff BASE NEW`: phases, CUDA graphs, kernels, layers, kernel
//! categories, exposed communication, NVTX ranges and totals of two digests,
//! normalised so runs of different length compare fairly: per token within a
//! phase when both runs have step ranges, per step for totals and ranges,
//! raw totals otherwise.

use super::llm::{Phase, PhaseSummary};
use super::Digest;
use crate::diff::{finish, DiffReport, DiffRow, Worse};
use std::collections::BTreeMap;

/// A kernel or range row can fail the run only when its change moves its
/// phase (or the whole run) by at least this many percent: a small kernel
/// 10 % slower is shown, but is not a regression of the workload.
pub const MIN_IMPACT_PCT: f64 = 1.0;

struct Side<'a> {
    d: &'a Digest,
    tokens: BTreeMap<String, f64>,
    phase_ns: BTreeMap<String, f64>,
    steps: f64,
}

/// The phases a diff compares row by row; idle steps have no tokens.
const COMPARED_PHASES: [Phase; 3] = [Phase::Prefill, Phase::Decode, Phase::Mixed];

impl<'a> Side<'a> {
    /// The run's summary of one phase, if it has that phase.
    fn phase(&self, phase: Phase) -> Option<&'a PhaseSummary> {
        self.d.llm.phases.phase(phase)
    }

    fn new(d: &'a Digest) -> Side<'a> {
        let mut tokens = BTreeMap::new();
        let mut phase_ns = BTreeMap::new();
        for p in &d.llm.phases.phases {
            if let Some(t) = p.tokens.filter(|t| *t > 0) {
                tokens.insert(p.phase.as_str().to_string(), t as f64);
            }
            phase_ns.insert(p.phase.as_str().to_string(), p.gpu_ns as f64);
        }
        let steps = d.llm.phases.phases.iter().map(|p| p.steps).sum::<u64>() as f64;
        Side {
            d,
            tokens,
            phase_ns,
            steps,
        }
    }

    fn phased(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// GPU time inside steps when phased (warm-up and capture outside steps
    /// differ between runs), else all GPU time.
    fn step_gpu_ns(&self) -> f64 {
        if self.phase_ns.is_empty() {
            self.gpu_ns()
        } else {
            self.phase_ns.values().sum()
        }
    }

    fn gpu_ns(&self) -> f64 {
        let graph = if self.d.llm.graphs.trace_mode == "graph" {
            self.d.llm.graphs.gpu_ns
        } else {
            0
        };
        (self.d.kernels.iter().map(|k| k.time.total_ns).sum::<i64>() + graph) as f64
    }
}

/// Compare two digests. `threshold_pct` marks regressions.
pub fn compare(base: &Digest, new: &Digest, threshold_pct: f64) -> DiffReport {
    let (b, n) = (Side::new(base), Side::new(new));
    let phased = b.phased() && n.phased();
    let per_step = b.steps > 0.0 && n.steps > 0.0;
    let mut rows = Vec::new();
    if phased {
        phase_rows(&b, &n, &mut rows);
    }
    // The headline: the phase rows, or else the total.
    let mut headline: Vec<usize> = (0..rows.len()).collect();
    rows.push(total_row(&b, &n, per_step));
    if headline.is_empty() {
        headline.push(rows.len() - 1);
    }
    if phased {
        phase_detail_rows(&b, &n, &mut rows);
    }
    graph_rows(&b, &n, per_step, &mut rows);
    kernel_rows(&b, &n, phased, &mut rows);
    layer_rows(&b, &n, phased, &mut rows);
    category_rows(&b, &n, phased, &mut rows);
    communication_rows(&b, &n, per_step, &mut rows);
    nvtx_rows(&b, &n, per_step, &mut rows);
    let normalisation = if phased {
        "kernels per token of their phase; totals and NVTX ranges per step".to_string()
    } else if per_step {
        "totals and NVTX ranges per step; kernels as totals".to_string()
    } else {
        "raw totals (no step ranges in one of the runs)".to_string()
    };
    let normalisation = match &base.source.filter {
        Some(f) => format!("{normalisation}; each run cut to {}", f.filter),
        None => normalisation,
    };
    let mut report = finish(
        &base.source.file,
        &new.source.file,
        normalisation,
        threshold_pct,
        rows,
        &headline,
    );
    if let Some(change) = graph_mode_change(base, new) {
        report.summary.push_str(&format!("; {change}"));
    }
    report
}

/// CUDA graphs, where either run launched one: launches per step (or in
/// all) and the share of GPU time inside graphs. Never gated: fewer
/// launches may be a win or graphs that stopped working, and the mode
/// change in the summary tells which.
fn graph_rows(b: &Side, n: &Side, per_step: bool, rows: &mut Vec<DiffRow>) {
    if b.d.llm.graphs.launches == 0 && n.d.llm.graphs.launches == 0 {
        return;
    }
    let launches = |s: &Side| {
        let all = s.d.llm.graphs.launches as f64;
        if per_step {
            all / s.steps
        } else {
            all
        }
    };
    let share = |s: &Side| s.d.llm.graphs.graph_share_pct;
    rows.push(DiffRow::new(
        "graphs",
        "graph launches",
        if per_step { "per step" } else { "in all" },
        Some(launches(b)),
        Some(launches(n)),
        Worse::Lower,
        false,
    ));
    rows.push(
        DiffRow::new(
            "graphs",
            "GPU time in graphs",
            "% of GPU time",
            Some(share(b)),
            Some(share(n)),
            Worse::Lower,
            false,
        )
        .in_points(),
    );
}

/// Communication over every GPU: exposed time per step (or in all), which
/// can fail the run like a kernel, and the share hidden behind compute.
fn communication_rows(b: &Side, n: &Side, per_step: bool, rows: &mut Vec<DiffRow>) {
    if b.d.llm.communication.is_empty() && n.d.llm.communication.is_empty() {
        return;
    }
    let scale = |s: &Side| if per_step { s.steps } else { 1.0 };
    let exposed = |s: &Side| {
        let c = &s.d.llm.communication;
        let ns = c.iter().map(|r| r.exposed_ns).sum::<i64>() as f64 / scale(s);
        (ns, s.step_gpu_ns() / scale(s))
    };
    let overlapped_pct = |s: &Side| {
        let c = &s.d.llm.communication;
        let busy = c.iter().map(|r| r.busy_ns).sum::<i64>();
        let overlapped = c.iter().map(|r| r.overlapped_ns).sum::<i64>();
        crate::stats::percent(overlapped as f64, busy as f64)
    };
    let (eb, en) = (exposed(b), exposed(n));
    rows.push(DiffRow::new(
        "communication",
        "exposed communication",
        if per_step { "ns per step" } else { "ns" },
        Some(eb.0),
        Some(en.0),
        Worse::Higher,
        material(Some(&eb), Some(&en)),
    ));
    rows.push(
        DiffRow::new(
            "communication",
            "communication under compute",
            "% of its time",
            Some(overlapped_pct(b)),
            Some(overlapped_pct(n)),
            Worse::Lower,
            false,
        )
        .in_points(),
    );
}

/// The CUDA-graph mode, where the two runs differ: a reviewer's first
/// question when the decode step time moves.
fn graph_mode_change(base: &Digest, new: &Digest) -> Option<String> {
    let (b, n) = (&base.llm.graphs.mode, &new.llm.graphs.mode);
    (b != n).then(|| format!("CUDA graph mode {b} → {n}"))
}

/// Per phase either run has: GPU time per token and the step median.
fn phase_rows(b: &Side, n: &Side, rows: &mut Vec<DiffRow>) {
    for phase in COMPARED_PHASES {
        let key = phase.as_str();
        let (pb, pn) = (b.phase(phase), n.phase(phase));
        if pb.is_none() && pn.is_none() {
            continue;
        }
        rows.push(DiffRow::new(
            "phases",
            key,
            "GPU ns per token",
            pb.and_then(|p| p.gpu_ns_per_token),
            pn.and_then(|p| p.gpu_ns_per_token),
            Worse::Higher,
            true,
        ));
        rows.push(DiffRow::new(
            "phases",
            key,
            "step median ns",
            pb.map(|p| p.step_median_ns),
            pn.map(|p| p.step_median_ns),
            Worse::Higher,
            true,
        ));
    }
}

/// Per phase either run has: how busy its steps kept the GPU, and the CUDA
/// API calls each step's thread made and their time. Not in the headline,
/// which speaks of GPU and step time, and never gated: they explain a
/// change in the step time (graphs that stopped replaying, a new
/// synchronisation) rather than measure the workload.
fn phase_detail_rows(b: &Side, n: &Side, rows: &mut Vec<DiffRow>) {
    for phase in COMPARED_PHASES {
        let (pb, pn) = (b.phase(phase), n.phase(phase));
        if pb.is_none() && pn.is_none() {
            continue;
        }
        let row = |metric: &str, value: fn(&PhaseSummary) -> Option<f64>, worse| {
            DiffRow::new(
                "phases",
                phase.as_str(),
                metric,
                pb.and_then(value),
                pn.and_then(value),
                worse,
                false,
            )
        };
        rows.push(
            row(
                "GPU busy % of step window",
                |p| p.gpu_busy_pct,
                Worse::Lower,
            )
            .in_points(),
        );
        rows.push(row(
            "CUDA API calls per step",
            |p| Some(p.api_calls_per_step),
            Worse::Higher,
        ));
        rows.push(row(
            "CUDA API ns per step",
            |p| Some(p.api_ns_per_step),
            Worse::Higher,
        ));
    }
}

/// GPU time per step where both runs have steps, else in all.
fn total_row(b: &Side, n: &Side, per_step: bool) -> DiffRow {
    let norm_total = |s: &Side| {
        if per_step {
            s.step_gpu_ns() / s.steps
        } else {
            s.gpu_ns()
        }
    };
    DiffRow::new(
        "total",
        if per_step {
            "GPU time in steps"
        } else {
            "GPU time"
        },
        if per_step { "ns per step" } else { "ns" },
        Some(norm_total(b)),
        Some(norm_total(n)),
        Worse::Higher,
        true,
    )
}

/// Per (phase, kernel) GPU time per token when phased, else per kernel.
fn kernel_rows(b: &Side, n: &Side, phased: bool, rows: &mut Vec<DiffRow>) {
    let (kb, kn) = (kernel_values(b, phased), kernel_values(n, phased));
    let keys: std::collections::BTreeSet<&KernelKey> = kb.keys().chain(kn.keys()).collect();
    for key in keys {
        let (vb, vn) = (kb.get(key), kn.get(key));
        let name = if phased {
            format!("{}: {}", key.0, key.1)
        } else {
            key.1.clone()
        };
        rows.push(DiffRow::new(
            "kernels",
            &name,
            if phased { "GPU ns per token" } else { "GPU ns" },
            vb.map(|v| v.0),
            vn.map(|v| v.0),
            Worse::Higher,
            material(vb, vn),
        ));
    }
}

/// (phase, kernel); the phase is empty when not compared by phase.
type KernelKey = (String, String);

/// Per kernel (and phase): its GPU time, and the time of the whole it
/// belongs to, in the same unit: per token by phase, else in ns.
fn kernel_values(s: &Side, phased: bool) -> BTreeMap<KernelKey, (f64, f64)> {
    let mut out = BTreeMap::new();
    if phased {
        for k in &s.d.llm.phase_kernels {
            let (Some(tokens), Some(phase_ns)) = (s.tokens.get(&k.phase), s.phase_ns.get(&k.phase))
            else {
                continue; // outside steps: warm-up and capture, not comparable
            };
            out.insert(
                (k.phase.clone(), k.kernel.clone()),
                (k.gpu_ns as f64 / tokens, phase_ns / tokens),
            );
        }
    } else {
        let total = s.gpu_ns();
        // Summed by name: `--by-process` gives a name one row per process.
        for k in &s.d.kernels {
            out.entry((String::new(), k.name.clone()))
                .or_insert((0.0, total))
                .0 += k.time.total_ns as f64;
        }
    }
    out
}

/// Both sides present, and the change moves the whole by [`MIN_IMPACT_PCT`].
fn material(base: Option<&(f64, f64)>, new: Option<&(f64, f64)>) -> bool {
    match (base, new) {
        (Some(&(b, whole)), Some(&(n, _))) => {
            whole > 0.0 && 100.0 * (n - b).abs() / whole >= MIN_IMPACT_PCT
        }
        _ => false,
    }
}

/// Per (phase, layer type): GPU time per token when phased, else per
/// layer type in total.
fn layer_rows(b: &Side, n: &Side, phased: bool, rows: &mut Vec<DiffRow>) {
    let parts = |s: &Side| -> Vec<PhasePart> {
        let l = &s.d.llm.phase_layers;
        l.iter()
            .map(|l| (l.phase.clone(), l.layer_type.clone(), l.gpu_ns))
            .collect()
    };
    phase_part_rows("layers", b, n, phased, parts, rows);
}

/// Per (phase, kernel category), as the layers: many small kernels that
/// each stay under [`MIN_IMPACT_PCT`] still move their category.
fn category_rows(b: &Side, n: &Side, phased: bool, rows: &mut Vec<DiffRow>) {
    let parts = |s: &Side| -> Vec<PhasePart> {
        let c = &s.d.llm.categories;
        c.iter()
            .map(|c| (c.phase.clone(), c.category.clone(), c.gpu_ns))
            .collect()
    };
    phase_part_rows("categories", b, n, phased, parts, rows);
}

/// (phase, part of it, GPU ns).
type PhasePart = (String, String, i64);

/// One row per part of a phase: GPU time per token of the phase when both
/// runs are phased, else the part's total over every phase.
fn phase_part_rows(
    section: &str,
    b: &Side,
    n: &Side,
    phased: bool,
    parts: impl Fn(&Side) -> Vec<PhasePart>,
    rows: &mut Vec<DiffRow>,
) {
    let collect = |s: &Side| -> BTreeMap<String, (f64, f64)> {
        let mut out = BTreeMap::new();
        for (phase, part, gpu_ns) in parts(s) {
            if phased {
                let (Some(tokens), Some(phase_ns)) = (s.tokens.get(&phase), s.phase_ns.get(&phase))
                else {
                    continue; // outside steps: warm-up and capture, not comparable
                };
                out.insert(
                    format!("{phase}: {part}"),
                    (gpu_ns as f64 / tokens, phase_ns / tokens),
                );
            } else {
                out.entry(part).or_insert((0.0, s.gpu_ns())).0 += gpu_ns as f64;
            }
        }
        out
    };
    let (pb, pn) = (collect(b), collect(n));
    let keys: std::collections::BTreeSet<&String> = pb.keys().chain(pn.keys()).collect();
    for key in keys {
        let (vb, vn) = (pb.get(key), pn.get(key));
        rows.push(DiffRow::new(
            section,
            key,
            if phased { "GPU ns per token" } else { "GPU ns" },
            vb.map(|v| v.0),
            vn.map(|v| v.0),
            Worse::Higher,
            material(vb, vn),
        ));
    }
}

/// Per NVTX range: projected GPU time per step (or total).
fn nvtx_rows(b: &Side, n: &Side, per_step: bool, rows: &mut Vec<DiffRow>) {
    let collect = |s: &Side| -> BTreeMap<String, (f64, f64)> {
        let scale = if per_step { s.steps } else { 1.0 };
        let whole = s.step_gpu_ns() / scale;
        s.d.nvtx
            .iter()
            .filter_map(|r| {
                let g = r.gpu.as_ref()?;
                Some((r.range.clone(), (g.time.total_ns as f64 / scale, whole)))
            })
            .collect()
    };
    let (rb, rn) = (collect(b), collect(n));
    let keys: std::collections::BTreeSet<&String> = rb.keys().chain(rn.keys()).collect();
    for key in keys {
        let (vb, vn) = (rb.get(key), rn.get(key));
        rows.push(DiffRow::new(
            "nvtx ranges",
            key,
            if per_step {
                "projected GPU ns per step"
            } else {
                "projected GPU ns"
            },
            vb.map(|v| v.0),
            vn.map(|v| v.0),
            Worse::Higher,
            material(vb, vn),
        ));
    }
}
