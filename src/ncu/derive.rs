//! Per-launch quantities in base units, taken from ncu's metrics when
//! present and derived only where the derivation is exact enough to trust:
//! total DRAM bytes from read + write (or rate × duration), bandwidth from
//! bytes ÷ duration, load/store efficiency from its two parts, and the peak
//! bandwidth from, in order, `--peak-bandwidth`, the DRAM roof ncu itself
//! uses (`dram__bytes.sum.peak_sustained` × DRAM clock), the device
//! attributes (2 × memory clock × bus width), the Memory Workload Analysis
//! rate ÷ the Speed Of Light DRAM %, and last a named table of GPU datasheet
//! peaks. An absent value stays absent. Which paths a launch loaded global
//! memory by comes from its instruction and TMA byte counts. FLOPs come
//! from counts only, and a total only where both CUDA-core and tensor-core
//! work were counted; they are set against the DRAM and L2 bytes.

use super::metric_names as m;
use super::reader::Launch;
use serde::Serialize;

/// Datasheet DRAM bandwidth in byte/s, matched by a case-insensitive
/// substring of the GPU name (most specific first).
pub const GPU_PEAKS: &[(&str, f64)] = &[
    ("GH200", 4.0e12),
    ("H200", 4.8e12),
    ("H100 NVL", 3.9e12),
    ("H100 PCIe", 2.0e12),
    ("H100", 3.35e12),
    ("B200", 8.0e12),
    ("A100 80GB PCIe", 1.935e12),
    ("A100-SXM4-80GB", 2.039e12),
    ("A100 80GB", 2.039e12),
    ("A100", 1.555e12),
    ("L40S", 0.864e12),
    ("L4", 0.3e12),
    ("V100", 0.9e12),
];

/// Look a GPU up in [`GPU_PEAKS`].
pub fn table_peak(gpu: &str) -> Option<f64> {
    let lower = gpu.to_ascii_lowercase();
    GPU_PEAKS
        .iter()
        .find(|(name, _)| lower.contains(&name.to_ascii_lowercase()))
        .map(|(_, p)| *p)
}

/// Smallest DRAM % from which rate ÷ % gives a peak to within 0.5 %.
pub const MIN_PCT_FOR_PEAK: f64 = 1.0;

/// Where a peak bandwidth came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakSource {
    Override,
    DramRoof,
    DeviceAttributes,
    ThroughputOverPercent,
    GpuTable,
}

/// What the user knows about peaks.
#[derive(Debug, Clone, Default)]
pub struct PeakOptions {
    /// `--peak-bandwidth`, byte/s.
    pub bandwidth: Option<f64>,
    /// `--gpu NAME` for the table lookup when the file names no GPU.
    pub gpu: Option<String>,
}

/// Memory-, compute-, latency-bound or balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Memory,
    Compute,
    Latency,
    Balanced,
}

impl Bound {
    pub fn as_str(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
            Bound::Latency => "latency",
            Bound::Balanced => "balanced",
        }
    }
}

/// Below this share of peak on both memory and SM, nothing is saturated.
pub const LATENCY_BELOW_PCT: f64 = 30.0;
/// Memory and SM within this many points of each other are balanced.
pub const BALANCED_WITHIN_PCT: f64 = 10.0;

/// The verdict rule, from Speed Of Light percentages: memory = the larger
/// of DRAM % and memory %, compute = SM %. Both under 30 % → latency; within
/// 10 points → balanced; otherwise the larger one. Either side absent → no
/// verdict: one side alone cannot tell, e.g. an FMA loop at 31 % of DRAM
/// peak, whose SM % was not collected, is no memory-bound kernel.
pub fn verdict(memory_pct: Option<f64>, sm_pct: Option<f64>) -> Option<Bound> {
    let (mem, sm) = (memory_pct?, sm_pct?);
    Some(if mem.max(sm) < LATENCY_BELOW_PCT {
        Bound::Latency
    } else if (mem - sm).abs() < BALANCED_WITHIN_PCT {
        Bound::Balanced
    } else if mem > sm {
        Bound::Memory
    } else {
        Bound::Compute
    })
}

