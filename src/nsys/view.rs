//! Turns a [`Digest`] into [`Table`]s: the full reports for `--report NAME`
//! and the one-screen default digest.

use super::reports::*;
use super::time_filter::FilterWindow;
use super::{Digest, SourceInfo};
use crate::render::{Cell, Column, Document, Table};

/// Reports selectable with `--report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportName {
    /// Per kernel name (cuda_gpu_kern_sum).
    Kernels,
    /// Per NVTX range: CPU time (nvtx_sum) and GPU projection (nvtx_gpu_proj_sum).
    Nvtx,
    /// Kernel time per (range, kernel) (nvtx_kern_sum).
    NvtxKernels,
    /// Launch cost and queue latency (cuda_kern_exec_sum), plus GPU idle time.
    Launch,
    /// GPU busy and idle time per device and stream.
    Busy,
    /// Memcpy and memset (cuda_gpu_mem_time_sum).
    Memory,
    /// CPU time per CUDA runtime/driver API (cuda_api_sum).
    Api,
    /// CUDA graph trace mode, launches, graph vs eager GPU time, per graph.
    Graphs,
    /// Engine steps per phase (prefill, decode, mixed): GPU time, tokens.
    Phases,
    /// Every engine step: duration, GPU time, against its phase's median,
    /// and the --filter-nvtx that digests it alone.
    Steps,
    /// GPU time per layer type and per layer index.
    Layers,
    /// Top kernels per (phase, layer type), with a kernel category.
    Hotspots,
    /// Kernel time per (phase, category): gemm, attention, communication, ...
    Categories,
    /// Communication kernels per GPU: how much of their time compute hid.
    Communication,
}

/// How many rows the one-screen digest shows per table.
pub const DEFAULT_TOP: usize = 10;

fn stats_cells(t: &crate::stats::DurationStats) -> Vec<Cell> {
    vec![
        Cell::Int(t.count as i64),
        Cell::Int(t.total_ns),
        Cell::Float(t.avg_ns, 1),
        Cell::Float(t.median_ns, 1),
        Cell::Int(t.min_ns),
        Cell::Int(t.max_ns),
        Cell::Float(t.stddev_ns, 1),
    ]
}

const STATS_COLUMNS: [Column; 7] = [
    Column::num("instances", "Instances"),
    Column::num("total_ns", "Total (ns)"),
    Column::num("avg_ns", "Avg (ns)"),
    Column::num("median_ns", "Med (ns)"),
    Column::num("min_ns", "Min (ns)"),
    Column::num("max_ns", "Max (ns)"),
    Column::num("stddev_ns", "StdDev (ns)"),
];

/// `kernels`: one row per kernel name (and process/GPU when split).
pub fn kernels_table(rows: &[KernelSummary]) -> Table {
    let split = rows.iter().any(|r| r.device.is_some());
    let mut columns = vec![Column::name("name", "Name")];
    if split {
        columns.push(Column::num("pid", "PID"));
        columns.push(Column::num("device", "Device"));
    }
    columns.extend(STATS_COLUMNS);
    columns.push(Column::num("share_pct", "Time (%)"));
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![Cell::Name(r.name.clone())];
            if split {
                cells.push(Cell::opt_int(r.pid.map(i64::from)));
                cells.push(Cell::opt_int(r.device));
            }
            cells.extend(stats_cells(&r.time));
            cells.push(Cell::Float(r.share_pct, 1));
            cells
        })
        .collect();
    Table {
        name: "kernels",
        title: if split {
            "GPU kernels per process and GPU (cuda_gpu_kern_sum, split)"
        } else {
            "GPU kernels (as cuda_gpu_kern_sum)"
        }
        .into(),
        columns,
        rows,
        note: None,
    }
}

/// `nvtx`: CPU range time with the projected GPU time beside it.
pub fn nvtx_table(rows: &[NvtxSummary]) -> Table {
    let mut columns = vec![
        Column::name("range", "Range"),
        Column::text("style", "Style"),
    ];
    columns.extend(STATS_COLUMNS);
    columns.push(Column::num("proj_total_ns", "GPU proj (ns)"));
    columns.push(Column::num("gpu_ops", "GPU ops"));
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                Cell::Name(r.range.clone()),
                Cell::Text(r.style.as_str().into()),
            ];
            cells.extend(stats_cells(&r.time));
            cells.push(Cell::opt_int(r.gpu.as_ref().map(|g| g.time.total_ns)));
            cells.push(Cell::opt_int(r.gpu.as_ref().map(|g| g.gpu_ops as i64)));
            cells
        })
        .collect();
    Table {
        name: "nvtx",
        title: "NVTX ranges: CPU time (nvtx_sum) and GPU projection (nvtx_gpu_proj_sum)".into(),
        columns,
        rows,
        note: None,
    }
}

