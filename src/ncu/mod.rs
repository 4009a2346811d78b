//! ncu-digest: per-kernel DRAM traffic, bandwidth, % of peak, load/store
//! efficiency and a bound-ness verdict from Nsight Compute CSV exports.
//! [`digest`] reads one file, filters launches by kernel and NVTX, derives
//! per-launch metrics and aggregates them per kernel, NVTX range or both.

pub mod compare;
pub mod derive;
pub mod metric_names;
pub mod reader;
pub mod report_import;
pub mod units;
pub mod view;

use crate::categories::Categories;
use crate::error::{DigestError, Result};
use derive::{
    bound_of, derive, per, Bound, FlopCounts, LaunchMetrics, LoadPaths, PeakOptions, Presence,
};
use reader::{Launch, NcuFile, Page, ReadOptions};
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
#[derive(Debug, Clone)]
pub struct NcuOptions {
    pub read: ReadOptions,
    pub peak: PeakOptions,
    pub kernel: Option<NameFilter>,
    pub nvtx: Option<NameFilter>,
    pub group: Group,
    pub categories: Categories,
    /// Keep per-launch rows (`--per-launch`); otherwise memory stays bounded
    /// by the number of groups.
    pub keep_launches: bool,
}

impl Default for NcuOptions {
    /// Everything, per-launch rows included.
    fn default() -> Self {
        NcuOptions {
            read: ReadOptions::default(),
            peak: PeakOptions::default(),
            kernel: None,
            nvtx: None,
            group: Group::default(),
            categories: Categories::default(),
            keep_launches: true,
        }
    }
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
    /// Some duration is SM elapsed cycles ÷ SM clock: the launch had no
    /// `gpu__time_duration`.
    pub duration_from_cycles: bool,
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
    /// Every path any launch of the group loaded by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_paths: Option<LoadPaths>,
    /// Sums over the launches that have each count.
    #[serde(flatten)]
    pub flops: FlopCounts,
    /// Total FLOPs over the total time, and over the total DRAM bytes, of
    /// the launches that have both.
    pub flop_per_s: Option<f64>,
    pub flop_per_dram_byte: Option<f64>,
    /// Sums over the launches that counted them; FLOPs per L2 byte as per
    /// DRAM byte.
    pub l2_bytes: Option<f64>,
    pub l1_bytes: Option<f64>,
    pub flop_per_l2_byte: Option<f64>,
}

/// The digest of one ncu CSV.
#[derive(Debug, Clone, Serialize)]
pub struct NcuDigest {
    pub source: NcuSource,
    pub group: Group,
    /// Aggregated rows, by total duration.
    pub kernels: Vec<KernelAggregate>,
    /// Every selected launch as one row: the file's line in a folder table.
    /// Summed per launch, so a bandwidth or peak share counts only the
    /// launches that have both the value and a duration, as the rows do.
    pub total: KernelAggregate,
    /// Per-launch rows, in profiling order.
    pub launches: Vec<LaunchMetrics>,
    /// What was absent and which ncu flags would collect it.
    pub notes: Vec<String>,
    /// The verdict rule, as printed in the legend.
    pub rule: String,
    /// Set when the launches were asked for by NVTX range and none has one.
    #[serde(skip)]
    pub nvtx_absent: Option<&'static str>,
}

/// The legend line for the verdict.
pub fn rule_text() -> String {
    format!(
        "bound: from Speed Of Light %: memory = max(DRAM %, memory %), compute = SM %; both < {:.0} % → latency; within {:.0} points → balanced; else the larger; either side absent → —",
        derive::LATENCY_BELOW_PCT,
        derive::BALANCED_WITHIN_PCT
    )
}

/// What to say of a file whose launches carry no NVTX range at all.
const NO_NVTX: &str = "no launch in this file is inside one; ncu records them only with --nvtx";

/// Read and digest one ncu CSV file, streaming: launches are folded into
/// the aggregates as they are read, and kept only with `keep_launches`.
pub fn digest(path: &Path, opts: &NcuOptions) -> Result<NcuDigest> {
    let mut fold = LaunchFold::new(opts);
    let file = reader::stream(path, &opts.read, &mut |l| fold.add(&l, opts))?;
    if file.launch_count == 0 {
        return Err(DigestError::BadCsv {
            path: path.to_path_buf(),
            reason: "the header is there but no launch rows follow".into(),
        });
    }
    Ok(fold.finish(path, file, opts))
}