/// The verdict from DRAM %, memory % and SM %: the memory side is the
/// larger of the first two that the launch (or group) has.
pub fn bound_of(
    dram_pct: Option<f64>,
    memory_pct: Option<f64>,
    sm_pct: Option<f64>,
) -> Option<Bound> {
    let memory = match (dram_pct, memory_pct) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    verdict(memory, sm_pct)
}

/// Which paths a launch loaded global memory by: LDG instructions through
/// the LSU, LDGSTS (cp.async) instructions, or the TMA. Load efficiency
/// measures the LSU path only, so a kernel that loads by the other two has
/// none; this says why, and which copy engine the kernel relies on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadPaths {
    pub lsu: bool,
    pub cp_async: bool,
    pub tma: bool,
}

impl LoadPaths {
    /// From the launch's counts; unknown unless all three were collected,
    /// since a path whose count is missing may have been used.
    fn of(l: &Launch) -> Option<LoadPaths> {
        let used = |k| l.values.get(k).map(|v: &f64| *v > 0.0);
        Some(LoadPaths {
            lsu: used(m::GLOBAL_LD_INST)?,
            cp_async: used(m::LDGSTS_INST)?,
            tma: used(m::TMA_LD_BYTES)?,
        })
    }

    /// The paths any of two sets of launches used.
    pub fn union(self, other: LoadPaths) -> LoadPaths {
        LoadPaths {
            lsu: self.lsu || other.lsu,
            cp_async: self.cp_async || other.cp_async,
            tma: self.tma || other.tma,
        }
    }

    /// The paths used, by the names ncu's documentation gives them.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.lsu, "LSU"),
            (self.cp_async, "cp.async"),
            (self.tma, "TMA"),
        ]
        .into_iter()
        .filter_map(|(used, name)| used.then_some(name))
        .collect()
    }

    /// "LSU+TMA", or "none" for a launch that loaded nothing from global memory.
    pub fn label(self) -> String {
        match self.names() {
            names if names.is_empty() => "none".into(),
            names => names.join("+"),
        }
    }
}

impl Serialize for LoadPaths {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// Everything ncu-digest reports for one launch, in base units.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchMetrics {
    pub id: u64,
    pub kernel: String,
    pub nvtx: Vec<String>,
    pub grid: Option<String>,
    pub block: Option<String>,
    pub duration_ns: Option<f64>,
    /// True when `duration_ns` is SM elapsed cycles ÷ SM clock rather than
    /// `gpu__time_duration`.
    pub duration_from_cycles: bool,
    pub dram_read_bytes: Option<f64>,
    pub dram_write_bytes: Option<f64>,
    pub dram_bytes: Option<f64>,
    /// True when `dram_bytes` is bandwidth × duration rather than counted.
    pub dram_bytes_derived: bool,
    pub dram_bandwidth_bytes_per_s: Option<f64>,
    pub peak_bandwidth_bytes_per_s: Option<f64>,
    pub peak_source: Option<PeakSource>,
    pub dram_peak_pct: Option<f64>,
    pub memory_peak_pct: Option<f64>,
    pub sm_peak_pct: Option<f64>,
    pub ld_efficiency_pct: Option<f64>,
    pub st_efficiency_pct: Option<f64>,
    pub l1_hit_pct: Option<f64>,
    pub l2_hit_pct: Option<f64>,
    pub occupancy_pct: Option<f64>,
    pub bound: Option<Bound>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_paths: Option<LoadPaths>,
    #[serde(flatten)]
    pub flops: FlopCounts,
    /// FLOPs ÷ duration, and FLOPs per DRAM byte (arithmetic intensity).
    pub flop_per_s: Option<f64>,
    pub flop_per_dram_byte: Option<f64>,
    /// Bytes requested of L2 and of L1/TEX. FLOPs are set against the L2
    /// bytes only: kernels that load through the TMA (Hopper GEMMs and
    /// flash attention) count almost no L1/TEX bytes.
    pub l2_bytes: Option<f64>,
    pub l1_bytes: Option<f64>,
    pub flop_per_l2_byte: Option<f64>,
}