/// `nvtx-kernels`: kernel time per (range, kernel, thread).
pub fn nvtx_kernels_table(rows: &[NvtxKernelSummary], innermost: bool) -> Table {
    let mut columns = vec![
        Column::name("range", "Range"),
        Column::name("kernel", "Kernel"),
        Column::num("pid", "PID"),
        Column::num("tid", "TID"),
    ];
    columns.extend(STATS_COLUMNS);
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.range.clone().map_or(Cell::Missing, Cell::Name),
                Cell::Name(r.kernel.clone()),
                Cell::opt_int(r.pid.map(i64::from)),
                Cell::opt_int(r.tid.map(i64::from)),
            ];
            let mut stats = stats_cells(&r.time);
            stats[0] = Cell::Int(r.kernel_instances as i64);
            cells.extend(stats);
            cells
        })
        .collect();
    Table {
        name: "nvtx-kernels",
        title: if innermost {
            "Kernels by innermost NVTX range".into()
        } else {
            "Kernels by NVTX range, every enclosing range (as nvtx_kern_sum)".into()
        },
        columns,
        rows,
        note: None,
    }
}

/// `launch`: launch-call cost and queue latency per kernel.
pub fn launch_table(rows: &[LaunchSummary]) -> Table {
    let columns = vec![
        Column::num("pid", "PID"),
        Column::num("tid", "TID"),
        Column::num("device", "Dev"),
        Column::text("api", "API"),
        Column::name("kernel", "Kernel"),
        Column::num("launches", "Count"),
        Column::num("queued", "QCount"),
        Column::num("total_avg_ns", "Total avg (ns)"),
        Column::num("api_avg_ns", "API avg (ns)"),
        Column::num("api_median_ns", "API med (ns)"),
        Column::num("queue_avg_ns", "Queue avg (ns)"),
        Column::num("queue_median_ns", "Queue med (ns)"),
        Column::num("queue_max_ns", "Queue max (ns)"),
        Column::num("kernel_avg_ns", "Kernel avg (ns)"),
    ];
    let rows = rows.iter().map(launch_row).collect::<Vec<_>>();
    // A legend of the columns, which an empty table does not show.
    let note = (!rows.is_empty()).then(|| {
        "Queue = API call end to kernel start, over launches that queued (QCount).".into()
    });
    Table {
        name: "launch",
        title: "Kernel launch cost and queue latency (as cuda_kern_exec_sum)".into(),
        columns,
        rows,
        note,
    }
}

/// A launch row; the queue columns are empty where no launch queued.
fn launch_row(r: &LaunchSummary) -> Vec<Cell> {
    vec![
        Cell::Int(r.pid.into()),
        Cell::Int(r.tid.into()),
        Cell::Int(r.device),
        Cell::Text(r.api.clone()),
        Cell::Name(r.kernel.clone()),
        Cell::Int(r.count as i64),
        Cell::Int(r.queued as i64),
        Cell::Float(r.total.avg_ns, 1),
        Cell::Float(r.api_time.avg_ns, 1),
        Cell::Float(r.api_time.median_ns, 1),
        r.queue.map_or(Cell::Missing, |q| Cell::Float(q.avg_ns, 1)),
        r.queue
            .map_or(Cell::Missing, |q| Cell::Float(q.median_ns, 1)),
        r.queue.map_or(Cell::Missing, |q| Cell::Int(q.max_ns)),
        Cell::Float(r.kernel_time.avg_ns, 1),
    ]
}

/// `busy`: GPU busy and idle time per device, then per stream.
pub fn busy_table(rows: &[GpuBusy], devices_only: bool) -> Table {
    let rows: Vec<&GpuBusy> = rows
        .iter()
        .filter(|r| !devices_only || r.stream.is_none())
        .collect();
    let by_process = rows.iter().any(|r| r.pid.is_some());
    let mut columns = vec![
        Column::num("device", "Device"),
        Column::text("stream", "Stream"),
        Column::num("ops", "GPU ops"),
        Column::num("busy_ns", "Busy (ns)"),
        Column::num("idle_ns", "Idle (ns)"),
        Column::num("idle_pct", "Idle (%)"),
        Column::num("gaps", "Gaps"),
        Column::num("longest_gap_ns", "Longest gap (ns)"),
    ];
    if by_process {
        columns.insert(1, Column::num("pid", "PID"));
    }
    let rows = rows
        .into_iter()
        .map(|r| {
            let pid = by_process.then(|| Cell::opt_int(r.pid.map(i64::from)));
            [Cell::Int(r.device)]
                .into_iter()
                .chain(pid)
                .chain([
                    Cell::Text(r.stream.map_or("all".into(), |s| s.to_string())),
                    Cell::Int(r.ops as i64),
                    Cell::Int(r.busy_ns),
                    Cell::Int(r.idle_ns),
                    Cell::Float(r.idle_pct, 1),
                    Cell::Int(r.gaps as i64),
                    Cell::Int(r.longest_gap_ns),
                ])
                .collect()
        })
        .collect();
    Table {
        name: "busy",
        title: "GPU busy and idle time over the captured span".into(),
        columns,
        rows,
        note: None,
    }
}

/// `memory`: memcpy by kind and memset.
pub fn memory_table(rows: &[MemorySummary]) -> Table {
    let mut columns = vec![Column::text("operation", "Operation")];
    columns.extend(STATS_COLUMNS);
    columns.push(Column::num("share_pct", "Time (%)"));
    columns.push(Column::num("bytes", "Bytes"));
    columns.push(Column::num("bandwidth_bytes_per_s", "Bandwidth (B/s)"));
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![Cell::Text(r.operation.clone())];
            cells.extend(stats_cells(&r.time));
            cells.push(Cell::Float(r.share_pct, 1));
            cells.push(Cell::Int(r.bytes));
            cells.push(Cell::Float(r.bandwidth_bytes_per_s, 0));
            cells
        })
        .collect();
    Table {
        name: "memory",
        title: "Memory operations (as cuda_gpu_mem_time_sum)".into(),
        columns,
        rows,
        note: None,
    }
}

