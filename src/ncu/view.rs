//! Turns an [`NcuDigest`] into tables: the aggregated view (default) and
//! the per-launch view (`--per-launch`).

use super::derive::{Bound, LaunchMetrics, LoadPaths};
use super::{nvtx_key, Group, KernelAggregate, NcuDigest};
use crate::render::{Cell, Column, Document, Table};

fn bound(b: Option<Bound>) -> Cell {
    b.map_or(Cell::Missing, |b| Cell::Text(b.as_str().into()))
}

const METRIC_COLUMNS: [Column; 9] = [
    Column::num("duration_ns", "Duration (us)"),
    Column::num("dram_read_bytes", "DRAM read (MB)"),
    Column::num("dram_write_bytes", "DRAM write (MB)"),
    Column::num("dram_bandwidth_bytes_per_s", "DRAM BW (GB/s)"),
    Column::num("dram_peak_pct", "DRAM (%)"),
    Column::num("sm_peak_pct", "SM (%)"),
    Column::num("ld_efficiency_pct", "Ld eff (%)"),
    Column::num("st_efficiency_pct", "St eff (%)"),
    Column::text("bound", "Bound"),
];

/// Shown only for captures that counted all three load paths.
const LOAD_PATHS_COLUMN: Column = Column::text("load_paths", "Loads via");

/// What the "Loads via" column means, for the legend.
const LOAD_PATHS_LEGEND: &str = "Loads via: LSU (LDG instructions, the only path Ld eff measures), cp.async (LDGSTS instructions) or TMA (tensor memory accelerator); none: no global load";

/// Shown only for captures that counted both CUDA-core and tensor-core work.
const FLOP_COLUMNS: [Column; 2] = [
    Column::num("flop_per_s", "GFLOP/s"),
    Column::num("flop_per_dram_byte", "FLOP/B"),
];

const FLOP_LEGEND: &str = "GFLOP/s: FLOPs ÷ duration, where FLOPs = CUDA-core instructions as ncu's roofline counts them (FMA 2; HADD2, HMUL2, HFMA2 2, 2, 4) + tensor-core operations (sm__ops_path_tensor_src_*, FMA 2); FLOP/B: FLOPs per DRAM byte (arithmetic intensity)";

/// Shown only where FLOPs are and the capture also counted L2 bytes.
const L2_FLOP_COLUMN: Column = Column::num("flop_per_l2_byte", "FLOP/L2 B");

const L2_FLOP_LEGEND: &str = "FLOP/L2 B: FLOPs per byte requested of L2 (lts__t_bytes.sum), the hierarchical roofline's L2 intensity";

/// Which optional column groups a digest's tables show.
#[derive(Clone, Copy)]
struct Shown {
    load_paths: bool,
    flops: bool,
    l2_flops: bool,
}

impl Shown {
    fn of(d: &NcuDigest) -> Shown {
        Shown {
            load_paths: d.total.load_paths.is_some(),
            flops: d.total.flops.flops.is_some(),
            l2_flops: d.total.flop_per_l2_byte.is_some(),
        }
    }
}

fn metric_columns(shown: Shown) -> Vec<Column> {
    let mut columns = METRIC_COLUMNS.to_vec();
    columns.extend(shown.load_paths.then_some(LOAD_PATHS_COLUMN));
    if shown.flops {
        columns.extend(FLOP_COLUMNS);
    }
    columns.extend(shown.l2_flops.then_some(L2_FLOP_COLUMN));
    columns
}

fn load_paths_cell(p: Option<LoadPaths>) -> Cell {
    p.map_or(Cell::Missing, |p| Cell::Text(p.label()))
}

/// The metric cells of a kernel aggregate or of one launch, in the order of
/// [`metric_columns`]: both name their metrics alike, so the list is
/// written once.
macro_rules! metric_cells {
    ($r:expr, $shown:expr) => {{
        let mut cells = vec![
            Cell::opt_scaled($r.duration_ns, 1e3, 2),
            Cell::opt_scaled($r.dram_read_bytes, 1e6, 2),
            Cell::opt_scaled($r.dram_write_bytes, 1e6, 2),
            Cell::opt_scaled($r.dram_bandwidth_bytes_per_s, 1e9, 1),
            Cell::opt_float($r.dram_peak_pct, 1),
            Cell::opt_float($r.sm_peak_pct, 1),
            Cell::opt_float($r.ld_efficiency_pct, 1),
            Cell::opt_float($r.st_efficiency_pct, 1),
            bound($r.bound),
        ];
        if $shown.load_paths {
            cells.push(load_paths_cell($r.load_paths));
        }
        if $shown.flops {
            cells.push(Cell::opt_scaled($r.flop_per_s, 1e9, 1));
            cells.push(Cell::opt_float($r.flop_per_dram_byte, 2));
        }
        if $shown.l2_flops {
            cells.push(Cell::opt_float($r.flop_per_l2_byte, 2));
        }
        cells
    }};
}

