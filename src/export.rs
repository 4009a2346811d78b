//! Per-profile tables for fleets: kernels, NVTX ranges, phases and layers,
//! each row carrying its profile id, ready to be written as a Parquet
//! dataset (feature `parquet`) and queried with Spark, DuckDB or Polars.
//! The rows are plain structs so a folder run keeps only these, never the
//! digests.

use crate::nsys::Digest;
use serde::Serialize;

/// The polars the Parquet files were written with, for readers and tests.
#[cfg(feature = "parquet")]
pub use polars;

#[derive(Debug, Clone, Serialize)]
pub struct KernelRecord {
    pub profile: String,
    pub name: String,
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

/// The four tables of one or many profiles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportTables {
    pub kernels: Vec<KernelRecord>,
    pub nvtx: Vec<NvtxRecord>,
    pub phases: Vec<PhaseRecord>,
    pub layers: Vec<LayerRecord>,
}

impl ExportTables {
    /// The rows of one digest, tagged with `profile`.
    pub fn from_digest(d: &Digest) -> ExportTables {
        let profile = d.source.file.clone();
        ExportTables {
            kernels: d
                .kernels
                .iter()
                .map(|k| KernelRecord {
                    profile: profile.clone(),
                    name: k.name.clone(),
                    instances: k.time.count as i64,
                    total_ns: k.time.total_ns,
                    avg_ns: k.time.avg_ns,
                    median_ns: k.time.median_ns,
                    min_ns: k.time.min_ns,
                    max_ns: k.time.max_ns,
                    stddev_ns: k.time.stddev_ns,
                    share_pct: k.share_pct,
                })
                .collect(),
            nvtx: d
                .nvtx
                .iter()
                .map(|r| NvtxRecord {
                    profile: profile.clone(),
                    range: r.range.clone(),
                    style: r.style.as_str().to_string(),
                    instances: r.time.count as i64,
                    total_ns: r.time.total_ns,
                    median_ns: r.time.median_ns,
                    proj_total_ns: r.gpu.as_ref().map(|g| g.time.total_ns),
                    gpu_ops: r.gpu.as_ref().map(|g| g.gpu_ops as i64),
                })
                .collect(),
            phases: d
                .llm
                .phases
                .phases
                .iter()
                .map(|p| PhaseRecord {
                    profile: profile.clone(),
                    phase: p.phase.as_str().to_string(),
                    steps: p.steps as i64,
                    gpu_ns: p.gpu_ns,
                    tokens: p.tokens.map(|t| t as i64),
                    gpu_ns_per_token: p.gpu_ns_per_token,
                    step_median_ns: p.step_median_ns,
                    step_p90_ns: p.step_p90_ns,
                })
                .collect(),
            layers: d
                .llm
                .layers
                .types
                .iter()
                .map(|l| LayerRecord {
                    profile: profile.clone(),
                    layer_type: l.layer_type.clone(),
                    phase: l.phase.map(|p| p.as_str().to_string()),
                    layers: l.layers as i64,
                    kernels: l.kernels as i64,
                    gpu_ns: l.gpu_ns,
                    share_pct: l.share_pct,
                })
                .collect(),
        }
    }

    pub fn extend(&mut self, other: ExportTables) {
        self.kernels.extend(other.kernels);
        self.nvtx.extend(other.nvtx);
        self.phases.extend(other.phases);
        self.layers.extend(other.layers);
    }
}