/// What a digest gathers while the launches stream past.
struct LaunchFold {
    groups: Aggregator,
    total: GroupAcc,
    presence: Presence,
    kept: Vec<LaunchMetrics>,
    gpu: Option<String>,
    selected: u64,
    /// (% of peak, peak) of the launch with the highest % that gave both.
    best_peak: Option<(f64, f64)>,
    any_nvtx: bool,
}

impl LaunchFold {
    fn new(opts: &NcuOptions) -> LaunchFold {
        LaunchFold {
            groups: Aggregator::new(opts.group),
            total: GroupAcc::default(),
            presence: Presence::default(),
            kept: Vec::new(),
            gpu: None,
            selected: 0,
            best_peak: None,
            any_nvtx: false,
        }
    }

    fn add(&mut self, l: &Launch, opts: &NcuOptions) {
        if self.gpu.is_none() {
            self.gpu = l.gpu_name.clone();
        }
        self.any_nvtx |= !l.nvtx.is_empty() || !l.nvtx_start_end.is_empty();
        if !opts.selects(l) {
            return;
        }
        let m = derive(l, &opts.peak);
        self.selected += 1;
        self.presence.note(&m);
        if m.peak_source == Some(derive::PeakSource::ThroughputOverPercent) {
            let pct = m.dram_peak_pct.unwrap_or(0.0);
            if self.best_peak.is_none_or(|(best, _)| pct > best) {
                self.best_peak = m.peak_bandwidth_bytes_per_s.map(|p| (pct, p));
            }
        }
        self.groups.add(&m);
        self.total.add(&m);
        if opts.keep_launches {
            self.kept.push(m);
        }
    }

    fn finish(mut self, path: &Path, file: NcuFile, opts: &NcuOptions) -> NcuDigest {
        derive::share_derived_peak(&mut self.kept);
        let mut notes = self.presence.notes();
        // Asked for by range, in a file without any: say why every launch is
        // "(no range)" or filtered out, instead of an empty table alone.
        let by_range = opts.nvtx.is_some() || opts.group != Group::Kernel;
        let nvtx_absent = (by_range && !self.any_nvtx).then_some(NO_NVTX);
        if let Some(why) = nvtx_absent {
            notes.push(format!("NVTX ranges: {why}"));
        }
        let shared_peak = self.best_peak.map(|b| b.1);
        NcuDigest {
            source: NcuSource {
                file: path.display().to_string(),
                page: file.page,
                launches_read: file.launch_count,
                launches_selected: self.selected,
                auto_scaled_units: file.auto_scaled,
                duration_from_cycles: self.presence.duration_from_cycles(),
                gpu: self.gpu,
                skipped_rows: file.skipped_rows,
            },
            group: opts.group,
            kernels: self.groups.finish(shared_peak, &opts.categories),
            total: self.total.finish(None, None, shared_peak, &opts.categories),
            notes,
            launches: self.kept,
            rule: rule_text(),
            nvtx_absent,
        }
    }
}

impl NcuOptions {
    /// Does this launch pass `--kernel` and `--nvtx`?
    fn selects(&self, l: &Launch) -> bool {
        self.kernel
            .as_ref()
            .is_none_or(|f| f.matches(&l.kernel, &self.categories))
            && self.nvtx.as_ref().is_none_or(|f| {
                l.nvtx
                    .iter()
                    .chain(&l.nvtx_start_end)
                    .any(|r| f.matches(r, &self.categories))
            })
    }
}

/// The NVTX key of a launch: its push/pop stack, outermost first.
pub fn nvtx_key(l: &LaunchMetrics) -> String {
    if l.nvtx.is_empty() {
        "(no range)".to_string()
    } else {
        l.nvtx.join(" > ")
    }
}

/// A sum over the launches that have a value; `None` if none has.
#[derive(Debug, Default, Clone, Copy)]
struct Sum(Option<f64>);

impl Sum {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.0 = Some(self.0.unwrap_or(0.0) + v);
        }
    }
}

/// A duration-weighted mean over launches that have value and duration.
#[derive(Debug, Default, Clone, Copy)]
struct Weighted {
    num: f64,
    den: f64,
}

impl Weighted {
    fn add(&mut self, v: Option<f64>, d: Option<f64>) {
        if let (Some(v), Some(d)) = (v, d) {
            self.num += v * d;
            self.den += d;
        }
    }
    fn get(&self) -> Option<f64> {
        (self.den > 0.0).then(|| self.num / self.den)
    }
}

