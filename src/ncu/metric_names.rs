//! The metrics ncu-digest reads, by their ncu metric names, and the
//! details-page labels that stand for them. Labels are keyed by section
//! because one label can mean two metrics ("Memory Throughput" is a % in
//! Speed Of Light and a byte/s rate in Memory Workload Analysis).

pub const DURATION: &str = "gpu__time_duration.sum";
/// SM elapsed cycles and their rate: where a `--metrics` list has no
/// duration (NERSC-style roofline captures), their quotient is the
/// duration, as ncu derives the rate from it.
pub const SM_CYCLES: &str = "sm__cycles_elapsed.avg";
pub const SM_CLOCK: &str = "sm__cycles_elapsed.avg.per_second";
pub const DRAM_READ: &str = "dram__bytes_read.sum";
pub const DRAM_WRITE: &str = "dram__bytes_write.sum";
pub const DRAM_BYTES: &str = "dram__bytes.sum";
pub const DRAM_BANDWIDTH: &str = "dram__bytes.sum.per_second";
pub const DRAM_PCT: &str = "dram__throughput.avg.pct_of_peak_sustained_elapsed";
pub const MEMORY_PCT: &str = "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed";
pub const SM_PCT: &str = "sm__throughput.avg.pct_of_peak_sustained_elapsed";
pub const LD_EFFICIENCY: &str = "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct";
pub const ST_EFFICIENCY: &str = "smsp__sass_average_data_bytes_per_sector_mem_global_op_st.pct";
/// The two parts of each efficiency (bytes used per sector, and the most a
/// sector holds), which `--set full` collects instead of the %.
pub const LD_BYTES_PER_SECTOR: &str =
    "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.ratio";
pub const LD_BYTES_PER_SECTOR_MAX: &str =
    "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.max_rate";
pub const ST_BYTES_PER_SECTOR: &str =
    "smsp__sass_average_data_bytes_per_sector_mem_global_op_st.ratio";
pub const ST_BYTES_PER_SECTOR_MAX: &str =
    "smsp__sass_average_data_bytes_per_sector_mem_global_op_st.max_rate";
pub const L1_HIT: &str = "l1tex__t_sector_hit_rate.pct";
pub const L2_HIT: &str = "lts__t_sector_hit_rate.pct";
pub const OCCUPANCY: &str = "sm__warps_active.avg.pct_of_peak_sustained_active";
pub const DRAM_PEAK_PER_CYCLE: &str = "dram__bytes.sum.peak_sustained";
pub const DRAM_CLOCK: &str = "dram__cycles_elapsed.avg.per_second";
pub const MEM_CLOCK_KHZ: &str = "device__attribute_max_mem_frequency_khz";
pub const MEM_CLOCK_RATE_KHZ: &str = "device__attribute_memory_clock_rate";
pub const BUS_WIDTH_BITS: &str = "device__attribute_global_memory_bus_width";
pub const GPU_NAME: &str = "device__attribute_display_name";
/// The three global-load paths: LDG instructions through the LSU, LDGSTS
/// (cp.async) instructions, and bytes the TMA loaded from global memory.
pub const GLOBAL_LD_INST: &str = "smsp__sass_inst_executed_op_global_ld.sum";
pub const LDGSTS_INST: &str = "smsp__inst_executed_op_ldgsts.sum";
pub const TMA_LD_BYTES: &str = "l1tex__m_xbar2l1tex_read_bytes_mem_global_op_tma_ld.sum";
/// Bytes requested of L1/TEX and of L2: with the DRAM bytes, the three
/// levels of NERSC's hierarchical roofline.
pub const L1_BYTES: &str = "l1tex__t_bytes.sum";
pub const L2_BYTES: &str = "lts__t_bytes.sum";

/// CUDA-core floating-point instructions per thread that executed, with the
/// FLOPs ncu's roofline sections count for each: 2 for an FMA; the
/// half-precision instructions are 2-wide (HADD2, HMUL2, HFMA2), so 2, 2
/// and 4 (`derived__smsp__sass_thread_inst_executed_op_hfma_pred_on_x4`).
pub const CUDA_CORE_FLOP_INST: [(&str, f64); 9] = [
    ("smsp__sass_thread_inst_executed_op_dadd_pred_on.sum", 1.0),
    ("smsp__sass_thread_inst_executed_op_dmul_pred_on.sum", 1.0),
    ("smsp__sass_thread_inst_executed_op_dfma_pred_on.sum", 2.0),
    ("smsp__sass_thread_inst_executed_op_fadd_pred_on.sum", 1.0),
    ("smsp__sass_thread_inst_executed_op_fmul_pred_on.sum", 1.0),
    ("smsp__sass_thread_inst_executed_op_ffma_pred_on.sum", 2.0),
    ("smsp__sass_thread_inst_executed_op_hadd_pred_on.sum", 2.0),
    ("smsp__sass_thread_inst_executed_op_hmul_pred_on.sum", 2.0),
    ("smsp__sass_thread_inst_executed_op_hfma_pred_on.sum", 4.0),
];