/// The aggregated table, one row per group, by total duration.
pub fn aggregate_table(d: &NcuDigest) -> Table {
    let mut columns = Vec::new();
    if d.group != Group::Nvtx {
        columns.push(Column::name("kernel", "Kernel"));
    }
    if d.group != Group::Kernel {
        columns.push(Column::name("nvtx", "NVTX range"));
    }
    columns.push(Column::num("launches", "Launches"));
    let shown = Shown::of(d);
    columns.extend(metric_columns(shown));
    let rows = d
        .kernels
        .iter()
        .map(|r: &KernelAggregate| {
            let mut cells = Vec::new();
            if let Some(k) = &r.kernel {
                cells.push(Cell::Name(k.clone()));
            }
            if let Some(n) = &r.nvtx {
                cells.push(Cell::Name(n.clone()));
            }
            cells.push(Cell::Int(r.launches as i64));
            cells.extend(metric_cells!(r, shown));
            cells
        })
        .collect::<Vec<_>>();
    let note = Some(table_note(d, rows.is_empty()));
    Table {
        name: "kernels",
        title: format!(
            "Kernels by total duration ({} of {} launches)",
            d.source.launches_selected, d.source.launches_read
        ),
        columns,
        rows,
        note,
    }
}

/// One row per launch.
pub fn launch_table(d: &NcuDigest) -> Table {
    let shown = Shown::of(d);
    let mut columns = vec![Column::num("id", "ID"), Column::name("kernel", "Kernel")];
    columns.extend(metric_columns(shown));
    columns.push(Column::name("nvtx", "NVTX range"));
    columns.push(Column::text("grid", "Grid"));
    columns.push(Column::text("block", "Block"));
    let rows = d
        .launches
        .iter()
        .map(|r: &LaunchMetrics| {
            let mut cells = vec![Cell::Int(r.id as i64), Cell::Name(r.kernel.clone())];
            cells.extend(metric_cells!(r, shown));
            cells.push(Cell::Name(nvtx_key(r)));
            cells.push(r.grid.clone().map_or(Cell::Missing, Cell::Text));
            cells.push(r.block.clone().map_or(Cell::Missing, Cell::Text));
            cells
        })
        .collect::<Vec<_>>();
    let note = Some(table_note(d, rows.is_empty()));
    Table {
        name: "launches",
        title: "Launches".into(),
        columns,
        rows,
        note,
    }
}

/// Under a table, its legend; under an empty one, why it is empty.
fn table_note(d: &NcuDigest, empty: bool) -> String {
    match (empty, d.source.launches_read) {
        (false, _) => legend(d),
        (true, 0) => "the file holds no kernel launch".into(),
        (true, read) => format!("none of the {read} launches read passed --kernel and --nvtx"),
    }
}

/// Said where a duration is not ncu's own `gpu__time_duration`.
const DURATION_FROM_CYCLES: &str = "duration: SM elapsed cycles ÷ SM clock (sm__cycles_elapsed.avg ÷ sm__cycles_elapsed.avg.per_second), where a launch has no gpu__time_duration";

fn legend(d: &NcuDigest) -> String {
    let shown = Shown::of(d);
    let mut parts = vec![d.rule.clone()];
    if shown.load_paths {
        parts.push(LOAD_PATHS_LEGEND.into());
    }
    if shown.flops {
        parts.push(FLOP_LEGEND.into());
    }
    if shown.l2_flops {
        parts.push(L2_FLOP_LEGEND.into());
    }
    if d.source.auto_scaled_units {
        parts.push("values came in auto-scaled units rounded to 2 decimals; export with --print-units base for exact figures".into());
    }
    if d.source.duration_from_cycles {
        parts.push(DURATION_FROM_CYCLES.into());
    }
    if !d.notes.is_empty() {
        parts.push(format!("absent (—): {}", d.notes.join("; ")));
    }
    parts.join(". ")
}

/// The selected launches taken together, in the table's units: what a
/// `--kernel` selection costs and how near the DRAM peak it runs.
fn total_fact(t: &KernelAggregate) -> Option<String> {
    let shown = |v: Option<f64>, scale: f64, decimals: usize, unit: &str| {
        v.map(|x| format!("{} {unit}", Cell::Scaled(x, scale, decimals).pretty()))
    };
    let parts: Vec<String> = [
        shown(t.duration_ns, 1e3, 2, "us"),
        shown(t.dram_bytes, 1e6, 2, "MB DRAM"),
        shown(t.dram_bandwidth_bytes_per_s, 1e9, 1, "GB/s"),
        shown(t.dram_peak_pct, 1.0, 1, "% of DRAM peak"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The whole document; the aggregated table keeps its first `top` rows.
pub fn document(d: &NcuDigest, per_launch: bool, top: Option<usize>) -> Document {
    let mut facts = vec![
        (
            "page".to_string(),
            format!("{:?}", d.source.page).to_lowercase(),
        ),
        (
            "launches".to_string(),
            format!(
                "{} selected of {} read",
                d.source.launches_selected, d.source.launches_read
            ),
        ),
    ];
    if let Some(gpu) = &d.source.gpu {
        facts.push(("GPU".into(), gpu.clone()));
    }
    if let Some(total) = total_fact(&d.total) {
        facts.push(("total".into(), total));
    }
    // A fact, not only the legend: an empty table, which is what `--nvtx`
    // leaves here, has no legend.
    if let Some(why) = d.nvtx_absent {
        facts.push(("NVTX ranges".into(), why.into()));
    }
    Document {
        title: format!("ncu-digest: {}", d.source.file),
        facts,
        tables: vec![if per_launch {
            launch_table(d)
        } else {
            aggregate_table(d).keep_first(top, "--top N to change")
        }],
        ..Default::default()
    }
}