/// `api`: CPU time per CUDA API.
pub fn api_table(rows: &[ApiSummary]) -> Table {
    let mut columns = vec![Column::text("name", "Name")];
    columns.extend(STATS_COLUMNS);
    columns[1] = Column::num("calls", "Calls");
    columns.push(Column::num("share_pct", "Time (%)"));
    let rows = rows
        .iter()
        .map(|r| {
            let mut cells = vec![Cell::Text(r.name.clone())];
            cells.extend(stats_cells(&r.time));
            cells.push(Cell::Float(r.share_pct, 1));
            cells
        })
        .collect();
    Table {
        name: "api",
        title: "CUDA API calls (as cuda_api_sum)".into(),
        columns,
        rows,
        note: None,
    }
}

/// The tables of one report: every row, or with `top` the first rows of
/// the tables ranked by time.
pub fn report_tables(d: &Digest, report: ReportName, top: Option<usize>) -> Vec<Table> {
    let ranked = |t: Table| t.keep_first(top, "--top N to change");
    match report {
        ReportName::Kernels => vec![ranked(kernels_table(&d.kernels))],
        ReportName::Nvtx => vec![ranked(nvtx_table(&d.nvtx))],
        ReportName::NvtxKernels => vec![nvtx_kernels_table(
            &d.nvtx_kernels,
            d.nvtx_kernels_innermost,
        )],
        ReportName::Launch => vec![
            launch_table(&d.launch.kernels),
            busy_table(&d.launch.busy, false),
        ],
        ReportName::Busy => vec![busy_table(&d.launch.busy, false)],
        ReportName::Memory => vec![ranked(memory_table(&d.memory))],
        ReportName::Api => vec![ranked(api_table(&d.api))],
        ReportName::Graphs => vec![graphs_table(&d.llm.graphs)],
        ReportName::Phases => vec![phases_table(&d.llm)],
        ReportName::Steps => vec![steps_report(&d.llm.steps, top)],
        ReportName::Layers => vec![
            ranked(layer_types_table(&d.llm.layers)),
            layer_index_table(&d.llm.layers),
        ],
        ReportName::Hotspots => vec![ranked(hotspots_table(&d.llm.hotspots))],
        ReportName::Categories => vec![categories_table(d)],
        ReportName::Communication => vec![communication_table(d)],
    }
}

/// Whether a report has any rows in this digest.
pub fn has_data(d: &Digest, report: ReportName) -> bool {
    match report {
        ReportName::Kernels => !d.kernels.is_empty(),
        ReportName::Nvtx => !d.nvtx.is_empty(),
        ReportName::NvtxKernels => !d.nvtx.is_empty() && !d.nvtx_kernels.is_empty(),
        ReportName::Launch => !d.launch.kernels.is_empty(),
        ReportName::Busy => !d.launch.busy.is_empty(),
        ReportName::Memory => !d.memory.is_empty(),
        ReportName::Api => !d.api.is_empty(),
        ReportName::Graphs => d.llm.graphs.launches > 0 || !d.llm.graphs.per_graph.is_empty(),
        ReportName::Phases => !d.llm.phases.phases.is_empty(),
        ReportName::Steps => !d.llm.steps.is_empty(),
        ReportName::Layers => !d.llm.layers.types.is_empty(),
        ReportName::Hotspots => !d.llm.hotspots.is_empty(),
        ReportName::Categories => !d.llm.categories.is_empty(),
        ReportName::Communication => !d.llm.communication.is_empty(),
    }
}

/// An LLM profile whose graph kernels have no layer: the layer table's note
/// says why, where the hotspots only say "(no layer)". Graphs captured
/// before the profile started, as vLLM captures them, end up here.
fn graph_kernels_lack_layers(d: &Digest) -> bool {
    let layers = &d.llm.layers;
    has_data(d, ReportName::Phases)
        && layers.graph_kernels > 0
        && layers.graph_kernels_with_layer == 0
}

/// Profile facts printed above every digest.
pub fn facts(d: &Digest) -> Vec<(String, String)> {
    let s = &d.source;
    let mut facts = vec![
        ("GPUs".into(), gpus_fact(s)),
        (
            "nsys".into(),
            format!(
                "{} (schema {})",
                s.nsys_version.as_deref().unwrap_or("unknown"),
                s.schema_version.as_deref().unwrap_or("unknown")
            ),
        ),
    ];
    if let Some(span) = s.span_ns {
        facts.push(("span".into(), format!("{:.3} ms", span as f64 / 1e6)));
    }
    if let Some(f) = &s.filter {
        facts.push(("filter".into(), filter_fact(f)));
    }
    let gpu_ns: i64 = d.kernels.iter().map(|k| k.time.total_ns).sum();
    facts.push((
        "kernels".into(),
        format!(
            "{} launches, {:.3} ms GPU time, {} API calls, {} NVTX ranges",
            s.kernels,
            gpu_ns as f64 / 1e6,
            s.api_calls,
            s.nvtx_ranges
        ),
    ));
    if let Some(work) = graph_work_fact(&d.llm.graphs) {
        facts.push(("graph work".into(), work));
    }
    if let Some(mode) = &s.graph_trace_mode {
        facts.push(("graph trace".into(), mode.to_lowercase()));
    }
    if s.processes.len() > 1 {
        let p: Vec<String> = s.processes.iter().map(|p| p.to_string()).collect();
        facts.push(("processes".into(), p.join(", ")));
    }
    facts
}