/// Tensor-core operations per floating-point source type, as Hopper's
/// counters name them (the Hierarchical Tensor Roofline section's): an FMA
/// counts 2, so a GEMM counts 2·M·N·K, over the tiles it ran (an N that is
/// no multiple of the tile counts the padded tile). Integer sources are
/// left out: their operations are no FLOPs.
pub const TENSOR_FLOP_OPS: [&str; 6] = [
    "sm__ops_path_tensor_src_fp64.sum",
    "sm__ops_path_tensor_src_tf32_dst_fp32.sum",
    "sm__ops_path_tensor_src_fp16.sum",
    "sm__ops_path_tensor_src_bf16_dst_fp32.sum",
    "sm__ops_path_tensor_src_fp8_sparsity_off.sum",
    "sm__ops_path_tensor_src_fp8_sparsity_on.sum",
];

/// Numeric metrics kept from each launch, with the FLOP counts above;
/// everything else is skipped while reading, so a 2,000-column raw page
/// costs no more than a narrow one.
pub const NUMERIC: &[&str] = &[
    DURATION,
    SM_CYCLES,
    SM_CLOCK,
    DRAM_READ,
    DRAM_WRITE,
    DRAM_BYTES,
    DRAM_BANDWIDTH,
    DRAM_PCT,
    MEMORY_PCT,
    SM_PCT,
    LD_EFFICIENCY,
    ST_EFFICIENCY,
    LD_BYTES_PER_SECTOR,
    LD_BYTES_PER_SECTOR_MAX,
    ST_BYTES_PER_SECTOR,
    ST_BYTES_PER_SECTOR_MAX,
    L1_HIT,
    L2_HIT,
    OCCUPANCY,
    DRAM_PEAK_PER_CYCLE,
    DRAM_CLOCK,
    MEM_CLOCK_KHZ,
    MEM_CLOCK_RATE_KHZ,
    BUS_WIDTH_BITS,
    GLOBAL_LD_INST,
    LDGSTS_INST,
    TMA_LD_BYTES,
    L1_BYTES,
    L2_BYTES,
];

/// Metric names ncu also uses for the same quantity.
const ALIASES: &[(&str, &str)] = &[
    (
        "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed",
        DRAM_PCT,
    ),
    // `--set full` counts LDGSTS per SMSP, a `--metrics` list often per SM.
    ("sm__sass_inst_executed_op_ldgsts.sum", LDGSTS_INST),
];

/// (section prefix, label) → metric, for details pages printed with labels.
/// The 2020-era "GPU Speed Of Light" labels are included.
const LABELS: &[(&str, &str, &str)] = &[
    ("GPU Speed Of Light Throughput", "Duration", DURATION),
    ("GPU Speed Of Light Throughput", "DRAM Throughput", DRAM_PCT),
    (
        "GPU Speed Of Light Throughput",
        "Memory Throughput",
        MEMORY_PCT,
    ),
    (
        "GPU Speed Of Light Throughput",
        "Compute (SM) Throughput",
        SM_PCT,
    ),
    (
        "GPU Speed Of Light Throughput",
        "DRAM Frequency",
        DRAM_CLOCK,
    ),
    ("GPU Speed Of Light", "Duration", DURATION),
    ("GPU Speed Of Light", "SOL FB", DRAM_PCT),
    ("GPU Speed Of Light", "Memory [%]", MEMORY_PCT),
    ("GPU Speed Of Light", "SM [%]", SM_PCT),
    (
        "Memory Workload Analysis",
        "Memory Throughput",
        DRAM_BANDWIDTH,
    ),
    ("Memory Workload Analysis", "L1/TEX Hit Rate", L1_HIT),
    ("Memory Workload Analysis", "L2 Hit Rate", L2_HIT),
    ("Occupancy", "Achieved Occupancy", OCCUPANCY),
];

/// The CUDA-core instruction counts, without their weights.
pub fn cuda_core_flop_metrics() -> impl Iterator<Item = &'static str> {
    CUDA_CORE_FLOP_INST.iter().map(|(m, _)| *m)
}

/// A CUDA-core instruction count in NERSC's roofline spelling, per SM
/// (`sm__sass_thread_inst_…`): ncu's sections count per SMSP, and both are
/// sums over the whole GPU.
fn cuda_core_flop_per_sm(name: &str) -> Option<&'static str> {
    let op = name.strip_prefix("sm__")?;
    cuda_core_flop_metrics().find(|m| m.strip_prefix("smsp__") == Some(op))
}

/// The metric a details row stands for, if ncu-digest uses it.
pub fn resolve(section: &str, name: &str) -> Option<&'static str> {
    let mut kept = NUMERIC
        .iter()
        .copied()
        .chain(cuda_core_flop_metrics())
        .chain(TENSOR_FLOP_OPS);
    if let Some(m) = kept.find(|m| *m == name) {
        return Some(m);
    }
    if let Some(m) = cuda_core_flop_per_sm(name) {
        return Some(m);
    }
    if let Some((_, m)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Some(m);
    }
    LABELS
        .iter()
        .find(|(s, l, _)| *l == name && section == *s)
        .map(|(_, _, m)| *m)
}

/// The metric a raw-page column holds, if ncu-digest uses it.
pub fn resolve_column(name: &str) -> Option<&'static str> {
    resolve("", name)
}
