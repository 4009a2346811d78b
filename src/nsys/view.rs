//! Turns a [`Digest`] into [`Table`]s: the full reports for `--report NAME`
//! and the one-screen default digest.

use super::reports::*;
use super::Digest;
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

fn opt_int(v: Option<i64>) -> Cell {
    v.map_or(Cell::Missing, Cell::Int)
}

/// `kernels`: one row per kernel name (and process/GPU when split).
pub fn kernels_table(rows: &[KernelSummary], top: Option<usize>) -> Table {
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
        .take(top.unwrap_or(usize::MAX))
        .map(|r| {
            let mut cells = vec![Cell::Name(r.name.clone())];
            if split {
                cells.push(opt_int(r.pid.map(i64::from)));
                cells.push(opt_int(r.device));
            }
            cells.extend(stats_cells(&r.time));
            cells.push(Cell::Float(r.share_pct, 1));
            cells
        })
        .collect();
    Table {
        name: "kernels",
        title: "GPU kernels (as cuda_gpu_kern_sum)".into(),
        columns,
        rows,
        note: None,
    }
}

/// `nvtx`: CPU range time with the projected GPU time beside it.
pub fn nvtx_table(rows: &[NvtxSummary], top: Option<usize>) -> Table {
    let mut columns = vec![
        Column::name("range", "Range"),
        Column::text("style", "Style"),
    ];
    columns.extend(STATS_COLUMNS);
    columns.push(Column::num("proj_total_ns", "GPU proj (ns)"));
    columns.push(Column::num("gpu_ops", "GPU ops"));
    let rows = rows
        .iter()
        .take(top.unwrap_or(usize::MAX))
        .map(|r| {
            let mut cells = vec![
                Cell::Name(r.range.clone()),
                Cell::Text(r.style.as_str().into()),
            ];
            cells.extend(stats_cells(&r.time));
            cells.push(opt_int(r.gpu.as_ref().map(|g| g.time.total_ns)));
            cells.push(opt_int(r.gpu.as_ref().map(|g| g.gpu_ops as i64)));
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
                opt_int(r.pid.map(i64::from)),
                opt_int(r.tid.map(i64::from)),
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
pub fn launch_table(rows: &[LaunchSummary], top: Option<usize>) -> Table {
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
    let rows = rows
        .iter()
        .take(top.unwrap_or(usize::MAX))
        .map(|r| {
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
        })
        .collect();
    Table {
        name: "launch",
        title: "Kernel launch cost and queue latency (as cuda_kern_exec_sum)".into(),
        columns,
        rows,
        note: Some(
            "Queue = API call end to kernel start, over launches that queued (QCount).".into(),
        ),
    }
}

/// `busy`: GPU busy and idle time per device, then per stream.
pub fn busy_table(rows: &[GpuBusy], devices_only: bool) -> Table {
    let columns = vec![
        Column::num("device", "Device"),
        Column::text("stream", "Stream"),
        Column::num("ops", "GPU ops"),
        Column::num("busy_ns", "Busy (ns)"),
        Column::num("idle_ns", "Idle (ns)"),
        Column::num("idle_pct", "Idle (%)"),
        Column::num("gaps", "Gaps"),
        Column::num("longest_gap_ns", "Longest gap (ns)"),
    ];
    let rows = rows
        .iter()
        .filter(|r| !devices_only || r.stream.is_none())
        .map(|r| {
            vec![
                Cell::Int(r.device),
                Cell::Text(r.stream.map_or("all".into(), |s| s.to_string())),
                Cell::Int(r.ops as i64),
                Cell::Int(r.busy_ns),
                Cell::Int(r.idle_ns),
                Cell::Float(r.idle_pct, 1),
                Cell::Int(r.gaps as i64),
                Cell::Int(r.longest_gap_ns),
            ]
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

/// The tables of one report, in full.
pub fn report_tables(d: &Digest, report: ReportName) -> Vec<Table> {
    match report {
        ReportName::Kernels => vec![kernels_table(&d.kernels, None)],
        ReportName::Nvtx => vec![nvtx_table(&d.nvtx, None)],
        ReportName::NvtxKernels => vec![nvtx_kernels_table(
            &d.nvtx_kernels,
            d.nvtx_kernels_innermost,
        )],
        ReportName::Launch => vec![
            launch_table(&d.launch.kernels, None),
            busy_table(&d.launch.busy, false),
        ],
        ReportName::Busy => vec![busy_table(&d.launch.busy, false)],
        ReportName::Memory => vec![memory_table(&d.memory)],
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
    }
}

/// Profile facts printed above every digest.
pub fn facts(d: &Digest) -> Vec<(String, String)> {
    let s = &d.source;
    let mut facts = Vec::new();
    let gpus: Vec<String> = s.gpus.iter().map(|g| g.name.clone()).collect();
    let used: Vec<String> = s.devices.iter().map(|d| d.to_string()).collect();
    facts.push((
        "GPUs".into(),
        if gpus.is_empty() {
            format!("unknown (kernels on device {})", used.join(", "))
        } else {
            format!(
                "{} (kernels on device {})",
                gpus.join(", "),
                used.join(", ")
            )
        },
    ));
    facts.push((
        "nsys".into(),
        format!(
            "{} (schema {})",
            s.nsys_version.as_deref().unwrap_or("unknown"),
            s.schema_version.as_deref().unwrap_or("unknown")
        ),
    ));
    if let Some(span) = s.span_ns {
        facts.push(("span".into(), format!("{:.3} ms", span as f64 / 1e6)));
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
    if let Some(mode) = &s.graph_trace_mode {
        facts.push(("graph trace".into(), mode.to_lowercase()));
    }
    if s.processes.len() > 1 {
        let p: Vec<String> = s.processes.iter().map(|p| p.to_string()).collect();
        facts.push(("processes".into(), p.join(", ")));
    }
    facts
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

/// The default one-screen digest: facts, top kernels, top ranges, memory, idle.
pub fn default_document(d: &Digest) -> Document {
    let mut tables = vec![select_columns(
        kernels_table(&d.kernels, Some(DEFAULT_TOP)),
        &[
            "share_pct",
            "total_ns",
            "instances",
            "avg_ns",
            "median_ns",
            "pid",
            "device",
            "name",
        ],
    )];
    if !d.nvtx.is_empty() {
        tables.push(select_columns(
            nvtx_table(&d.nvtx, Some(DEFAULT_TOP)),
            &[
                "instances",
                "total_ns",
                "median_ns",
                "proj_total_ns",
                "gpu_ops",
                "range",
            ],
        ));
    }
    if !d.memory.is_empty() {
        tables.push(select_columns(
            memory_table(&d.memory),
            &[
                "share_pct",
                "total_ns",
                "instances",
                "bytes",
                "bandwidth_bytes_per_s",
                "operation",
            ],
        ));
    }
    if !d.launch.busy.is_empty() {
        tables.push(select_columns(
            busy_table(&d.launch.busy, true),
            &[
                "device",
                "ops",
                "busy_ns",
                "idle_ns",
                "idle_pct",
                "gaps",
                "longest_gap_ns",
            ],
        ));
    }
    Document {
        title: format!("nsys-digest: {}", d.source.file),
        facts: facts(d),
        tables,
    }
}

/// A document holding one full report.
pub fn report_document(d: &Digest, report: ReportName) -> Document {
    Document {
        title: format!("nsys-digest: {}", d.source.file),
        facts: facts(d),
        tables: report_tables(d, report),
    }
}