/// The window as `--filter-time` would take it, and whose rows it keeps.
fn filter_fact(f: &FilterWindow) -> String {
    let whose = match (f.pid, f.tid) {
        (Some(pid), Some(tid)) => {
            format!("; calls and ranges of thread {tid}, GPU work of process {pid}")
        }
        (Some(pid), None) => format!("; rows of process {pid}"),
        _ => String::new(),
    };
    let window = if f.end_ns == i64::MAX {
        format!("{}/ ns", f.start_ns)
    } else {
        let ms = f.end_ns.saturating_sub(f.start_ns) as f64 / 1e6;
        format!("{}/{} ns ({ms:.3} ms)", f.start_ns, f.end_ns)
    };
    format!("{}: rows overlapping {window}{whose}", f.filter)
}

/// The GPUs named in the export, and the devices kernels ran on.
fn gpus_fact(s: &SourceInfo) -> String {
    let gpus: Vec<String> = s.gpus.iter().map(|g| g.name.clone()).collect();
    let used: Vec<String> = s.devices.iter().map(|d| d.to_string()).collect();
    let names = if gpus.is_empty() {
        "unknown".to_string()
    } else {
        gpus.join(", ")
    };
    // A filter's window may hold no kernel.
    if used.is_empty() {
        format!("{names} (no kernels)")
    } else {
        format!("{names} (kernels on device {})", used.join(", "))
    }
}

/// Graph trace mode keeps graph work out of the kernel table; say so.
fn graph_work_fact(g: &GraphReport) -> Option<String> {
    (g.trace_mode == "graph" && g.gpu_ns > 0).then(|| {
        format!(
            "+{:.3} ms GPU time in {} graph executions, not in the kernel table (graph trace mode)",
            g.gpu_ns as f64 / 1e6,
            g.per_graph.iter().map(|r| r.launches).sum::<u64>()
        )
    })
}

/// Keep only the named columns of a table, in that order, so the default
/// digest fits a terminal.
pub fn select_columns(mut table: Table, keys: &[&str]) -> Table {
    let picks: Vec<usize> = keys
        .iter()
        .filter_map(|k| table.columns.iter().position(|c| c.key == *k))
        .collect();
    table.columns = picks.iter().map(|&i| table.columns[i].clone()).collect();
    table.rows = table
        .rows
        .into_iter()
        .map(|row| picks.iter().map(|&i| row[i].clone()).collect())
        .collect();
    table
}

/// The default one-screen digest: facts, top kernels, top ranges, memory,
/// idle; the ranked tables keep their first `top` rows.
pub fn default_document(d: &Digest, top: usize) -> Document {
    let first = |t: Table, report: &str| {
        t.keep_first(Some(top), &format!("more: --top N, or --report {report}"))
    };
    let mut tables = vec![select_columns(
        first(kernels_table(&d.kernels), "kernels"),
        DEFAULT_KERNEL_COLUMNS,
    )];
    if !d.nvtx.is_empty() {
        tables.push(select_columns(
            first(nvtx_table(&d.nvtx), "nvtx"),
            DEFAULT_NVTX_COLUMNS,
        ));
    }
    if !d.memory.is_empty() {
        tables.push(select_columns(
            memory_table(&d.memory),
            DEFAULT_MEMORY_COLUMNS,
        ));
    }
    if has_data(d, ReportName::Graphs) {
        tables.extend(report_tables(d, ReportName::Graphs, None));
    }
    if has_data(d, ReportName::Phases) {
        // The API columns' numbers are in the note, with the names behind them.
        let mut phases = select_columns(phases_table(&d.llm), DEFAULT_PHASE_COLUMNS);
        if let Some(slow) = slow_step_line(&d.llm.steps) {
            phases.note = Some(match phases.note {
                Some(note) => format!("{note}\n{slow}"),
                None => slow,
            });
        }
        tables.push(phases);
    }
    if has_data(d, ReportName::Layers) || graph_kernels_lack_layers(d) {
        tables.push(first(layer_types_table(&d.llm.layers), "layers"));
    }
    if has_data(d, ReportName::Categories) {
        tables.push(categories_by_phase_table(d));
    }
    if has_data(d, ReportName::Communication) {
        tables.push(communication_table(d));
    }
    if has_data(d, ReportName::Hotspots) {
        tables.push(select_columns(
            first(hotspots_table(&d.llm.hotspots), "hotspots"),
            DEFAULT_HOTSPOT_COLUMNS,
        ));
    }
    if !d.launch.busy.is_empty() {
        tables.push(select_columns(
            busy_table(&d.launch.busy, true),
            DEFAULT_BUSY_COLUMNS,
        ));
    }
    Document {
        title: format!("nsys-digest: {}", d.source.file),
        facts: facts(d),
        tables,
        ..Default::default()
    }
}