/// What a launch computed, from counts only: CUDA-core instructions as
/// ncu's roofline weighs them, and tensor-core operations. Each part is
/// known only where the capture counted all of it; the total only where
/// both are known, since either can be most of a kernel's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FlopCounts {
    pub cuda_core_flops: Option<f64>,
    pub tensor_flops: Option<f64>,
    pub flops: Option<f64>,
}

impl FlopCounts {
    fn of(l: &Launch) -> FlopCounts {
        let v = |k| l.values.get(k).copied();
        let cuda_core = m::CUDA_CORE_FLOP_INST
            .iter()
            .map(|&(k, weight)| v(k).map(|n| n * weight))
            .sum::<Option<f64>>();
        let tensor = m::TENSOR_FLOP_OPS
            .iter()
            .map(|&k| v(k))
            .sum::<Option<f64>>();
        FlopCounts {
            cuda_core_flops: cuda_core,
            tensor_flops: tensor,
            flops: cuda_core.zip(tensor).map(|(c, t)| c + t),
        }
    }
}

/// `numerator` per unit of `denominator`, where both are known and the
/// denominator is not 0.
pub(crate) fn per(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    numerator
        .zip(denominator)
        .filter(|(_, d)| *d > 0.0)
        .map(|(n, d)| n / d)
}

fn peak(l: &Launch, opts: &PeakOptions) -> Option<(f64, PeakSource)> {
    let v = |k| l.values.get(k).copied().filter(|x: &f64| *x > 0.0);
    if let Some(p) = opts.bandwidth {
        return Some((p, PeakSource::Override));
    }
    if let (Some(per_cycle), Some(clock)) = (v(m::DRAM_PEAK_PER_CYCLE), v(m::DRAM_CLOCK)) {
        return Some((per_cycle * clock, PeakSource::DramRoof));
    }
    let khz = v(m::MEM_CLOCK_KHZ).or_else(|| v(m::MEM_CLOCK_RATE_KHZ));
    if let (Some(khz), Some(bits)) = (khz, v(m::BUS_WIDTH_BITS)) {
        return Some((2.0 * khz * 1e3 * bits / 8.0, PeakSource::DeviceAttributes));
    }
    // ncu prints % with two decimals: below 1 % the quotient is too coarse.
    if let (Some(rate), Some(pct)) = (
        v(m::DRAM_BANDWIDTH),
        v(m::DRAM_PCT).filter(|p| *p >= MIN_PCT_FOR_PEAK),
    ) {
        return Some((rate / (pct / 100.0), PeakSource::ThroughputOverPercent));
    }
    let name = opts.gpu.as_deref().or(l.gpu_name.as_deref())?;
    table_peak(name).map(|p| (p, PeakSource::GpuTable))
}

/// A load or store efficiency: ncu's % where collected, else the ratio it
/// is defined as, bytes used per sector over the most a sector holds, which
/// `--set full` collects without the %.
fn efficiency(l: &Launch, pct: &str, per_sector: &str, per_sector_max: &str) -> Option<f64> {
    let v = |k| l.values.get(k).copied();
    v(pct).or_else(|| {
        let (used, max) = (v(per_sector)?, v(per_sector_max)?);
        (max > 0.0).then(|| 100.0 * used / max)
    })
}

/// The launch's duration in ns, and whether it came from SM cycles ÷ SM
/// clock: ncu computes that rate as cycles ÷ `gpu__time_duration`, so the
/// quotient gives the duration back (within 0.0002 % on the committed
/// `--set full` raw page, which has all three).
fn duration(l: &Launch) -> (Option<f64>, bool) {
    let v = |k| l.values.get(k).copied();
    if let Some(d) = v(m::DURATION) {
        return (Some(d), false);
    }
    let from_cycles = v(m::SM_CYCLES)
        .zip(v(m::SM_CLOCK).filter(|hz| *hz > 0.0))
        .map(|(cycles, hz)| cycles / hz * 1e9);
    (from_cycles, from_cycles.is_some())
}

