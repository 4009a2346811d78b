//! Per-profile tables for fleets: kernels, NVTX ranges, phases, steps,
//! layers, kernel categories and communication overlap,
//! each row carrying its profile id, ready to be written as a Parquet
//! dataset (feature `parquet`) and queried with Spark, DuckDB or Polars.
//! The rows are plain structs so a folder run keeps only these, never the
//! digests.

use crate::nsys::comm_overlap::CommOverlap;
use crate::nsys::llm::{LayerTypeSummary, PhaseCategory, PhaseSummary};
use crate::nsys::reports::{KernelSummary, NvtxSummary};
use crate::nsys::steps::StepRow;
use crate::nsys::Digest;
use serde::Serialize;

/// The polars the Parquet files were written with, for readers and tests.
#[cfg(feature = "parquet")]
pub use polars;

#[derive(Debug, Clone, Serialize)]
pub struct KernelRecord {
    pub profile: String,
    pub name: String,
    /// Null unless `--by-process` split the profile's kernels.
    pub pid: Option<i64>,
    pub device: Option<i64>,
    pub instances: i64,
    pub total_ns: i64,
    pub avg_ns: f64,
    pub median_ns: f64,
    pub min_ns: i64,
    pub max_ns: i64,
    pub stddev_ns: f64,
    pub share_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NvtxRecord {
    pub profile: String,
    pub range: String,
    pub style: String,
    pub instances: i64,
    pub total_ns: i64,
    pub median_ns: f64,
    pub proj_total_ns: Option<i64>,
    pub gpu_ops: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseRecord {
    pub profile: String,
    pub phase: String,
    pub steps: i64,
    pub gpu_ns: i64,
    pub tokens: Option<i64>,
    pub gpu_ns_per_token: Option<f64>,
    pub step_median_ns: f64,
    pub step_p90_ns: i64,
    pub gpu_busy_pct: Option<f64>,
    pub api_calls_per_step: f64,
    pub api_ns_per_step: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerRecord {
    pub profile: String,
    pub layer_type: String,
    pub phase: Option<String>,
    pub layers: i64,
    pub kernels: i64,
    pub gpu_ns: i64,
    pub share_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRecord {
    pub profile: String,
    pub phase: String,
    pub category: String,
    pub gpu_ns: i64,
    pub share_of_phase_pct: f64,
    pub instances: i64,
    pub kernel_names: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub profile: String,
    pub step: i64,
    pub phase: String,
    pub range: String,
    pub filter_index: Option<i64>,
    pub start_ns: i64,
    pub duration_ns: Option<i64>,
    pub gpu_ns: i64,
    pub kernels: i64,
    pub tokens: Option<i64>,
    pub vs_phase_median: Option<f64>,
    pub gpu_start_ns: Option<i64>,
    pub gpu_end_ns: Option<i64>,
    pub gpu_busy_ns: i64,
    pub gpu_busy_pct: Option<f64>,
    pub api_calls: i64,
    pub api_ns: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommunicationRecord {
    pub profile: String,
    pub device: i64,
    pub kernels: i64,
    pub gpu_ns: i64,
    pub busy_ns: i64,
    pub overlapped_ns: i64,
    pub overlapped_pct: f64,
    pub exposed_ns: i64,
}

impl KernelRecord {
    fn new(profile: &str, k: &KernelSummary) -> KernelRecord {
        KernelRecord {
            profile: profile.to_string(),
            name: k.name.clone(),
            pid: k.pid.map(i64::from),
            device: k.device,
            instances: k.time.count as i64,
            total_ns: k.time.total_ns,
            avg_ns: k.time.avg_ns,
            median_ns: k.time.median_ns,
            min_ns: k.time.min_ns,
            max_ns: k.time.max_ns,
            stddev_ns: k.time.stddev_ns,
            share_pct: k.share_pct,
        }
    }
}

impl NvtxRecord {
    fn new(profile: &str, r: &NvtxSummary) -> NvtxRecord {
        NvtxRecord {
            profile: profile.to_string(),
            range: r.range.clone(),
            style: r.style.as_str().to_string(),
            instances: r.time.count as i64,
            total_ns: r.time.total_ns,
            median_ns: r.time.median_ns,
            proj_total_ns: r.gpu.as_ref().map(|g| g.time.total_ns),
            gpu_ops: r.gpu.as_ref().map(|g| g.gpu_ops as i64),
        }
    }
}

impl PhaseRecord {
    fn new(profile: &str, p: &PhaseSummary) -> PhaseRecord {
        PhaseRecord {
            profile: profile.to_string(),
            phase: p.phase.as_str().to_string(),
            steps: p.steps as i64,
            gpu_ns: p.gpu_ns,
            tokens: p.tokens.map(|t| t as i64),
            gpu_ns_per_token: p.gpu_ns_per_token,
            step_median_ns: p.step_median_ns,
            step_p90_ns: p.step_p90_ns,
            gpu_busy_pct: p.gpu_busy_pct,
            api_calls_per_step: p.api_calls_per_step,
            api_ns_per_step: p.api_ns_per_step,
        }
    }
}

impl LayerRecord {
    fn new(profile: &str, l: &LayerTypeSummary) -> LayerRecord {
        LayerRecord {
            profile: profile.to_string(),
            layer_type: l.layer_type.clone(),
            phase: l.phase.map(|p| p.as_str().to_string()),
            layers: l.layers as i64,
            kernels: l.kernels as i64,
            gpu_ns: l.gpu_ns,
            share_pct: l.share_pct,
        }
    }
}

impl CategoryRecord {
    fn new(profile: &str, c: &PhaseCategory) -> CategoryRecord {
        CategoryRecord {
            profile: profile.to_string(),
            phase: c.phase.clone(),
            category: c.category.clone(),
            gpu_ns: c.gpu_ns,
            share_of_phase_pct: c.share_of_phase_pct,
            instances: c.instances as i64,
            kernel_names: c.kernel_names as i64,
        }
    }
}

impl StepRecord {
    fn new(profile: &str, s: &StepRow) -> StepRecord {
        StepRecord {
            profile: profile.to_string(),
            step: s.step as i64,
            phase: s.phase.as_str().to_string(),
            range: s.range.clone(),
            filter_index: s.filter_index.map(|i| i as i64),
            start_ns: s.start_ns,
            duration_ns: s.duration_ns,
            gpu_ns: s.gpu_ns,
            kernels: s.kernels as i64,
            tokens: s.tokens.map(|t| t as i64),
            vs_phase_median: s.vs_phase_median,
            gpu_start_ns: s.gpu_start_ns,
            gpu_end_ns: s.gpu_end_ns,
            gpu_busy_ns: s.gpu_busy_ns,
            gpu_busy_pct: s.gpu_busy_pct,
            api_calls: s.api_calls as i64,
            api_ns: s.api_ns,
        }
    }
}

impl CommunicationRecord {
    fn new(profile: &str, c: &CommOverlap) -> CommunicationRecord {
        CommunicationRecord {
            profile: profile.to_string(),
            device: c.device,
            kernels: c.kernels as i64,
            gpu_ns: c.gpu_ns,
            busy_ns: c.busy_ns,
            overlapped_ns: c.overlapped_ns,
            overlapped_pct: c.overlapped_pct,
            exposed_ns: c.exposed_ns,
        }
    }
}

/// The seven tables of one or many profiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportTables {
    pub kernels: Vec<KernelRecord>,
    pub nvtx: Vec<NvtxRecord>,
    pub phases: Vec<PhaseRecord>,
    pub steps: Vec<StepRecord>,
    pub layers: Vec<LayerRecord>,
    pub categories: Vec<CategoryRecord>,
    pub communication: Vec<CommunicationRecord>,
}

impl ExportTables {
    /// The rows of one digest, tagged with `profile`.
    pub fn from_digest(d: &Digest) -> ExportTables {
        let profile = d.source.file.as_str();
        ExportTables {
            kernels: d
                .kernels
                .iter()
                .map(|k| KernelRecord::new(profile, k))
                .collect(),
            nvtx: d.nvtx.iter().map(|r| NvtxRecord::new(profile, r)).collect(),
            phases: d
                .llm
                .phases
                .phases
                .iter()
                .map(|p| PhaseRecord::new(profile, p))
                .collect(),
            steps: d
                .llm
                .steps
                .iter()
                .map(|s| StepRecord::new(profile, s))
                .collect(),
            layers: d
                .llm
                .layers
                .types
                .iter()
                .map(|l| LayerRecord::new(profile, l))
                .collect(),
            categories: d
                .llm
                .categories
                .iter()
                .map(|c| CategoryRecord::new(profile, c))
                .collect(),
            communication: d
                .llm
                .communication
                .iter()
                .map(|c| CommunicationRecord::new(profile, c))
                .collect(),
        }
    }

    pub fn extend(&mut self, other: ExportTables) {
        self.kernels.extend(other.kernels);
        self.nvtx.extend(other.nvtx);
        self.phases.extend(other.phases);
        self.steps.extend(other.steps);
        self.layers.extend(other.layers);
        self.categories.extend(other.categories);
        self.communication.extend(other.communication);
    }
}

/// One Parquet column: `$field` of every row, by the column's own name.
#[cfg(feature = "parquet")]
macro_rules! column {
    ($rows:expr, $field:ident) => {
        polars::prelude::Column::new(
            stringify!($field).into(),
            $rows.iter().map(|r| r.$field).collect::<Vec<_>>(),
        )
    };
    ($rows:expr, $field:ident as text) => {
        polars::prelude::Column::new(
            stringify!($field).into(),
            $rows.iter().map(|r| r.$field.as_str()).collect::<Vec<_>>(),
        )
    };
}

/// Write `kernels.parquet`, `nvtx.parquet`, `phases.parquet`,
/// `steps.parquet`, `layers.parquet`, `categories.parquet` and
/// `communication.parquet` into `dir`.
#[cfg(feature = "parquet")]
pub fn write_parquet(dir: &std::path::Path, t: &ExportTables) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    write_parquet_table(dir, "kernels", parquet::kernel_columns(&t.kernels))?;
    write_parquet_table(dir, "nvtx", parquet::nvtx_columns(&t.nvtx))?;
    write_parquet_table(dir, "phases", parquet::phase_columns(&t.phases))?;
    write_parquet_table(dir, "steps", parquet::step_columns(&t.steps))?;
    write_parquet_table(dir, "layers", parquet::layer_columns(&t.layers))?;
    write_parquet_table(dir, "categories", parquet::category_columns(&t.categories))?;
    let communication = parquet::communication_columns(&t.communication);
    write_parquet_table(dir, "communication", communication)
}

/// Each Parquet table's columns, in the order of its CSV.
#[cfg(feature = "parquet")]
mod parquet {
    use super::*;
    use polars::prelude::Column;

    pub(super) fn kernel_columns(k: &[KernelRecord]) -> Vec<Column> {
        vec![
            column!(k, profile as text),
            column!(k, name as text),
            column!(k, pid),
            column!(k, device),
            column!(k, instances),
            column!(k, total_ns),
            column!(k, avg_ns),
            column!(k, median_ns),
            column!(k, min_ns),
            column!(k, max_ns),
            column!(k, stddev_ns),
            column!(k, share_pct),
        ]
    }

    pub(super) fn nvtx_columns(n: &[NvtxRecord]) -> Vec<Column> {
        vec![
            column!(n, profile as text),
            column!(n, range as text),
            column!(n, style as text),
            column!(n, instances),
            column!(n, total_ns),
            column!(n, median_ns),
            column!(n, proj_total_ns),
            column!(n, gpu_ops),
        ]
    }

    pub(super) fn phase_columns(p: &[PhaseRecord]) -> Vec<Column> {
        vec![
            column!(p, profile as text),
            column!(p, phase as text),
            column!(p, steps),
            column!(p, gpu_ns),
            column!(p, tokens),
            column!(p, gpu_ns_per_token),
            column!(p, step_median_ns),
            column!(p, step_p90_ns),
            column!(p, gpu_busy_pct),
            column!(p, api_calls_per_step),
            column!(p, api_ns_per_step),
        ]
    }

    /// A layer row's phase is empty outside any phase: a null, not "".
    pub(super) fn layer_columns(l: &[LayerRecord]) -> Vec<Column> {
        let phase: Vec<Option<&str>> = l.iter().map(|r| r.phase.as_deref()).collect();
        vec![
            column!(l, profile as text),
            column!(l, layer_type as text),
            Column::new("phase".into(), phase),
            column!(l, layers),
            column!(l, kernels),
            column!(l, gpu_ns),
            column!(l, share_pct),
        ]
    }

    pub(super) fn step_columns(s: &[StepRecord]) -> Vec<Column> {
        vec![
            column!(s, profile as text),
            column!(s, step),
            column!(s, phase as text),
            column!(s, range as text),
            column!(s, filter_index),
            column!(s, start_ns),
            column!(s, duration_ns),
            column!(s, gpu_ns),
            column!(s, kernels),
            column!(s, tokens),
            column!(s, vs_phase_median),
            column!(s, gpu_start_ns),
            column!(s, gpu_end_ns),
            column!(s, gpu_busy_ns),
            column!(s, gpu_busy_pct),
            column!(s, api_calls),
            column!(s, api_ns),
        ]
    }

    pub(super) fn category_columns(c: &[CategoryRecord]) -> Vec<Column> {
        vec![
            column!(c, profile as text),
            column!(c, phase as text),
            column!(c, category as text),
            column!(c, gpu_ns),
            column!(c, share_of_phase_pct),
            column!(c, instances),
            column!(c, kernel_names),
        ]
    }

    pub(super) fn communication_columns(c: &[CommunicationRecord]) -> Vec<Column> {
        vec![
            column!(c, profile as text),
            column!(c, device),
            column!(c, kernels),
            column!(c, gpu_ns),
            column!(c, busy_ns),
            column!(c, overlapped_ns),
            column!(c, overlapped_pct),
            column!(c, exposed_ns),
        ]
    }
}

/// `DIR/NAME.parquet` from its columns.
#[cfg(feature = "parquet")]
fn write_parquet_table(
    dir: &std::path::Path,
    name: &str,
    columns: Vec<polars::prelude::Column>,
) -> anyhow::Result<()> {
    use polars::prelude::*;
    let path = dir.join(format!("{name}.parquet"));
    let mut df =
        DataFrame::new_infer_height(columns).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let file =
        std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// Without the `parquet` feature: say how to get it.
#[cfg(not(feature = "parquet"))]
pub fn write_parquet(dir: &std::path::Path, _t: &ExportTables) -> anyhow::Result<()> {
    anyhow::bail!(
        "{}: this build has no Parquet support; rebuild with `cargo build --release --features parquet`",
        dir.display()
    )
}