/// The columns each table of the default digest keeps, in this order: the
/// full reports (`--report`) have them all.
const DEFAULT_KERNEL_COLUMNS: &[&str] = &[
    "share_pct",
    "total_ns",
    "instances",
    "avg_ns",
    "median_ns",
    "pid",
    "device",
    "name",
];
const DEFAULT_NVTX_COLUMNS: &[&str] = &[
    "instances",
    "total_ns",
    "median_ns",
    "proj_total_ns",
    "gpu_ops",
    "range",
];
const DEFAULT_MEMORY_COLUMNS: &[&str] = &[
    "share_pct",
    "total_ns",
    "instances",
    "bytes",
    "bandwidth_bytes_per_s",
    "operation",
];
const DEFAULT_PHASE_COLUMNS: &[&str] = &[
    "phase",
    "steps",
    "gpu_ns",
    "share_pct",
    "tokens",
    "gpu_ns_per_token",
    "step_median_ns",
    "step_p90_ns",
    "gpu_busy_pct",
];
const DEFAULT_HOTSPOT_COLUMNS: &[&str] = &[
    "phase",
    "layer_type",
    "category",
    "gpu_ns",
    "share_of_phase_pct",
    "instances",
    "kernel",
];
const DEFAULT_BUSY_COLUMNS: &[&str] = &[
    "device",
    "ops",
    "busy_ns",
    "idle_ns",
    "idle_pct",
    "gaps",
    "longest_gap_ns",
];

/// A document holding one report (see [`report_tables`]).
pub fn report_document(d: &Digest, report: ReportName, top: Option<usize>) -> Document {
    Document {
        title: format!("nsys-digest: {}", d.source.file),
        facts: facts(d),
        tables: report_tables(d, report, top),
        ..Default::default()
    }
}

use super::llm::{GraphReport, Hotspot, LayerReport, LlmDigest, PhaseReport, PhaseSummary};
use super::steps::StepRow;

/// `graphs`: one row per graph, with the verdict and evidence in the note.
pub fn graphs_table(g: &GraphReport) -> Table {
    let by_process = g.per_graph.iter().any(|r| r.pid.is_some());
    let mut columns = vec![
        Column::num("graph", "Graph"),
        Column::num("launches", "Launches"),
        Column::num("kernels", "Kernels"),
        Column::num("gpu_ns", "GPU (ns)"),
    ];
    if by_process {
        columns.insert(0, Column::num("pid", "PID"));
    }
    let rows = g
        .per_graph
        .iter()
        .map(|r| {
            // Set on every row or on none (see `GraphRow::pid`).
            let pid = r.pid.map(|p| Cell::Int(i64::from(p)));
            pid.into_iter()
                .chain([
                    Cell::Int(r.graph),
                    Cell::Int(r.launches as i64),
                    Cell::Int(r.kernels as i64),
                    Cell::Int(r.gpu_ns),
                ])
                .collect()
        })
        .collect();
    let per_launch = g
        .kernels_per_launch
        .map_or(String::new(), |k| format!(", {k:.1} kernels per launch"));
    Table {
        name: "graphs",
        title: format!(
            "CUDA graphs: trace mode {} ({}), {} captured, {} instantiated, {} launches{}; GPU time in graphs {:.3} ms vs eager {:.3} ms ({:.1} % in graphs)",
            g.trace_mode,
            g.trace_mode_source,
            g.graphs_captured,
            g.graphs_instantiated,
            g.launches,
            per_launch,
            g.gpu_ns as f64 / 1e6,
            g.eager_gpu_ns as f64 / 1e6,
            g.graph_share_pct
        ),
        columns,
        rows,
        note: Some(format!("mode: {} — {}", g.mode, g.evidence.join("; "))),
    }
}

