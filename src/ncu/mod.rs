//! ncu-digest: per-kernel DRAM traffic, bandwidth, % of peak, load/store
//! efficiency and a bound-ness verdict from Nsight Compute CSV exports.
//! [`digest`] reads one file, filters launches by kernel and NVTX, derives
//! per-launch metrics and aggregates them per kernel, NVTX range or both.

pub mod compare;
pub mod derive;
pub mod metric_names;
pub mod reader;
pub mod units;
pub mod view;

use crate::categories::Categories;
use crate::error::{DigestError, Result};
use derive::{derive, missing_notes, verdict, Bound, LaunchMetrics, PeakOptions};
use reader::{read, Page, ReadOptions};
use regex::{Regex, RegexBuilder};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// How launches are grouped in the aggregated view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    #[default]
    Kernel,
    Nvtx,
    #[value(name = "kernel+nvtx")]
    #[serde(rename = "kernel+nvtx")]
    KernelNvtx,
}

/// `--kernel` / `--nvtx` patterns: a case-insensitive substring,
/// `regex:...` as in ncu's own flags, or (for kernels) a category name.
#[derive(Debug, Clone)]
pub enum NameFilter {
    Substring(String),
    Regex(Regex),
    Category(String),
}

impl NameFilter {
    /// Parse a pattern; `categories` decides whether a bare word is a category.
    pub fn parse(
        pattern: &str,
        categories: Option<&Categories>,
    ) -> std::result::Result<NameFilter, regex::Error> {
        if let Some(re) = pattern.strip_prefix("regex:") {
            return RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map(NameFilter::Regex);
        }
        if let Some(c) = categories.and_then(|c| c.canonical(pattern)) {
            return Ok(NameFilter::Category(c));
        }
        Ok(NameFilter::Substring(pattern.to_lowercase()))
    }