/// Derive one launch's metrics.
pub fn derive(l: &Launch, opts: &PeakOptions) -> LaunchMetrics {
    let v = |k| l.values.get(k).copied();
    let (duration, duration_from_cycles) = duration(l);
    let (read, write) = (v(m::DRAM_READ), v(m::DRAM_WRITE));
    let counted = v(m::DRAM_BYTES).or(read.zip(write).map(|(r, w)| r + w));
    let rate = v(m::DRAM_BANDWIDTH);
    let derived_bytes = rate.zip(duration).map(|(r, d)| r * d / 1e9);
    let bandwidth = rate.or_else(|| {
        counted
            .zip(duration)
            .filter(|(_, d)| *d > 0.0)
            .map(|(b, d)| b / (d / 1e9))
    });
    let peak = peak(l, opts);
    let dram_pct = v(m::DRAM_PCT).or_else(|| bandwidth.zip(peak).map(|(b, (p, _))| 100.0 * b / p));
    let memory_pct = v(m::MEMORY_PCT);
    let sm_pct = v(m::SM_PCT);
    let flops = FlopCounts::of(l);
    let dram_bytes = counted.or(derived_bytes);
    let (l2_bytes, l1_bytes) = (v(m::L2_BYTES), v(m::L1_BYTES));
    LaunchMetrics {
        id: l.id,
        kernel: l.kernel.clone(),
        nvtx: l.nvtx.clone(),
        grid: l.grid.clone(),
        block: l.block.clone(),
        duration_ns: duration,
        duration_from_cycles,
        dram_read_bytes: read,
        dram_write_bytes: write,
        dram_bytes,
        dram_bytes_derived: counted.is_none() && derived_bytes.is_some(),
        dram_bandwidth_bytes_per_s: bandwidth,
        peak_bandwidth_bytes_per_s: peak.map(|p| p.0),
        peak_source: peak.map(|p| p.1),
        dram_peak_pct: dram_pct,
        memory_peak_pct: memory_pct,
        sm_peak_pct: sm_pct,
        ld_efficiency_pct: efficiency(
            l,
            m::LD_EFFICIENCY,
            m::LD_BYTES_PER_SECTOR,
            m::LD_BYTES_PER_SECTOR_MAX,
        ),
        st_efficiency_pct: efficiency(
            l,
            m::ST_EFFICIENCY,
            m::ST_BYTES_PER_SECTOR,
            m::ST_BYTES_PER_SECTOR_MAX,
        ),
        l1_hit_pct: v(m::L1_HIT),
        l2_hit_pct: v(m::L2_HIT),
        occupancy_pct: v(m::OCCUPANCY),
        bound: bound_of(dram_pct, memory_pct, sm_pct),
        load_paths: LoadPaths::of(l),
        flops,
        flop_per_s: per(flops.flops, duration.map(|d| d / 1e9)),
        flop_per_dram_byte: per(flops.flops, dram_bytes),
        l2_bytes,
        l1_bytes,
        flop_per_l2_byte: per(flops.flops, l2_bytes),
    }
}

/// Launches of one file ran on one GPU: give those without a peak the peak
/// derived from the launch that loaded DRAM most (the most precise quotient).
pub fn share_derived_peak(rows: &mut [LaunchMetrics]) {
    let best = rows
        .iter()
        .filter(|r| r.peak_source == Some(PeakSource::ThroughputOverPercent))
        .max_by(|a, b| {
            a.dram_peak_pct
                .unwrap_or(0.0)
                .total_cmp(&b.dram_peak_pct.unwrap_or(0.0))
        })
        .and_then(|r| r.peak_bandwidth_bytes_per_s);
    let Some(peak) = best else { return };
    for r in rows
        .iter_mut()
        .filter(|r| r.peak_bandwidth_bytes_per_s.is_none())
    {
        r.peak_bandwidth_bytes_per_s = Some(peak);
        r.peak_source = Some(PeakSource::ThroughputOverPercent);
        if r.dram_peak_pct.is_none() {
            r.dram_peak_pct = r.dram_bandwidth_bytes_per_s.map(|b| 100.0 * b / peak);
        }
    }
}

