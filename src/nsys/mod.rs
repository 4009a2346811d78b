//! nsys-digest: reads an `nsys export --type sqlite` file and computes the
//! reports. [`digest`] is the entry point; [`view`] turns a [`Digest`] into
//! tables for the renderers.

mod bit_set;
pub mod comm_overlap;
pub mod compare;
pub mod int_rows;
pub mod launch_index;
mod leaf_share;
pub mod llm;
pub mod nvtx_index;
mod nvtx_kernels;
pub mod queries;
pub mod reports;
mod rows;
pub mod schema;
mod slots;
pub mod step_calls;
pub mod steps;
mod table_pages;
pub mod time_filter;
pub mod trace;
pub mod view;

use crate::error::Result;
use crate::input::{open_profile, InputOptions};
use launch_index::LaunchIndex;
use nvtx_index::NvtxIndex;
use reports::*;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;
use trace::{global_id, GpuInfo, NameStyle, Trace};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct DigestOptions {
    pub names: NameStyle,
    /// Count each kernel once, in its innermost range, in `nvtx_kernels`.
    pub innermost: bool,
    /// Split the kernels report by process and GPU.
    pub kernels_by_process: bool,
    pub input: InputOptions,
    pub llm: llm::LlmOptions,
    /// Digest only the rows in one window (`--filter-nvtx`, `--filter-time`).
    pub filter: Option<time_filter::TraceFilter>,
}

/// Facts about the profile itself.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub file: String,
    pub nsys_version: Option<String>,
    pub schema_version: Option<String>,
    pub gpus: Vec<GpuInfo>,
    /// Capture window start and length.
    pub span_start_ns: Option<i64>,
    pub span_ns: Option<i64>,
    pub kernels: u64,
    pub api_calls: u64,
    pub nvtx_ranges: u64,
    pub memory_ops: u64,
    pub processes: Vec<u32>,
    pub devices: Vec<i64>,
    /// `Node` or `Graph` as the capture recorded it, when it did.
    pub graph_trace_mode: Option<String>,
    pub kernel_names: NameStyle,
    /// Data that looks wrong but was read anyway, and how it was treated.
    pub warnings: Vec<String>,
    /// The window the reports cover, when filtered; the span above is
    /// then that window within the capture.
    pub filter: Option<time_filter::FilterWindow>,
}

/// GPU launch behaviour: per-kernel launch cost plus busy/idle time.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchReport {
    pub kernels: Vec<LaunchSummary>,
    pub busy: Vec<GpuBusy>,
}

/// Every report for one profile; serialises to the documented JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Digest {
    pub source: SourceInfo,
    pub kernels: Vec<KernelSummary>,
    pub nvtx: Vec<NvtxSummary>,
    pub nvtx_kernels: Vec<NvtxKernelSummary>,
    pub nvtx_kernels_innermost: bool,
    pub launch: LaunchReport,
    pub memory: Vec<MemorySummary>,
    /// CPU time per CUDA API (`cuda_api_sum`).
    pub api: Vec<ApiSummary>,
    /// CUDA graphs, phases, layers and hotspots.
    #[serde(flatten)]
    pub llm: llm::LlmDigest,
}