    fn matches(&self, text: &str, categories: &Categories) -> bool {
        match self {
            NameFilter::Substring(s) => text.to_lowercase().contains(s),
            NameFilter::Regex(re) => re.is_match(text),
            NameFilter::Category(c) => categories.classify(text) == c,
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct NcuOptions {
    pub read: ReadOptions,
    pub peak: PeakOptions,
    pub kernel: Option<NameFilter>,
    pub nvtx: Option<NameFilter>,
    pub group: Group,
    pub categories: Categories,
}

/// Facts about the file.
#[derive(Debug, Clone, Serialize)]
pub struct NcuSource {
    pub file: String,
    pub page: Page,
    pub launches_read: u64,
    pub launches_selected: u64,
    /// Values came in auto-scaled units, rounded by ncu to 2 decimals.
    pub auto_scaled_units: bool,
    pub gpu: Option<String>,
    pub skipped_rows: u64,
}

/// One aggregated row.
#[derive(Debug, Clone, Serialize)]
pub struct KernelAggregate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvtx: Option<String>,
    pub category: Option<String>,
    pub launches: u64,
    pub duration_ns: Option<f64>,
    pub dram_read_bytes: Option<f64>,
    pub dram_write_bytes: Option<f64>,
    pub dram_bytes: Option<f64>,
    /// Total bytes over total duration (the duration-weighted bandwidth).
    pub dram_bandwidth_bytes_per_s: Option<f64>,
    /// Duration-weighted means over launches, with min and max.
    pub dram_peak_pct: Option<f64>,
    pub dram_peak_pct_min: Option<f64>,
    pub dram_peak_pct_max: Option<f64>,
    pub memory_peak_pct: Option<f64>,
    pub sm_peak_pct: Option<f64>,
    pub ld_efficiency_pct: Option<f64>,
    pub st_efficiency_pct: Option<f64>,
    pub l1_hit_pct: Option<f64>,
    pub l2_hit_pct: Option<f64>,
    pub occupancy_pct: Option<f64>,
    pub bound: Option<Bound>,
}

/// The digest of one ncu CSV.
#[derive(Debug, Clone, Serialize)]
pub struct NcuDigest {
    pub source: NcuSource,
    pub group: Group,
    /// Aggregated rows, by total duration.
    pub kernels: Vec<KernelAggregate>,
    /// Per-launch rows, in profiling order.
    pub launches: Vec<LaunchMetrics>,
    /// What was absent and which ncu flags would collect it.
    pub notes: Vec<String>,
    /// The verdict rule, as printed in the legend.
    pub rule: String,
}

/// The legend line for the verdict.
pub fn rule_text() -> String {
    format!(
        "bound: from Speed Of Light %: memory = max(DRAM %, memory %), compute = SM %; both < {:.0} % → latency; within {:.0} points → balanced; else the larger",
        derive::LATENCY_BELOW_PCT,
        derive::BALANCED_WITHIN_PCT
    )
}

/// Read and digest one ncu CSV file.
pub fn digest(path: &Path, opts: &NcuOptions) -> Result<NcuDigest> {
    let file = read(path, &opts.read)?;
    if file.launches.is_empty() {
        return Err(DigestError::BadCsv {
            path: path.to_path_buf(),
            reason: "the header is there but no launch rows follow".into(),
        });
    }
    let read_count = file.launches.len() as u64;
    let gpu = file.launches.iter().find_map(|l| l.gpu_name.clone());
    let mut selected: Vec<LaunchMetrics> = file
        .launches
        .iter()
        .filter(|l| {
            opts.kernel
                .as_ref()
                .is_none_or(|f| f.matches(&l.kernel, &opts.categories))
        })
        .filter(|l| {
            opts.nvtx.as_ref().is_none_or(|f| {
                l.nvtx
                    .iter()
                    .chain(&l.nvtx_start_end)
                    .any(|r| f.matches(r, &opts.categories))
            })
        })
        .map(|l| derive(l, &opts.peak))
        .collect();
    derive::share_derived_peak(&mut selected);
    Ok(NcuDigest {
        source: NcuSource {
            file: path.display().to_string(),
            page: file.page,
            launches_read: read_count,
            launches_selected: selected.len() as u64,
            auto_scaled_units: file.auto_scaled,
            gpu,
            skipped_rows: file.skipped_rows,
        },
        group: opts.group,
        kernels: aggregate(&selected, opts.group, &opts.categories),
        notes: missing_notes(&selected),
        launches: selected,
        rule: rule_text(),
    })
}

/// The NVTX key of a launch: its push/pop stack, outermost first.
pub fn nvtx_key(l: &LaunchMetrics) -> String {
    if l.nvtx.is_empty() {
        "(no range)".to_string()
    } else {
        l.nvtx.join(" > ")
    }
}

fn aggregate(
    rows: &[LaunchMetrics],
    group: Group,
    categories: &Categories,
) -> Vec<KernelAggregate> {
    let mut groups: HashMap<(Option<String>, Option<String>), Vec<&LaunchMetrics>> = HashMap::new();
    let mut order = Vec::new();
    for r in rows {
        let key = match group {
            Group::Kernel => (Some(r.kernel.clone()), None),
            Group::Nvtx => (None, Some(nvtx_key(r))),
            Group::KernelNvtx => (Some(r.kernel.clone()), Some(nvtx_key(r))),
        };
        let slot = groups.entry(key.clone()).or_default();
        if slot.is_empty() {
            order.push(key);
        }
        slot.push(r);
    }
    let mut out: Vec<KernelAggregate> = order
        .into_iter()
        .map(|key| {
            let members = &groups[&key];
            summarise(key.0, key.1, members, categories)
        })
        .collect();
    out.sort_by(|a, b| {
        b.duration_ns
            .unwrap_or(0.0)
            .total_cmp(&a.duration_ns.unwrap_or(0.0))
    });
    out
}

/// Sum of a quantity over the launches that have it; `None` if none has.
fn sum(rows: &[&LaunchMetrics], f: impl Fn(&LaunchMetrics) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// Duration-weighted mean over launches that have both value and duration.
fn weighted(rows: &[&LaunchMetrics], f: impl Fn(&LaunchMetrics) -> Option<f64>) -> Option<f64> {
    let (mut num, mut den) = (0.0, 0.0);
    for r in rows {
        if let (Some(v), Some(d)) = (f(r), r.duration_ns) {
            num += v * d;
            den += d;
        }
    }
    (den > 0.0).then(|| num / den)
}

fn summarise(
    kernel: Option<String>,
    nvtx: Option<String>,
    rows: &[&LaunchMetrics],
    categories: &Categories,
) -> KernelAggregate {
    let dram_bytes = sum(rows, |r| r.dram_bytes);
    // Over launches with both bytes and duration: total bytes / total time.
    let timed_duration = sum(rows, |r| r.dram_bytes.and(r.duration_ns));
    let timed_bytes = sum(rows, |r| r.duration_ns.and(r.dram_bytes));
    let bandwidth = match (timed_bytes, timed_duration) {
        (Some(b), Some(d)) if d > 0.0 => Some(b / (d / 1e9)),
        _ => weighted(rows, |r| r.dram_bandwidth_bytes_per_s),
    };
    let pcts: Vec<f64> = rows.iter().filter_map(|r| r.dram_peak_pct).collect();
    let memory = weighted(rows, |r| r.memory_peak_pct);
    let dram = weighted(rows, |r| r.dram_peak_pct);
    let sm = weighted(rows, |r| r.sm_peak_pct);
    let mem_for_verdict = match (dram, memory) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    KernelAggregate {
        category: kernel
            .as_deref()
            .map(|k| categories.classify(k).to_string()),
        kernel,
        nvtx,
        launches: rows.len() as u64,
        duration_ns: sum(rows, |r| r.duration_ns),
        dram_read_bytes: sum(rows, |r| r.dram_read_bytes),
        dram_write_bytes: sum(rows, |r| r.dram_write_bytes),
        dram_bytes,
        dram_bandwidth_bytes_per_s: bandwidth,
        dram_peak_pct: dram,
        dram_peak_pct_min: pcts.iter().copied().reduce(f64::min),
        dram_peak_pct_max: pcts.iter().copied().reduce(f64::max),
        memory_peak_pct: memory,
        sm_peak_pct: sm,
        ld_efficiency_pct: weighted(rows, |r| r.ld_efficiency_pct),
        st_efficiency_pct: weighted(rows, |r| r.st_efficiency_pct),
        l1_hit_pct: weighted(rows, |r| r.l1_hit_pct),
        l2_hit_pct: weighted(rows, |r| r.l2_hit_pct),
        occupancy_pct: weighted(rows, |r| r.occupancy_pct),
        bound: verdict(mem_for_verdict, sm),
    }
}