/// `phases`: per phase GPU time, tokens and step time.
pub fn phases_table(llm: &LlmDigest) -> Table {
    let p = &llm.phases;
    let columns = vec![
        Column::text("phase", "Phase"),
        Column::num("steps", "Steps"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("share_pct", "GPU (%)"),
        Column::num("tokens", "Tokens"),
        Column::num("gpu_ns_per_token", "GPU/token (ns)"),
        Column::num("step_median_ns", "Step med (ns)"),
        Column::num("step_p90_ns", "Step p90 (ns)"),
        Column::num("gpu_busy_pct", "GPU busy (%)"),
        Column::num("api_calls_per_step", "API calls/step"),
        Column::num("api_ns_per_step", "API/step (ns)"),
    ];
    let rows = p
        .phases
        .iter()
        .map(|r| {
            vec![
                Cell::Text(r.phase.as_str().into()),
                Cell::Int(r.steps as i64),
                Cell::Int(r.gpu_ns),
                Cell::Float(r.share_pct, 1),
                r.tokens.map_or(Cell::Missing, |t| Cell::Int(t as i64)),
                r.gpu_ns_per_token
                    .map_or(Cell::Missing, |t| Cell::Float(t, 1)),
                Cell::Float(r.step_median_ns, 1),
                Cell::Int(r.step_p90_ns),
                r.gpu_busy_pct.map_or(Cell::Missing, |v| Cell::Float(v, 1)),
                Cell::Float(r.api_calls_per_step, 1),
                Cell::Float(r.api_ns_per_step, 1),
            ]
        })
        .collect();
    let mut note = phases_note(p, graph_work_fact(&llm.graphs).is_some());
    for line in p.phases.iter().filter_map(phase_api_line) {
        note.push('\n');
        note.push_str(&line);
    }
    Table {
        name: "phases",
        title: match &p.format {
            Some(f) => format!("Engine steps by phase (step ranges: {f})"),
            None => "Engine steps by phase".into(),
        },
        columns,
        rows,
        note: Some(note),
    }
}

/// The API names that took most of a phase's API time per step, on the
/// steps' own threads.
fn phase_api_line(p: &PhaseSummary) -> Option<String> {
    let most: Vec<String> = p
        .api
        .iter()
        .take(3)
        .map(|a| {
            format!(
                "{} {:.3} ms in {}",
                a.name,
                a.ns_per_step / 1e6,
                calls(a.calls_per_step)
            )
        })
        .collect();
    (!most.is_empty()).then(|| {
        format!(
            "{} steps' CUDA API, per step on the step's thread: {}, {:.3} ms; most: {}",
            p.phase.as_str(),
            calls(p.api_calls_per_step),
            p.api_ns_per_step / 1e6,
            most.join(", ")
        )
    })
}

/// A mean count of calls per step: whole when every step made the same
/// number (one step, or a graph replayed alike), else to one decimal.
fn calls(per_step: f64) -> String {
    if per_step == 1.0 {
        "1 call".into()
    } else if per_step.fract() == 0.0 {
        format!("{per_step:.0} calls")
    } else {
        format!("{per_step:.1} calls")
    }
}

/// `steps`: every step in time order; with `top`, the steps furthest above
/// their phase's median, furthest first: the outliers the digest's "slowest
/// step" line points to, without reading every step.
fn steps_report(steps: &[StepRow], top: Option<usize>) -> Table {
    let Some(n) = top.filter(|&n| n < steps.len()) else {
        return steps_table(steps);
    };
    let ratio = |s: &StepRow| s.vs_phase_median.unwrap_or(f64::NEG_INFINITY);
    let mut slowest: Vec<&StepRow> = steps.iter().collect();
    slowest.sort_by(|a, b| {
        ratio(b)
            .total_cmp(&ratio(a))
            .then(b.duration_ns.cmp(&a.duration_ns))
            .then(a.step.cmp(&b.step))
    });
    let mut table = steps_table(slowest.into_iter().take(n));
    table.title = "Engine steps, furthest above their phase's median first".into();
    table.add_note(format!(
        "{n} of {} steps; every step in time order: without --top",
        steps.len()
    ));
    table
}

/// One row per step, in the order given.
pub fn steps_table<'a>(steps: impl IntoIterator<Item = &'a StepRow>) -> Table {
    let columns = vec![
        Column::num("step", "Step"),
        Column::text("phase", "Phase"),
        Column::num("duration_ns", "Duration (ns)"),
        Column::num("vs_phase_median", "× phase median"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("kernels", "Kernels"),
        Column::num("gpu_busy_pct", "GPU busy (%)"),
        Column::num("api_calls", "API calls"),
        Column::num("api_ns", "API (ns)"),
        Column::num("tokens", "Tokens"),
        Column::num("start_ns", "Start (ns)"),
        Column::text("range", "Range"),
        Column::num("filter_index", "Index"),
    ];
    let rows = steps
        .into_iter()
        .map(|r| {
            vec![
                Cell::Int(r.step as i64),
                Cell::Text(r.phase.as_str().into()),
                r.duration_ns.map_or(Cell::Missing, Cell::Int),
                r.vs_phase_median
                    .map_or(Cell::Missing, |v| Cell::Float(v, 2)),
                Cell::Int(r.gpu_ns),
                Cell::Int(r.kernels as i64),
                r.gpu_busy_pct.map_or(Cell::Missing, |v| Cell::Float(v, 1)),
                Cell::Int(r.api_calls as i64),
                Cell::Int(r.api_ns),
                r.tokens.map_or(Cell::Missing, |t| Cell::Int(t as i64)),
                Cell::Int(r.start_ns),
                Cell::Text(r.range.clone()),
                r.filter_index
                    .map_or(Cell::Missing, |i| Cell::Int(i as i64)),
            ]
        })
        .collect();
    Table {
        name: "steps",
        title: "Engine steps".into(),
        columns,
        rows,
        note: None,
    }
}

/// A step this many times its phase's median is named in the default
/// digest.
const SLOW_STEP_RATIO: f64 = 1.5;

/// The default digest's line on the slowest step against its phase's
/// median, when one took at least [`SLOW_STEP_RATIO`] times it: its GPU
/// time beside the phase's median GPU time tells a GPU-bound step from a
/// stall on the CPU, and the filter digests it alone.
fn slow_step_line(steps: &[StepRow]) -> Option<String> {
    let ratio = |s: &StepRow| s.vs_phase_median.unwrap_or(0.0);
    let slow = steps.iter().filter(|s| ratio(s) >= SLOW_STEP_RATIO);
    let worst = slow.clone().max_by(|a, b| ratio(a).total_cmp(&ratio(b)))?;
    let mut gpu: Vec<i64> = steps
        .iter()
        .filter(|s| s.phase == worst.phase)
        .map(|s| s.gpu_ns)
        .collect();
    let median_gpu =
        crate::stats::DurationStats::from_values(&mut gpu).map_or(0.0, |s| s.median_ns);
    let slow = slow.count();
    let alone = worst.filter_index.map_or(String::new(), |i| {
        format!("; alone: --filter-nvtx '{}/{i}'", worst.range)
    });
    Some(format!(
        "slowest step: {} ({}), {:.3} ms = {:.1}× the phase's median, GPU {:.3} ms (median {:.3} ms); {slow} of {} steps at {SLOW_STEP_RATIO}× or more (--report steps --top {slow}){alone}",
        worst.step,
        worst.phase.as_str(),
        worst.duration_ns.unwrap_or(0) as f64 / 1e6,
        ratio(worst),
        worst.gpu_ns as f64 / 1e6,
        median_gpu / 1e6,
        steps.len(),
    ))
}

/// What a phase's GPU time counts, or why there are no phases.
/// `whole_graphs`: graph trace mode, where a graph's work is one interval.
fn phases_note(p: &PhaseReport, whole_graphs: bool) -> String {
    let busy = if whole_graphs {
        "; a graph execution counts as busy from its start to its end, gaps between its kernels included"
    } else {
        ""
    };
    match &p.reason {
        Some(r) => format!("phases unknown: {r}"),
        None => format!(
            "GPU time counts kernels launched inside each step (graph kernels: the step that launched the graph); {:.3} ms ran outside every step; GPU busy: of the time from each step's first GPU work to its last, the share some of it ran{busy}",
            p.outside_steps_gpu_ns as f64 / 1e6
        ),
    }
}

/// `layers`: GPU time per layer type (and phase with --by-phase).
pub fn layer_types_table(l: &LayerReport) -> Table {
    let columns = vec![
        Column::name("layer_type", "Layer type"),
        Column::text("phase", "Phase"),
        Column::num("layers", "Layers"),
        Column::num("kernels", "Kernels"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("share_pct", "GPU (%)"),
    ];
    let rows = l
        .types
        .iter()
        .map(|r| {
            vec![
                Cell::Name(r.layer_type.clone()),
                Cell::Text(r.phase.map_or("all".into(), |p| p.as_str().into())),
                Cell::Int(r.layers as i64),
                Cell::Int(r.kernels as i64),
                Cell::Int(r.gpu_ns),
                Cell::Float(r.share_pct, 1),
            ]
        })
        .collect();
    Table {
        name: "layers",
        title: "GPU time by layer type".into(),
        columns,
        rows,
        note: Some(layer_types_note(l)),
    }
}

/// How much of the kernel time the layers cover, and the layers that
/// cost far more than their siblings.
fn layer_types_note(l: &LayerReport) -> String {
    let mut note = match &l.reason {
        Some(r) => format!("layers unknown: {r}"),
        None => format!(
            "kernel time in a layer: {:.1} %; graph kernels placed by capture-time ranges: {} of {}",
            l.coverage_pct, l.graph_kernels_with_layer, l.graph_kernels
        ),
    };
    if let Some(g) = &l.graph_note {
        note.push_str("; ");
        note.push_str(g);
    }
    let outliers: Vec<String> = l
        .indices
        .iter()
        .filter(|r| r.outlier)
        .map(|r| format!("{} [{}] {:.1}x", r.layer_type, r.index, r.ratio_to_median))
        .collect();
    if !outliers.is_empty() {
        note.push_str(&format!(
            "; costlier than siblings: {}",
            outliers.join(", ")
        ));
    }
    note
}

/// Per layer index, flagged when far above its siblings.
pub fn layer_index_table(l: &LayerReport) -> Table {
    let columns = vec![
        Column::name("layer_type", "Layer type"),
        Column::num("index", "Index"),
        Column::text("phase", "Phase"),
        Column::num("kernels", "Kernels"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("ratio_to_median", "x median"),
        Column::text("outlier", "Outlier"),
    ];
    let rows = l
        .indices
        .iter()
        .map(|r| {
            vec![
                Cell::Name(r.layer_type.clone()),
                Cell::Int(r.index as i64),
                Cell::Text(r.phase.map_or("all".into(), |p| p.as_str().into())),
                Cell::Int(r.kernels as i64),
                Cell::Int(r.gpu_ns),
                Cell::Float(r.ratio_to_median, 2),
                Cell::Text(if r.outlier {
                    "yes".into()
                } else {
                    String::new()
                }),
            ]
        })
        .collect::<Vec<_>>();
    let note = (!rows.is_empty()).then(|| {
        format!(
            "outlier: at least {:.1}x the median of the same layer type",
            super::llm::OUTLIER_RATIO
        )
    });
    Table {
        name: "layer-indices",
        title: "GPU time by layer index".into(),
        columns,
        rows,
        note,
    }
}

/// `categories`: kernel time per (phase, category), every row.
pub fn categories_table(d: &Digest) -> Table {
    let columns = vec![
        Column::text("phase", "Phase"),
        Column::text("category", "Category"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("share_of_phase_pct", "Of phase (%)"),
        Column::num("instances", "Instances"),
        Column::num("kernel_names", "Kernel names"),
    ];
    let rows = d
        .llm
        .categories
        .iter()
        .map(|r| {
            vec![
                Cell::Text(r.phase.clone()),
                Cell::Text(r.category.clone()),
                Cell::Int(r.gpu_ns),
                Cell::Float(r.share_of_phase_pct, 1),
                Cell::Int(r.instances as i64),
                Cell::Int(r.kernel_names as i64),
            ]
        })
        .collect();
    Table {
        name: "categories",
        title: "GPU time by kernel category".into(),
        columns,
        rows,
        note: graph_work_fact(&d.llm.graphs).map(|w| format!("kernels only: {w}")),
    }
}

/// The default digest's categories share a line per phase, and name only
/// those of at least this share of it.
const DEFAULT_MIN_CATEGORY_PCT: f64 = 1.0;

/// The default digest's categories: one line per phase, its shares by
/// category, costliest first.
pub fn categories_by_phase_table(d: &Digest) -> Table {
    let columns = vec![
        Column::text("phase", "Phase"),
        Column::num("gpu_ns", "Kernel time (ns)"),
        Column::text("shares", "Share by category (%)"),
    ];
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut hidden = 0;
    // The rows come grouped by phase, costliest first within it.
    for phase in d.llm.categories.chunk_by(|a, b| a.phase == b.phase) {
        let (shown, small): (Vec<_>, Vec<_>) = phase
            .iter()
            .partition(|c| c.share_of_phase_pct >= DEFAULT_MIN_CATEGORY_PCT);
        hidden += small.len();
        let shares: Vec<String> = shown
            .iter()
            .map(|c| format!("{} {:.1}", c.category, c.share_of_phase_pct))
            .collect();
        rows.push(vec![
            Cell::Text(phase[0].phase.clone()),
            Cell::Int(phase.iter().map(|c| c.gpu_ns).sum()),
            Cell::Text(shares.join(", ")),
        ]);
    }
    let mut notes = Vec::new();
    if hidden > 0 {
        notes.push(format!(
            "{hidden} under {DEFAULT_MIN_CATEGORY_PCT:.0} % of {} phase left out (--report categories)",
            if hidden == 1 { "its" } else { "their" }
        ));
    }
    if let Some(work) = graph_work_fact(&d.llm.graphs) {
        notes.push(format!("kernels only: {work}"));
    }
    Table {
        name: "categories",
        title: "GPU time by kernel category".into(),
        columns,
        rows,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// `communication`: per GPU, its communication kernels' time, and how much
/// of it ran beside other kernels.
pub fn communication_table(d: &Digest) -> Table {
    let columns = vec![
        Column::num("device", "Device"),
        Column::num("kernels", "Kernels"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("busy_ns", "Busy (ns)"),
        Column::num("overlapped_ns", "Overlapped (ns)"),
        Column::num("overlapped_pct", "Overlapped (%)"),
        Column::num("exposed_ns", "Exposed (ns)"),
    ];
    let rows = d
        .llm
        .communication
        .iter()
        .map(|r| {
            vec![
                Cell::Int(r.device),
                Cell::Int(r.kernels as i64),
                Cell::Int(r.gpu_ns),
                Cell::Int(r.busy_ns),
                Cell::Int(r.overlapped_ns),
                Cell::Float(r.overlapped_pct, 1),
                Cell::Int(r.exposed_ns),
            ]
        })
        .collect();
    let mut note = "busy: time with communication running; overlapped: of it, time another \
                    kernel ran on the GPU too; exposed: the rest"
        .to_string();
    if let Some(work) = graph_work_fact(&d.llm.graphs) {
        note.push_str(&format!("; kernels only: {work}"));
    }
    Table {
        name: "communication",
        title: "Communication kernels and their overlap with compute, per GPU".into(),
        columns,
        rows,
        note: Some(note),
    }
}

/// `hotspots`: top kernels per (phase, layer type).
pub fn hotspots_table(rows: &[Hotspot]) -> Table {
    let columns = vec![
        Column::text("phase", "Phase"),
        Column::name("layer_type", "Layer type"),
        Column::text("category", "Category"),
        Column::name("kernel", "Kernel"),
        Column::num("gpu_ns", "GPU (ns)"),
        Column::num("share_of_phase_pct", "Of phase (%)"),
        Column::num("instances", "Instances"),
        Column::num("median_ns", "Med (ns)"),
    ];
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                Cell::Text(r.phase.clone()),
                Cell::Name(r.layer_type.clone()),
                Cell::Text(r.category.clone()),
                Cell::Name(r.kernel.clone()),
                Cell::Int(r.gpu_ns),
                Cell::Float(r.share_of_phase_pct, 1),
                Cell::Int(r.instances as i64),
                Cell::Float(r.median_ns, 1),
            ]
        })
        .collect();
    Table {
        name: "hotspots",
        title: "Hotspots: top kernels per (phase, layer type)".into(),
        columns,
        rows,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::calls;

    #[test]
    fn whole_counts_print_without_a_decimal() {
        assert_eq!(calls(1.0), "1 call");
        assert_eq!(calls(539.0), "539 calls");
        assert_eq!(calls(0.4), "0.4 calls");
        assert_eq!(calls(1901.666), "1901.7 calls");
    }
}