/// Which quantities at least one launch had, noted as launches stream by.
#[derive(Debug, Default, Clone)]
pub struct Presence {
    launches: u64,
    duration: bool,
    duration_from_cycles: bool,
    dram_read: bool,
    bandwidth: bool,
    peak: bool,
    sm: bool,
    ld: bool,
    /// A launch with a load or store efficiency of exactly 0 %: one that
    /// made no such global access at all (the least a real access can
    /// use of a 32-byte sector is one byte, 3.1 %).
    no_global_access: bool,
    load_paths: bool,
    l2: bool,
    occupancy: bool,
    cuda_core_flops: bool,
    tensor_flops: bool,
    flops: bool,
}

impl Presence {
    pub fn note(&mut self, r: &LaunchMetrics) {
        self.launches += 1;
        self.duration |= r.duration_ns.is_some();
        self.duration_from_cycles |= r.duration_from_cycles;
        self.dram_read |= r.dram_read_bytes.is_some();
        self.bandwidth |= r.dram_bandwidth_bytes_per_s.is_some();
        self.peak |= r.peak_bandwidth_bytes_per_s.is_some();
        self.sm |= r.sm_peak_pct.is_some();
        self.ld |= r.ld_efficiency_pct.is_some();
        self.no_global_access |= [r.ld_efficiency_pct, r.st_efficiency_pct]
            .into_iter()
            .flatten()
            .any(made_no_global_access);
        self.load_paths |= r.load_paths.is_some();
        self.l2 |= r.l2_hit_pct.is_some();
        self.occupancy |= r.occupancy_pct.is_some();
        self.cuda_core_flops |= r.flops.cuda_core_flops.is_some();
        self.tensor_flops |= r.flops.tensor_flops.is_some();
        self.flops |= r.flops.flops.is_some();
    }

    /// Whether some launch's duration is SM cycles ÷ SM clock.
    pub fn duration_from_cycles(&self) -> bool {
        self.duration_from_cycles
    }

    /// For each quantity that no launch had: what to collect to get it.
    pub fn notes(&self) -> Vec<String> {
        let p = self;
        missing_notes_for(&[
            (p.duration, Quantity::Duration),
            (p.dram_read, Quantity::DramRead),
            (p.bandwidth, Quantity::Bandwidth),
            (p.peak, Quantity::Peak),
            (p.sm, Quantity::Sm),
            (p.ld, Quantity::Ld),
            (p.l2, Quantity::L2),
            (p.occupancy, Quantity::Occupancy),
        ])
        .into_iter()
        .chain(
            p.no_global_access
                .then(|| no_global_access_note(p.load_paths)),
        )
        .chain(p.half_counted_flops())
        .filter(|_| p.launches > 0)
        .collect()
    }

    /// Where a capture counted one part of the FLOPs but not the other,
    /// what to add: the part it has is not the total, so nothing is shown.
    fn half_counted_flops(&self) -> Option<String> {
        let (has, lacks, add, why) = match (self.flops, self.cuda_core_flops, self.tensor_flops) {
            (false, true, false) => (
                "the CUDA-core instruction counts",
                "tensor-core",
                m::TENSOR_FLOP_OPS.join(","),
                "sm__inst_executed_pipe_tensor also counts half-precision CUDA-core instructions, so it cannot stand in",
            ),
            (false, false, true) => (
                "the tensor-core counts",
                "CUDA-core",
                m::cuda_core_flop_metrics().collect::<Vec<_>>().join(","),
                "--set full has only their rates per cycle",
            ),
            _ => return None,
        };
        Some(format!(
            "FLOP/s and FLOP per DRAM byte: {has} leave out {lacks} work; collect --metrics {add} as well ({why})"
        ))
    }
}