/// Read one profile (`.sqlite`, `.sqlite.gz` or `.nsys-rep`) and compute
/// every report.
pub fn digest(path: &Path, opts: &DigestOptions) -> Result<Digest> {
    let watch = Stopwatch::from_env();
    let profile = open_profile(path, &opts.input)?;
    watch.lap("open (inflate)");
    let mut trace = Trace::load(&profile, opts.names)?;
    watch.lap("load tables");
    if let Some(filter) = &opts.filter {
        let window = time_filter::FilterWindow::resolve(filter, &trace).map_err(|reason| {
            crate::DigestError::Filter {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        window.apply(&mut trace);
        watch.lap("filter");
    }
    let d = digest_trace(&trace, path, opts);
    watch.lap("reports");
    Ok(d)
}

/// Phase timings on stderr when `NSIGHT_DIGEST_TIMINGS` is set: the
/// profile-before-optimising switch.
struct Stopwatch(Option<std::time::Instant>);

impl Stopwatch {
    fn from_env() -> Stopwatch {
        Stopwatch(std::env::var_os("NSIGHT_DIGEST_TIMINGS").map(|_| std::time::Instant::now()))
    }
    fn lap(&self, what: &str) {
        if let Some(t) = self.0 {
            eprintln!(
                "timing: {what:<16} {:>8.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// Compute every report from an already loaded trace.
///
/// The reports form a small graph: four need only the tables, the rest
/// wait for the launch index and then the NVTX index. This thread walks the
/// index chain while the other core takes the spawned reports, oldest
/// first; the order of the spawns below is what keeps both cores busy to
/// the end (on the SYNTHETIC 1 GB export the last fixed split left one core
/// idle for about 0.3 s while the other built the launch report).
pub fn digest_trace(trace: &Trace, path: &Path, opts: &DigestOptions) -> Digest {
    let (mut kernels, mut busy, mut memory, mut api) = (None, None, None, None);
    let mut indexed = None;
    rayon::scope(|s| {
        s.spawn(|_| {
            kernels = Some(timed("kernels", || {
                kernel_summary(trace, opts.names, opts.kernels_by_process)
            }))
        });
        s.spawn(|_| busy = Some(timed("gpu busy", || gpu_busy(trace))));
        s.spawn(|_| memory = Some(timed("memory", || memory_summary(trace))));
        s.spawn(|_| api = Some(timed("api", || api_summary(trace))));
        indexed = Some(indexed_reports(trace, opts));
    });
    let (Some(kernels), Some(busy), Some(memory), Some(api), Some(indexed)) =
        (kernels, busy, memory, api, indexed)
    else {
        unreachable!("rayon::scope returns only after every report ran");
    };
    let IndexedReports {
        launches,
        nvtx,
        nvtx_kernels,
        launch_kernels,
        llm,
    } = indexed;
    let launch = LaunchReport {
        kernels: launch_kernels,
        busy,
    };
    Digest {
        source: source_info(trace, path, opts, &launches),
        kernels,
        nvtx,
        nvtx_kernels,
        nvtx_kernels_innermost: opts.innermost,
        launch,
        memory,
        api,
        llm,
    }
}

/// Run one report; with the phase timings on, print its own time.
pub(crate) fn timed<T>(what: &str, report: impl FnOnce() -> T) -> T {
    let watch = Stopwatch::from_env();
    let out = report();
    watch.lap(&format!("  {what}"));
    out
}

/// The reports built on the launch and NVTX indexes, with the launch index.
struct IndexedReports {
    launches: LaunchIndex,
    nvtx: Vec<NvtxSummary>,
    nvtx_kernels: Vec<NvtxKernelSummary>,
    launch_kernels: Vec<LaunchSummary>,
    llm: llm::LlmDigest,
}

/// The index chain on this thread; each report is spawned as soon as its
/// index exists. `nvtx-kernels`, the longest, runs here; the LLM view is
/// spawned before the short NVTX report so that the other core, which
/// takes the oldest spawn first, starts it early.
fn indexed_reports(trace: &Trace, opts: &DigestOptions) -> IndexedReports {
    let launches = timed("launch index", || LaunchIndex::build(trace));
    let (mut launch_kernels, mut nvtx, mut llm, mut nvtx_kernels) = (None, None, None, None);
    rayon::scope(|s| {
        let launches = &launches;
        s.spawn(|_| {
            launch_kernels = Some(timed("launch", || {
                launch_summary(trace, launches, opts.names)
            }))
        });
        let index = timed("nvtx index", || NvtxIndex::build(trace, launches));
        rayon::scope(|s| {
            let index = &index;
            s.spawn(|_| {
                llm = Some(timed("llm", || {
                    llm::analyse(trace, launches, index, opts.names, &opts.llm)
                }))
            });
            s.spawn(|_| nvtx = Some(timed("nvtx", || nvtx_summary(trace, launches, index))));
            nvtx_kernels = Some(timed("nvtx_kernels", || {
                nvtx_kernel_summary(trace, launches, index, opts.names, opts.innermost)
            }));
        });
    });
    let (Some(launch_kernels), Some(nvtx), Some(llm), Some(nvtx_kernels)) =
        (launch_kernels, nvtx, llm, nvtx_kernels)
    else {
        unreachable!("rayon::scope returns only after every report ran");
    };
    IndexedReports {
        launches,
        nvtx,
        nvtx_kernels,
        launch_kernels,
        llm,
    }
}

/// Counts of suspicious rows; each kind is one warning line.
fn data_warnings(trace: &Trace, launches: &LaunchIndex, backwards: usize) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(trace.unreadable_tables.iter().cloned());
    if backwards > 0 {
        out.push(format!("{backwards} kernels end before they start; their durations are negative in every total"));
    }
    let open = trace.nvtx.iter().filter(|r| r.end.is_none()).count();
    if open > 0 {
        out.push(format!("{open} NVTX ranges never end; they count until the last NVTX timestamp, as in nsys stats"));
    }
    let crossing = trace
        .nvtx
        .iter()
        .filter(|r| r.end_global_tid.is_some())
        .count();
    if crossing > 0 {
        out.push(format!("{crossing} NVTX ranges end on another thread; they have CPU time but no GPU projection, as in nsys stats"));
    }
    if launches.duplicate_calls > 0 {
        out.push(format!(
            "{} API calls repeat a correlation id of their process; GPU work joins the first of them",
            launches.duplicate_calls
        ));
    }
    out
}

fn source_info(
    trace: &Trace,
    path: &Path,
    opts: &DigestOptions,
    launches: &LaunchIndex,
) -> SourceInfo {
    let kernels = &trace.kernels;
    let processes: BTreeSet<u32> = kernels.processes().map(global_id::pid).collect();
    let devices: BTreeSet<i64> = kernels.devices().map(i64::from).collect();
    let span = trace.span();
    let warnings = data_warnings(trace, launches, kernels.backwards());
    SourceInfo {
        warnings,
        file: path.display().to_string(),
        nsys_version: trace.schema.nsys_version().map(str::to_string),
        schema_version: trace.schema.schema_version().map(str::to_string),
        gpus: trace.gpus.clone(),
        span_start_ns: span.map(|s| s.0),
        span_ns: span.map(|(a, b)| b - a),
        kernels: trace.kernels.len() as u64,
        api_calls: trace.api_calls.len() as u64,
        nvtx_ranges: trace.nvtx.len() as u64,
        memory_ops: trace.memops.len() as u64,
        processes: processes.into_iter().collect(),
        devices: devices.into_iter().collect(),
        graph_trace_mode: trace.schema.graph_trace_mode().map(str::to_string),
        filter: trace.filter.clone(),
        kernel_names: if opts.names == NameStyle::Mangled && trace.mangled_names.is_none() {
            NameStyle::Demangled
        } else {
            opts.names
        },
    }
}

/// The committed samples, and the third-party exports when `../shared`
/// is beside the checkout.
#[cfg(test)]
pub(crate) fn real_exports() -> Vec<std::path::PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [repo.join("samples"), repo.join("../shared/thirdparty/nsys")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.to_string_lossy();
            if name.ends_with(".sqlite") || name.ends_with(".sqlite.gz") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every real export that has kernels, loaded with demangled names.
#[cfg(test)]
pub(crate) fn real_traces() -> impl Iterator<Item = (std::path::PathBuf, Trace)> {
    real_exports().into_iter().filter_map(|file| {
        let profile = open_profile(&file, &InputOptions::default()).unwrap();
        let trace = Trace::load(&profile, NameStyle::Demangled).ok()?;
        Some((file, trace))
    })
}