/// Min and max of a value.
#[derive(Debug, Default, Clone, Copy)]
struct Range(Option<(f64, f64)>);

impl Range {
    fn add(&mut self, v: Option<f64>) {
        if let Some(v) = v {
            self.0 = Some(self.0.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
        }
    }
}

/// One group's running totals.
#[derive(Debug, Default)]
struct GroupAcc {
    launches: u64,
    duration: Sum,
    read: Sum,
    write: Sum,
    bytes: Sum,
    /// Total bytes over total time, of the launches that have both.
    timed_bytes: SumRatio,
    bandwidth: Weighted,
    dram: Weighted,
    dram_range: Range,
    /// Launches with a bandwidth but no peak yet: converted once the file's
    /// shared peak is known.
    pending_bw: Weighted,
    pending_range: Range,
    memory: Weighted,
    sm: Weighted,
    ld: Weighted,
    st: Weighted,
    l1: Weighted,
    l2: Weighted,
    occupancy: Weighted,
    load_paths: Option<LoadPaths>,
    flops: FlopSums,
    l2_bytes: Sum,
    l1_bytes: Sum,
}

/// A sum of numerators over a sum of denominators, both taken over the
/// launches that have the two.
#[derive(Debug, Default)]
struct SumRatio(Sum, Sum);

impl SumRatio {
    fn add(&mut self, numerator: Option<f64>, denominator: Option<f64>) {
        self.0.add(denominator.and(numerator));
        self.1.add(numerator.and(denominator));
    }

    fn get(&self) -> Option<f64> {
        per(self.0 .0, self.1 .0)
    }

    /// Per second, where the denominators are nanoseconds.
    fn per_s(&self) -> Option<f64> {
        per(self.0 .0, self.1 .0.map(|ns| ns / 1e9))
    }
}

/// A group's FLOP counts, and the time and bytes they were done in.
#[derive(Debug, Default)]
struct FlopSums {
    cuda_core: Sum,
    tensor: Sum,
    flops: Sum,
    per_ns: SumRatio,
    per_dram_byte: SumRatio,
    per_l2_byte: SumRatio,
}

impl FlopSums {
    fn add(&mut self, m: &LaunchMetrics) {
        let f = m.flops.flops;
        self.cuda_core.add(m.flops.cuda_core_flops);
        self.tensor.add(m.flops.tensor_flops);
        self.flops.add(f);
        self.per_ns.add(f, m.duration_ns);
        self.per_dram_byte.add(f, m.dram_bytes);
        self.per_l2_byte.add(f, m.l2_bytes);
    }

    fn counts(&self) -> FlopCounts {
        FlopCounts {
            cuda_core_flops: self.cuda_core.0,
            tensor_flops: self.tensor.0,
            flops: self.flops.0,
        }
    }
}

impl GroupAcc {
    fn add(&mut self, m: &LaunchMetrics) {
        let d = m.duration_ns;
        self.launches += 1;
        self.duration.add(d);
        self.read.add(m.dram_read_bytes);
        self.write.add(m.dram_write_bytes);
        self.bytes.add(m.dram_bytes);
        self.timed_bytes.add(m.dram_bytes, d);
        self.bandwidth.add(m.dram_bandwidth_bytes_per_s, d);
        if m.dram_peak_pct.is_some() {
            self.dram.add(m.dram_peak_pct, d);
            self.dram_range.add(m.dram_peak_pct);
        } else {
            self.pending_bw.add(m.dram_bandwidth_bytes_per_s, d);
            self.pending_range.add(m.dram_bandwidth_bytes_per_s);
        }
        self.memory.add(m.memory_peak_pct, d);
        self.sm.add(m.sm_peak_pct, d);
        self.ld
            .add(derive::efficiency_for_mean(m.ld_efficiency_pct), d);
        self.st
            .add(derive::efficiency_for_mean(m.st_efficiency_pct), d);
        self.l1.add(m.l1_hit_pct, d);
        self.l2.add(m.l2_hit_pct, d);
        self.occupancy.add(m.occupancy_pct, d);
        if let Some(p) = m.load_paths {
            self.load_paths = Some(self.load_paths.unwrap_or_default().union(p));
        }
        self.flops.add(m);
        self.l2_bytes.add(m.l2_bytes);
        self.l1_bytes.add(m.l1_bytes);
    }