/// Why an efficiency can be absent although it was collected.
const NO_GLOBAL_ACCESS: &str = "Ld/St eff where no launch made a global load (store): ncu reports 0 % for a launch without any (e.g. one that copies through TMA or cp.async), and the means leave those launches out";

/// Where the capture did not count the load paths, say how to: they tell
/// which of those launches copy through TMA or cp.async.
const LOAD_PATHS_HINT: &str = " (for a Loads via column that names each kernel's path, collect --metrics smsp__sass_inst_executed_op_global_ld.sum,smsp__inst_executed_op_ldgsts.sum,l1tex__m_xbar2l1tex_read_bytes_mem_global_op_tma_ld.sum, or export a --set full capture's raw page)";

fn no_global_access_note(load_paths_shown: bool) -> String {
    let hint = if load_paths_shown {
        ""
    } else {
        LOAD_PATHS_HINT
    };
    format!("{NO_GLOBAL_ACCESS}{hint}")
}

/// Exactly 0 % is ncu's value for a launch without any such global access.
fn made_no_global_access(pct: f64) -> bool {
    pct == 0.0
}

/// A launch's load or store efficiency as a group's mean counts it: a
/// launch without any such global access has nothing to be efficient at.
pub(crate) fn efficiency_for_mean(pct: Option<f64>) -> Option<f64> {
    pct.filter(|&p| !made_no_global_access(p))
}

enum Quantity {
    Duration,
    DramRead,
    Bandwidth,
    Peak,
    Sm,
    Ld,
    L2,
    Occupancy,
}

fn missing_notes_for(seen: &[(bool, Quantity)]) -> Vec<String> {
    seen.iter()
        .filter(|(present, _)| !present)
        .map(|(_, q)| {
            match q {
                Quantity::Duration => "duration: collect --section SpeedOfLight or --metrics gpu__time_duration.sum",
                Quantity::DramRead => "DRAM bytes read/written: collect --metrics dram__bytes_read.sum,dram__bytes_write.sum",
                Quantity::Bandwidth => "DRAM bandwidth: collect --section MemoryWorkloadAnalysis or --metrics dram__bytes.sum.per_second",
                Quantity::Peak => "peak bandwidth: export --page raw (device attributes), or pass --peak-bandwidth or --gpu",
                Quantity::Sm => "SM % of peak, and with it the bound verdict: collect --section SpeedOfLight",
                Quantity::Ld => "load/store efficiency: collect --metrics smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct,smsp__sass_average_data_bytes_per_sector_mem_global_op_st.pct, or export a --set full capture with --page raw",
                Quantity::L2 => "L1/L2 hit rates: collect --section MemoryWorkloadAnalysis",
                Quantity::Occupancy => "achieved occupancy: collect --section Occupancy",
            }
            .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_rule() {
        assert_eq!(verdict(Some(80.0), Some(20.0)), Some(Bound::Memory));
        assert_eq!(verdict(Some(20.0), Some(75.0)), Some(Bound::Compute));
        assert_eq!(verdict(Some(10.0), Some(5.0)), Some(Bound::Latency));
        assert_eq!(verdict(Some(65.0), Some(60.0)), Some(Bound::Balanced));
        assert_eq!(verdict(None, None), None);
        assert_eq!(verdict(Some(80.0), None), None);
        assert_eq!(verdict(None, Some(80.0)), None);
    }

    #[test]
    fn gpu_table_prefers_specific_names() {
        assert_eq!(table_peak("NVIDIA H100 PCIe"), Some(2.0e12));
        assert_eq!(table_peak("NVIDIA H200"), Some(4.8e12));
        assert_eq!(table_peak("Quadro RTX 6000"), None);
    }
}
