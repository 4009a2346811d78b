//! Many profiles at once: one summary row per profile for the combined
//! table, and a progress bar that only shows on a terminal. Each worker
//! turns one profile into its row and drops the rest, so memory stays that
//! of the profiles in flight, not of the whole folder.

use crate::ncu::NcuDigest;
use crate::nsys::Digest;
use crate::render::{Cell, Column, Table};
use rayon::iter::{ParallelBridge, ParallelIterator};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Run `job` on every file on the rayon pool and return the results in
/// input order. Workers take files largest first, one at a time, so the run
/// does not end on one big profile while the other cores sit idle.
pub fn largest_first<T, F>(files: &[PathBuf], job: F) -> Vec<T>
where
    T: Send,
    F: Fn(&Path) -> T + Sync + Send,
{
    let mut order: Vec<(u64, usize)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (std::fs::metadata(f).map_or(0, |m| m.len()), i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut done: Vec<(usize, T)> = order
        .into_iter()
        .par_bridge()
        .map(|(_, i)| (i, job(&files[i])))
        .collect();
    done.sort_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// A progress bar on stderr, hidden when stderr is not a terminal or when
/// the user asked for quiet.
pub fn progress(len: usize, quiet: bool) -> indicatif::ProgressBar {
    if quiet || len < 2 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} profiles {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// One nsys profile in the combined table.
#[derive(Debug, Clone, Serialize)]
pub struct NsysRow {
    pub file: String,
    pub span_ns: Option<i64>,
    /// Kernel time plus graph-trace executions.
    pub gpu_ns: i64,
    pub top_kernel: Option<String>,
    pub top_kernel_share_pct: Option<f64>,
    pub prefill_gpu_ns_per_token: Option<f64>,
    pub decode_gpu_ns_per_token: Option<f64>,
    pub decode_step_median_ns: Option<f64>,
    /// How busy the decode steps kept the GPU in their GPU windows.
    pub decode_gpu_busy_pct: Option<f64>,
    pub graph_launches: u64,
    /// Mean over devices of idle time over the captured span.
    pub idle_pct: Option<f64>,
}

impl NsysRow {
    pub fn from_digest(d: &Digest) -> NsysRow {
        use crate::nsys::llm::Phase;
        let phase = |p: Phase| d.llm.phases.phases.iter().find(|s| s.phase == p);
        let kernel_ns: i64 = d.kernels.iter().map(|k| k.time.total_ns).sum();
        let graph_extra = if d.llm.graphs.trace_mode == "graph" {
            d.llm.graphs.gpu_ns
        } else {
            0
        };
        let devices: Vec<f64> = d
            .launch
            .busy
            .iter()
            .filter(|b| b.stream.is_none())
            .map(|b| b.idle_pct)
            .collect();
        NsysRow {
            file: d.source.file.clone(),
            span_ns: d.source.span_ns,
            gpu_ns: kernel_ns + graph_extra,
            top_kernel: d.kernels.first().map(|k| k.name.clone()),
            top_kernel_share_pct: d.kernels.first().map(|k| k.share_pct),
            prefill_gpu_ns_per_token: phase(Phase::Prefill).and_then(|p| p.gpu_ns_per_token),
            decode_gpu_ns_per_token: phase(Phase::Decode).and_then(|p| p.gpu_ns_per_token),
            decode_step_median_ns: phase(Phase::Decode).map(|p| p.step_median_ns),
            decode_gpu_busy_pct: phase(Phase::Decode).and_then(|p| p.gpu_busy_pct),
            graph_launches: d.llm.graphs.launches,
            idle_pct: (!devices.is_empty())
                .then(|| devices.iter().sum::<f64>() / devices.len() as f64),
        }
    }
}

/// The combined nsys table.
pub fn nsys_table(rows: &[NsysRow]) -> Table {
    Table {
        name: "profiles",
        title: format!("{} profiles", rows.len()),
        columns: vec![
            Column::name("file", "Profile"),
            Column::num("span_ns", "Span (ms)"),
            Column::num("gpu_ns", "GPU (ms)"),
            Column::num("prefill_gpu_ns_per_token", "Prefill GPU/tok (ns)"),
            Column::num("decode_gpu_ns_per_token", "Decode GPU/tok (ns)"),
            Column::num("decode_step_median_ns", "Decode step med (ms)"),
            Column::num("decode_gpu_busy_pct", "Decode GPU busy (%)"),
            Column::num("graph_launches", "Graph launches"),
            Column::num("idle_pct", "Idle (%)"),
            Column::num("top_kernel_share_pct", "Top (%)"),
            Column::name("top_kernel", "Top kernel"),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Name(r.file.clone()),
                    Cell::opt_scaled(r.span_ns.map(|s| s as f64), 1e6, 1),
                    Cell::Scaled(r.gpu_ns as f64, 1e6, 3),
                    Cell::opt_float(r.prefill_gpu_ns_per_token, 1),
                    Cell::opt_float(r.decode_gpu_ns_per_token, 1),
                    Cell::opt_scaled(r.decode_step_median_ns, 1e6, 3),
                    Cell::opt_float(r.decode_gpu_busy_pct, 1),
                    Cell::Int(r.graph_launches as i64),
                    Cell::opt_float(r.idle_pct, 1),
                    Cell::opt_float(r.top_kernel_share_pct, 1),
                    r.top_kernel.clone().map_or(Cell::Missing, Cell::Name),
                ]
            })
            .collect(),
        note: None,
    }
}

/// One ncu file in the combined table.
#[derive(Debug, Clone, Serialize)]
pub struct NcuRow {
    pub file: String,
    pub launches: u64,
    pub duration_ns: Option<f64>,
    pub dram_bytes: Option<f64>,
    pub dram_bandwidth_bytes_per_s: Option<f64>,
    pub dram_peak_pct: Option<f64>,
    pub top_kernel: Option<String>,
}

impl NcuRow {
    pub fn from_digest(d: &NcuDigest) -> NcuRow {
        let total = &d.total;
        NcuRow {
            file: d.source.file.clone(),
            launches: d.source.launches_selected,
            duration_ns: total.duration_ns,
            dram_bytes: total.dram_bytes,
            dram_bandwidth_bytes_per_s: total.dram_bandwidth_bytes_per_s,
            dram_peak_pct: total.dram_peak_pct,
            top_kernel: d
                .kernels
                .first()
                .and_then(|k| k.kernel.clone().or(k.nvtx.clone())),
        }
    }
}

/// The combined ncu table.
pub fn ncu_table(rows: &[NcuRow]) -> Table {
    Table {
        name: "files",
        title: format!("{} files", rows.len()),
        columns: vec![
            Column::name("file", "File"),
            Column::num("launches", "Launches"),
            Column::num("duration_ns", "Duration (us)"),
            Column::num("dram_bytes", "DRAM (MB)"),
            Column::num("dram_bandwidth_bytes_per_s", "DRAM BW (GB/s)"),
            Column::num("dram_peak_pct", "DRAM (%)"),
            Column::name("top_kernel", "Top kernel"),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Name(r.file.clone()),
                    Cell::Int(r.launches as i64),
                    Cell::opt_scaled(r.duration_ns, 1e3, 2),
                    Cell::opt_scaled(r.dram_bytes, 1e6, 2),
                    Cell::opt_scaled(r.dram_bandwidth_bytes_per_s, 1e9, 1),
                    Cell::opt_float(r.dram_peak_pct, 1),
                    r.top_kernel.clone().map_or(Cell::Missing, Cell::Name),
                ]
            })
            .collect(),
        note: None,
    }
}