/// Write `kernels.parquet`, `nvtx.parquet`, `phases.parquet` and
/// `layers.parquet` into `dir`.
#[cfg(feature = "parquet")]
pub fn write_parquet(dir: &std::path::Path, t: &ExportTables) -> anyhow::Result<()> {
    use polars::prelude::*;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    fn text<'a, R>(rows: &'a [R], f: impl Fn(&'a R) -> &'a str) -> Vec<&'a str> {
        rows.iter().map(f).collect()
    }
    let write = |name: &str, columns: Vec<Column>| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.parquet"));
        let mut df =
            DataFrame::new_infer_height(columns).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let file =
            std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        ParquetWriter::new(file)
            .finish(&mut df)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(())
    };
    let k = &t.kernels;
    write(
        "kernels",
        vec![
            Column::new("profile".into(), text(k, |r| &r.profile)),
            Column::new("name".into(), text(k, |r| &r.name)),
            Column::new(
                "instances".into(),
                k.iter().map(|r| r.instances).collect::<Vec<_>>(),
            ),
            Column::new(
                "total_ns".into(),
                k.iter().map(|r| r.total_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "avg_ns".into(),
                k.iter().map(|r| r.avg_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "median_ns".into(),
                k.iter().map(|r| r.median_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "min_ns".into(),
                k.iter().map(|r| r.min_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "max_ns".into(),
                k.iter().map(|r| r.max_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "stddev_ns".into(),
                k.iter().map(|r| r.stddev_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "share_pct".into(),
                k.iter().map(|r| r.share_pct).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let n = &t.nvtx;
    write(
        "nvtx",
        vec![
            Column::new("profile".into(), text(n, |r| &r.profile)),
            Column::new("range".into(), text(n, |r| &r.range)),
            Column::new("style".into(), text(n, |r| &r.style)),
            Column::new(
                "instances".into(),
                n.iter().map(|r| r.instances).collect::<Vec<_>>(),
            ),
            Column::new(
                "total_ns".into(),
                n.iter().map(|r| r.total_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "median_ns".into(),
                n.iter().map(|r| r.median_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "proj_total_ns".into(),
                n.iter().map(|r| r.proj_total_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "gpu_ops".into(),
                n.iter().map(|r| r.gpu_ops).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let p = &t.phases;
    write(
        "phases",
        vec![
            Column::new("profile".into(), text(p, |r| &r.profile)),
            Column::new("phase".into(), text(p, |r| &r.phase)),
            Column::new(
                "steps".into(),
                p.iter().map(|r| r.steps).collect::<Vec<_>>(),
            ),
            Column::new(
                "gpu_ns".into(),
                p.iter().map(|r| r.gpu_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "tokens".into(),
                p.iter().map(|r| r.tokens).collect::<Vec<_>>(),
            ),
            Column::new(
                "gpu_ns_per_token".into(),
                p.iter().map(|r| r.gpu_ns_per_token).collect::<Vec<_>>(),
            ),
            Column::new(
                "step_median_ns".into(),
                p.iter().map(|r| r.step_median_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "step_p90_ns".into(),
                p.iter().map(|r| r.step_p90_ns).collect::<Vec<_>>(),
            ),
        ],
    )?;
    let l = &t.layers;
    write(
        "layers",
        vec![
            Column::new("profile".into(), text(l, |r| &r.profile)),
            Column::new("layer_type".into(), text(l, |r| &r.layer_type)),
            Column::new(
                "phase".into(),
                l.iter().map(|r| r.phase.as_deref()).collect::<Vec<_>>(),
            ),
            Column::new(
                "layers".into(),
                l.iter().map(|r| r.layers).collect::<Vec<_>>(),
            ),
            Column::new(
                "kernels".into(),
                l.iter().map(|r| r.kernels).collect::<Vec<_>>(),
            ),
            Column::new(
                "gpu_ns".into(),
                l.iter().map(|r| r.gpu_ns).collect::<Vec<_>>(),
            ),
            Column::new(
                "share_pct".into(),
                l.iter().map(|r| r.share_pct).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Without the `parquet` feature: say how to get it.
#[cfg(not(feature = "parquet"))]
pub fn write_parquet(dir: &std::path::Path, _t: &ExportTables) -> anyhow::Result<()> {
    anyhow::bail!(
        "{}: this build has no Parquet support; rebuild with `cargo build --release --features parquet`",
        dir.display()
    )
}