    /// The launches that had a bandwidth but no peak, as % of `peak`.
    fn add_pending(&mut self, peak: f64) {
        let pct = |bw: f64| 100.0 * bw / peak;
        self.dram.num += self.pending_bw.num * 100.0 / peak;
        self.dram.den += self.pending_bw.den;
        if let Some((lo, hi)) = self.pending_range.0 {
            self.dram_range.add(Some(pct(lo)));
            self.dram_range.add(Some(pct(hi)));
        }
    }

    /// Total bytes over total time where the launches give both, else
    /// ncu's own bandwidths weighted by duration.
    fn bandwidth(&self) -> Option<f64> {
        self.timed_bytes.per_s().or_else(|| self.bandwidth.get())
    }

    fn finish(
        mut self,
        kernel: Option<String>,
        nvtx: Option<String>,
        shared_peak: Option<f64>,
        categories: &Categories,
    ) -> KernelAggregate {
        if let Some(peak) = shared_peak {
            self.add_pending(peak);
        }
        let bandwidth = self.bandwidth();
        let (dram, memory, sm) = (self.dram.get(), self.memory.get(), self.sm.get());
        KernelAggregate {
            category: kernel
                .as_deref()
                .map(|k| categories.classify(k).to_string()),
            kernel,
            nvtx,
            launches: self.launches,
            duration_ns: self.duration.0,
            dram_read_bytes: self.read.0,
            dram_write_bytes: self.write.0,
            dram_bytes: self.bytes.0,
            dram_bandwidth_bytes_per_s: bandwidth,
            dram_peak_pct: dram,
            dram_peak_pct_min: self.dram_range.0.map(|r| r.0),
            dram_peak_pct_max: self.dram_range.0.map(|r| r.1),
            memory_peak_pct: memory,
            sm_peak_pct: sm,
            ld_efficiency_pct: self.ld.get(),
            st_efficiency_pct: self.st.get(),
            l1_hit_pct: self.l1.get(),
            l2_hit_pct: self.l2.get(),
            occupancy_pct: self.occupancy.get(),
            bound: bound_of(dram, memory, sm),
            load_paths: self.load_paths,
            flops: self.flops.counts(),
            flop_per_s: self.flops.per_ns.per_s(),
            flop_per_dram_byte: self.flops.per_dram_byte.get(),
            l2_bytes: self.l2_bytes.0,
            l1_bytes: self.l1_bytes.0,
            flop_per_l2_byte: self.flops.per_l2_byte.get(),
        }
    }
}

type GroupKey = (Option<String>, Option<String>);

/// Running totals per group, in order of first appearance.
struct Aggregator {
    group: Group,
    index: HashMap<GroupKey, usize>,
    groups: Vec<(GroupKey, GroupAcc)>,
}

impl Aggregator {
    fn new(group: Group) -> Aggregator {
        Aggregator {
            group,
            index: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn add(&mut self, m: &LaunchMetrics) {
        let key = match self.group {
            Group::Kernel => (Some(m.kernel.clone()), None),
            Group::Nvtx => (None, Some(nvtx_key(m))),
            Group::KernelNvtx => (Some(m.kernel.clone()), Some(nvtx_key(m))),
        };
        let slot = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.index.insert(key.clone(), self.groups.len());
                self.groups.push((key, GroupAcc::default()));
                self.groups.len() - 1
            }
        };
        self.groups[slot].1.add(m);
    }

    /// Aggregated rows, ranked by total duration.
    fn finish(self, shared_peak: Option<f64>, categories: &Categories) -> Vec<KernelAggregate> {
        let mut out: Vec<KernelAggregate> = self
            .groups
            .into_iter()
            .map(|((kernel, nvtx), acc)| acc.finish(kernel, nvtx, shared_peak, categories))
            .collect();
        out.sort_by(|a, b| {
            b.duration_ns
                .unwrap_or(0.0)
                .total_cmp(&a.duration_ns.unwrap_or(0.0))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SumRatio;

    /// Hand-made, as no real capture has a launch with FLOPs but no
    /// duration or bytes: such a launch counts on neither side.
    #[test]
    fn sum_ratio_takes_only_launches_with_both() {
        let mut r = SumRatio::default();
        r.add(Some(10.0), Some(2.0));
        r.add(Some(100.0), None);
        r.add(None, Some(50.0));
        assert_eq!(r.get(), Some(5.0));
        assert_eq!(SumRatio::default().get(), None);
    }
}
