//! The reports, each computed from the loaded [`Trace`] with the semantics of
//! the `nsys stats` report it mirrors (named on each function).

use super::bit_set::BitSet;
use super::launch_index::LaunchIndex;
use super::nvtx_index::NvtxIndex;
use super::rows::Kernel;
use super::slots::{DenseIds, RunIdGroups, RunSlots};
use super::trace::{global_id, GpuActivity, MemOpKind, NameStyle, RangeStyle, Trace};
use crate::stats::{percent, DurationList, DurationStats};
use rayon::iter::ParallelIterator;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;

pub use super::nvtx_kernels::{nvtx_kernel_summary, NvtxKernelSummary};

/// One row of the `kernels` report (`cuda_gpu_kern_sum`).
#[derive(Debug, Clone, Serialize)]
pub struct KernelSummary {
    pub name: String,
    /// Set only with `by_process`, when the profile has more than one
    /// process or GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<i64>,
    #[serde(flatten)]
    pub time: DurationStats,
    /// Share of all kernel time in the report.
    pub share_pct: f64,
}

/// `cuda_gpu_kern_sum`: per kernel name over every process and GPU, as
/// nsys prints it; with `by_process`, split by process and device where the
/// profile has several.
pub fn kernel_summary(trace: &Trace, names: NameStyle, by_process: bool) -> Vec<KernelSummary> {
    // Grouped by process and device in the one pass over the kernels (at
    // 1 GB a pass reads 188 MB), then merged by name where there is one
    // (process, device) pair.
    let mut by_place: RunIdGroups<(Option<i64>, u32), DurationList> = RunIdGroups::default();
    for (i, k) in trace.kernels.iter().enumerate() {
        let name = trace.kernel_name_id(i, names);
        by_place
            .get((trace.kernels.global_pid(k), trace.kernels.device(k)), name)
            .push(trace.kernels.duration(k));
    }
    let by_place = by_place.into_groups();
    let places: HashSet<(Option<i64>, u32)> = by_place.iter().map(|&(p, _, _)| p).collect();
    let split = by_process && places.len() > 1;
    let mut groups: HashMap<(i64, Option<u32>, Option<i64>), DurationList> = HashMap::default();
    for ((global_pid, device), name, list) in by_place {
        let key = if split {
            (
                name,
                global_pid.map(global_id::pid),
                Some(i64::from(device)),
            )
        } else {
            (name, None, None)
        };
        groups.entry(key).or_default().append(list);
    }
    let mut rows: Vec<KernelSummary> = summarise(groups)
        .into_iter()
        .map(|((name, pid, device), time, share_pct)| KernelSummary {
            name: trace.strings.get(name).to_string(),
            pid,
            device,
            share_pct,
            time,
        })
        .collect();
    largest_first(&mut rows, |r| (r.time.total_ns, &r.name));
    rows
}

/// Rows by total time, largest first, ties by name, so that output is
/// stable from run to run.
pub(crate) fn largest_first<T>(rows: &mut [T], key: impl Fn(&T) -> (i64, &String)) {
    rows.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
    });
}

/// Stats of each group of durations, with the group's share of all of them,
/// largest total first; empty groups are dropped.
fn summarise<K>(
    groups: impl IntoIterator<Item = (K, DurationList)>,
) -> Vec<(K, DurationStats, f64)> {
    let mut scratch = Vec::new();
    let mut rows: Vec<(K, DurationStats)> = groups
        .into_iter()
        .filter_map(|(k, mut v)| Some((k, v.stats(&mut scratch)?)))
        .collect();
    let grand: i64 = rows.iter().map(|(_, s)| s.total_ns).sum();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.total_ns));
    rows.into_iter()
        .map(|(k, s)| {
            let share = percent(s.total_ns as f64, grand as f64);
            (k, s, share)
        })
        .collect()
}

/// The GPU projection of one range name (`nvtx_gpu_proj_sum`).
#[derive(Debug, Clone, Serialize)]
pub struct NvtxProjection {
    /// Range instances that enclose at least one GPU operation.
    pub range_instances: u64,
    /// Sum of the CPU durations of those instances.
    pub range_total_ns: i64,
    /// Projected duration: first enclosed op start to last op end, per instance.
    #[serde(rename = "projected")]
    pub time: DurationStats,
    /// Distinct correlation ids: a CUDA graph launch is one op.
    pub gpu_ops: u64,
    pub avg_gpu_ops: f64,
    pub avg_level: f64,
    pub avg_children: f64,
}

/// One row of the `nvtx` report: CPU time (`nvtx_sum`) and GPU projection.
#[derive(Debug, Clone, Serialize)]
pub struct NvtxSummary {
    pub range: String,
    pub style: RangeStyle,
    #[serde(flatten)]
    pub time: DurationStats,
    pub share_pct: f64,
    pub gpu: Option<NvtxProjection>,
}

/// `nvtx_sum` joined with `nvtx_gpu_proj_sum`, by range name and style.
pub fn nvtx_summary(trace: &Trace, launches: &LaunchIndex, index: &NvtxIndex) -> Vec<NvtxSummary> {
    let (cpu, mut gpu) = rayon::join(
        || range_durations(trace),
        || nvtx_projection(trace, launches, index),
    );
    let grand: i64 = cpu.values().flatten().sum();
    let mut rows: Vec<NvtxSummary> = cpu
        .into_iter()
        .filter_map(|((name, style), mut v)| {
            let time = DurationStats::from_values(&mut v)?;
            Some(NvtxSummary {
                range: trace.nvtx_names[name as usize].clone(),
                style,
                share_pct: percent(time.total_ns as f64, grand as f64),
                time,
                gpu: gpu.remove(&(name, style)),
            })
        })
        .collect();
    // Ranges that never ended have no CPU time but may still project.
    for ((name, style), proj) in gpu {
        rows.push(NvtxSummary {
            range: trace.nvtx_names[name as usize].clone(),
            style,
            time: DurationStats::from_values::<i64>(&mut []).unwrap_or(EMPTY_STATS),
            share_pct: 0.0,
            gpu: Some(proj),
        });
    }
    largest_first(&mut rows, |r| (r.time.total_ns, &r.range));
    rows
}

/// The CPU durations of the ranges that ended, by name and style.
fn range_durations(trace: &Trace) -> HashMap<(u32, RangeStyle), Vec<i64>> {
    let mut cpu: HashMap<(u32, RangeStyle), Vec<i64>> = HashMap::default();
    for r in &trace.nvtx {
        if let Some(end) = r.end {
            cpu.entry((r.name, r.style))
                .or_default()
                .push(end - r.start);
        }
    }
    cpu
}

const EMPTY_STATS: DurationStats = DurationStats {
    count: 0,
    total_ns: 0,
    avg_ns: 0.0,
    median_ns: 0.0,
    min_ns: 0,
    max_ns: 0,
    stddev_ns: 0.0,
};

/// Per projectable range instance: first op start, last op end, op count.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Projected {
    start: i64,
    end: i64,
    ops: u64,
}

impl Projected {
    /// Take in `other`'s extent and op count.
    fn widen(&mut self, other: &Projected) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.ops += other.ops;
    }
}

/// Widen each range of a run of ops by the run's extent and op count.
fn widen_ranges(per_range: &mut [Option<Projected>], (enclosing, run): (&[u32], Projected)) {
    for &r in enclosing {
        per_range[r as usize]
            .get_or_insert(Projected { ops: 0, ..run })
            .widen(&run);
    }
}

/// Ops per stretch below which a stretch is not split again: each stretch
/// holds a bit per API call, and its runs are widened again afterwards.
const MIN_STRETCH_OPS: usize = 1 << 16;

/// One stretch of the ops, gathered into runs: each run's enclosing ranges
/// and its extent, with the calls it counted first within the stretch.
struct ScannedStretch<'i> {
    runs: Vec<(&'i [u32], Projected)>,
    counted: BitSet,
}

fn nvtx_projection(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &NvtxIndex,
) -> HashMap<(u32, RangeStyle), NvtxProjection> {
    let per_range = merge_stretches(trace, index, scan_in_stretches(trace, launches, index));
    let children = projected_children(index, &per_range);
    let mut groups: HashMap<(u32, RangeStyle), ProjectionAcc> = HashMap::default();
    for (r, p) in per_range.iter().enumerate() {
        let Some(p) = p else { continue };
        let range = &trace.nvtx[r];
        let acc = groups.entry((range.name, range.style)).or_default();
        acc.durations.push(p.end - p.start);
        acc.range_total += index.clamped_end[r] - range.start;
        acc.ops += p.ops;
        if let Some(level) = index.level(r as u32) {
            acc.levels.0 += level as u64;
            acc.levels.1 += 1;
        }
        acc.children += children[r] as u64;
    }
    groups
        .into_iter()
        .filter_map(|(key, acc)| Some((key, acc.finish()?)))
        .collect()
}

/// The scan is the report's cost, and the report tends to be the last job
/// of the digest: in stretches, an idle core takes a share of it.
fn scan_in_stretches<'i>(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &'i NvtxIndex,
) -> Vec<ScannedStretch<'i>> {
    let ops = trace.kernels.len() + trace.memops.len();
    rayon::iter::split(0..ops, |ops: std::ops::Range<usize>| {
        if ops.len() < 2 * MIN_STRETCH_OPS {
            return (ops, None);
        }
        let middle = ops.start + ops.len() / 2;
        (ops.start..middle, Some(middle..ops.end))
    })
    .map(|ops| scan_stretch(trace, launches, index, ops))
    .collect()
}

/// Per range, how many of the ranges it is the parent of projected.
fn projected_children(index: &NvtxIndex, per_range: &[Option<Projected>]) -> Vec<u32> {
    let mut children = vec![0u32; per_range.len()];
    for (r, p) in per_range.iter().enumerate() {
        if p.is_some() {
            if let Some(parent) = index.parent[r] {
                children[parent as usize] += 1;
            }
        }
    }
    children
}

/// One range name's projected instances.
#[derive(Default)]
struct ProjectionAcc {
    durations: Vec<i64>,
    range_total: i64,
    ops: u64,
    /// (sum of nesting levels, ranges with a level)
    levels: (u64, u64),
    children: u64,
}

impl ProjectionAcc {
    fn finish(mut self) -> Option<NvtxProjection> {
        let n = self.durations.len() as f64;
        let time = DurationStats::from_values(&mut self.durations)?;
        Some(NvtxProjection {
            range_instances: time.count,
            range_total_ns: self.range_total,
            gpu_ops: self.ops,
            avg_gpu_ops: self.ops as f64 / n,
            avg_level: if self.levels.1 == 0 {
                0.0
            } else {
                self.levels.0 as f64 / self.levels.1 as f64
            },
            avg_children: self.children as f64 / n,
            time,
        })
    }
}

/// Per range, the extent and distinct launching calls of the ops it
/// encloses, from the stretches in any order.
fn merge_stretches<'i>(
    trace: &Trace,
    index: &NvtxIndex,
    stretches: impl IntoIterator<Item = ScannedStretch<'i>>,
) -> Vec<Option<Projected>> {
    let mut per_range: Vec<Option<Projected>> = vec![None; trace.nvtx.len()];
    let mut counted = BitSet::new(trace.api_calls.len());
    for stretch in stretches {
        for run in stretch.runs {
            widen_ranges(&mut per_range, run);
        }
        // A call with ops in two stretches was counted in each: once is
        // right, so its ranges give one back.
        for call in counted.union_keeping_common(&stretch.counted) {
            for &r in index.enclosing(call as u32) {
                if let Some(p) = &mut per_range[r as usize] {
                    p.ops -= 1;
                }
            }
        }
    }
    per_range
}

/// Gather the ops `ops` (kernels, then memory operations, in table order)
/// into runs launched inside the same ranges.
fn scan_stretch<'i>(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &'i NvtxIndex,
    ops: std::ops::Range<usize>,
) -> ScannedStretch<'i> {
    // Each op widens every range enclosing its launching call; a range's op
    // count is its distinct launching calls, so a call is counted on its
    // first op only. A bit per call, not an extent per call: the runtime
    // table is the largest in the export.
    let mut counted = BitSet::new(trace.api_calls.len());
    let mut runs = Vec::new();
    // Ops come in runs launched inside the same ranges, which the index
    // stores once: a run is gathered first and widens its ranges once.
    let mut run: (&[u32], Projected) = (&[], Projected::default());
    for (start, end, call) in stretch_ops(trace, launches, ops) {
        let Some(call) = call else { continue };
        let enclosing = index.enclosing(call);
        if enclosing.is_empty() {
            continue;
        }
        let op = Projected {
            start,
            end,
            ops: u64::from(counted.insert(call as usize)),
        };
        if std::ptr::eq(enclosing, run.0) {
            run.1.widen(&op);
        } else {
            if !run.0.is_empty() {
                runs.push(run);
            }
            run = (enclosing, op);
        }
    }
    if !run.0.is_empty() {
        runs.push(run);
    }
    ScannedStretch { runs, counted }
}

/// (start, end, launching call) of ops `ops`, numbered kernels first,
/// then memory operations.
fn stretch_ops<'t>(
    trace: &'t Trace,
    launches: &'t LaunchIndex,
    ops: std::ops::Range<usize>,
) -> impl Iterator<Item = (i64, i64, Option<u32>)> + 't {
    let n = trace.kernels.len();
    let kernels = ops.start.min(n)..ops.end.min(n);
    let memops = ops.start.max(n) - n..ops.end.max(n) - n;
    trace.kernels[kernels.clone()]
        .iter()
        .zip(launches.kernel_call.iter_rows(kernels))
        .map(|(k, c)| (k.start, trace.kernels.end(k), c))
        .chain(
            trace.memops[memops.clone()]
                .iter()
                .zip(launches.memop_call.iter_rows(memops))
                .map(|(m, c)| (m.gpu.start, m.gpu.end, c)),
        )
}

/// One row of the `launch` report (`cuda_kern_exec_sum`).
#[derive(Debug, Clone, Serialize)]
pub struct LaunchSummary {
    pub pid: u32,
    pub tid: u32,
    pub device: i64,
    pub api: String,
    pub kernel: String,
    /// Launches, and those whose kernel started after the call returned.
    pub count: u64,
    pub queued: u64,
    /// API start to the later of API end and kernel end.
    pub total: DurationStats,
    /// The launch call on the CPU.
    pub api_time: DurationStats,
    /// API end to kernel start, over queued launches only.
    pub queue: Option<DurationStats>,
    pub kernel_time: DurationStats,
}

/// `cuda_kern_exec_sum`: launch cost and queue latency per kernel.
pub fn launch_summary(
    trace: &Trace,
    launches: &LaunchIndex,
    names: NameStyle,
) -> Vec<LaunchSummary> {
    let mut groups: RunIdGroups<(i64, i64, i64), LaunchAcc> = RunIdGroups::default();
    for (i, k) in trace.kernels.iter().enumerate() {
        let Some(c) = launches.kernel_call.get(i) else {
            continue;
        };
        let call = &trace.api_calls[c as usize];
        let place = (
            trace.api_calls.global_tid(call),
            i64::from(trace.kernels.device(k)),
            call.name(),
        );
        groups.get(place, trace.kernel_name_id(i, names)).add(
            (call.start, trace.api_calls.end(call)),
            (k.start, trace.kernels.end(k)),
            trace.kernels.duration(k),
        );
    }
    let mut scratch = Vec::new();
    let mut rows: Vec<LaunchSummary> = groups
        .into_groups()
        .into_iter()
        .filter_map(|(place, name, acc)| acc.summary(trace, place, name, &mut scratch))
        .collect();
    rows.sort_by(|a, b| {
        b.total
            .avg_ns
            .total_cmp(&a.total.avg_ns)
            .then_with(|| a.kernel.cmp(&b.kernel))
    });
    rows
}

/// The launches of one kernel by one API on one thread and device.
#[derive(Default)]
struct LaunchAcc {
    total: DurationList,
    api: DurationList,
    queue: DurationList,
    kernel: DurationList,
}

impl LaunchAcc {
    /// One launch: the call's and the kernel's (start, end), and the
    /// kernel's duration.
    fn add(&mut self, call: (i64, i64), kernel: (i64, i64), kernel_ns: i64) {
        let (call_start, call_end) = call;
        self.total.push(call_end.max(kernel.1) - call_start);
        self.api.push(call_end - call_start);
        if kernel.0 - call_end >= 0 {
            self.queue.push(kernel.0 - call_end);
        }
        self.kernel.push(kernel_ns);
    }

    fn summary(
        mut self,
        trace: &Trace,
        (tid, device, api): (i64, i64, i64),
        name: i64,
        scratch: &mut Vec<i64>,
    ) -> Option<LaunchSummary> {
        let total = self.total.stats(scratch)?;
        Some(LaunchSummary {
            pid: global_id::pid(tid),
            tid: global_id::tid(tid),
            device,
            api: super::trace::strip_version_suffix(trace.strings.get(api)).to_string(),
            kernel: trace.strings.get(name).to_string(),
            count: total.count,
            queued: self.queue.len() as u64,
            total,
            api_time: self.api.stats(scratch)?,
            queue: self.queue.stats(scratch),
            kernel_time: self.kernel.stats(scratch)?,
        })
    }
}

/// GPU busy and idle time on one device, or one stream of it.
#[derive(Debug, Clone, Serialize)]
pub struct GpuBusy {
    pub device: i64,
    /// The stream's process, set when ops came from several: each process
    /// numbers its streams alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `None` for the whole device.
    pub stream: Option<i64>,
    pub ops: u64,
    /// Union of kernel and memory-operation intervals.
    pub busy_ns: i64,
    /// The captured span minus busy time.
    pub idle_ns: i64,
    pub idle_pct: f64,
    /// Gaps between busy intervals, and the longest one.
    pub gaps: u64,
    pub longest_gap_ns: i64,
}

/// Busy and idle time per device and per (device, stream).
pub fn gpu_busy(trace: &Trace) -> Vec<GpuBusy> {
    let Some((span_start, span_end)) = trace.span() else {
        return Vec::new();
    };
    let span = (span_end - span_start).max(0);
    let keys = StreamKeys::of(trace);
    let mut rows =
        running_busy(trace, keys, span).unwrap_or_else(|| merged_busy(trace, keys, span));
    if !keys.by_process {
        rows.iter_mut().for_each(|r| r.pid = None);
    }
    rows.sort_by_key(|r| (r.device, r.stream.is_some(), std::cmp::Reverse(r.busy_ns)));
    rows
}

/// A stream is (device, global pid or 0, stream id).
type StreamKey = (i64, i64, i64);

/// How ops name their stream. The process is part of the name only where
/// ops came from several: each process numbers its streams alike, and a
/// table that lacks the process column must not split one process's
/// streams from another table's.
#[derive(Clone, Copy)]
struct StreamKeys {
    by_process: bool,
}

impl StreamKeys {
    fn of(trace: &Trace) -> StreamKeys {
        let memops = trace.memops.iter().filter_map(|m| m.gpu.global_pid);
        let pids: HashSet<i64> = trace.kernels.processes().chain(memops).collect();
        StreamKeys {
            by_process: pids.len() > 1,
        }
    }

    fn key(self, device: i64, global_pid: Option<i64>, stream: i64) -> StreamKey {
        let pid = global_pid.filter(|_| self.by_process).unwrap_or(0);
        (device, pid, stream)
    }

    fn kernel(self, trace: &Trace, k: &Kernel) -> StreamKey {
        let device = i64::from(trace.kernels.device(k));
        let stream = i64::from(trace.kernels.stream(k));
        self.key(device, trace.kernels.global_pid(k), stream)
    }

    fn memop(self, m: &GpuActivity) -> StreamKey {
        self.key(m.device, m.global_pid, m.stream)
    }
}

/// The busy rows in one pass that keeps no intervals, which works when
/// every device's and stream's ops arrive in start order once kernels and
/// the sorted memory ops are merged by start, as in every export seen
/// (CUPTI writes a device's kernels in start order); `None` when one does
/// not. At 1 GB the stream unions' interval lists took 94 MB.
fn running_busy(trace: &Trace, keys: StreamKeys, span: i64) -> Option<Vec<GpuBusy>> {
    let mut unions = BusyUnions::default();
    for (position, key, start, end) in ops_by_start(trace, keys) {
        // An op that ends before it starts covers no time.
        if !unions.add(position, key, start, end.max(start)) {
            return None;
        }
    }
    Some(unions.rows(span))
}

/// Kernels and memory ops merged by start: (position among kernels then
/// memory ops, stream, start, end).
fn ops_by_start(
    trace: &Trace,
    keys: StreamKeys,
) -> impl Iterator<Item = (usize, StreamKey, i64, i64)> + '_ {
    let kernels = trace
        .kernels
        .iter()
        .enumerate()
        .map(move |(i, k)| (i, keys.kernel(trace, k), k.start, trace.kernels.end(k)));
    // Copies, then sets: each table in start order, so they are few enough
    // to sort.
    let mut memop_order: Vec<usize> = (0..trace.memops.len()).collect();
    memop_order.sort_by_key(|&i| trace.memops[i].gpu.start);
    let memops = memop_order.into_iter().map(move |i| {
        let m = &trace.memops[i].gpu;
        (trace.kernels.len() + i, keys.memop(m), m.start, m.end)
    });
    let (mut kernels, mut memops) = (kernels.peekable(), memops.peekable());
    std::iter::from_fn(move || {
        let kernel_first = match (kernels.peek(), memops.peek()) {
            (Some(k), Some(m)) => k.2 <= m.2,
            (k, _) => k.is_some(),
        };
        if kernel_first {
            kernels.next()
        } else {
            memops.next()
        }
    })
}

/// A running union per stream and per device.
#[derive(Default)]
struct BusyUnions {
    stream_slots: RunSlots<StreamKey>,
    /// Per stream: its key, where it first appears among kernels then
    /// memory ops (the list-based path's numbering, which orders tied
    /// rows), and its union.
    streams: Vec<(StreamKey, usize, RunningUnion)>,
    device_slots: RunSlots<i64>,
    devices: Vec<(i64, RunningUnion)>,
}

impl BusyUnions {
    /// Take in one op; `false` when it starts before an op of its stream
    /// or device that came earlier.
    fn add(&mut self, position: usize, key: StreamKey, start: i64, end: i64) -> bool {
        let (slot, new) = self.stream_slots.slot(key);
        if new {
            self.streams.push((key, position, RunningUnion::default()));
        }
        let stream = &mut self.streams[slot];
        stream.1 = stream.1.min(position);
        let (slot, new) = self.device_slots.slot(key.0);
        if new {
            self.devices.push((key.0, RunningUnion::default()));
        }
        stream.2.add(start, end) && self.devices[slot].1.add(start, end)
    }

    fn rows(mut self, span: i64) -> Vec<GpuBusy> {
        self.streams.sort_by_key(|s| s.1);
        let stream_rows = self.streams.into_iter().map(|(stream, _, union)| {
            let (ops, stats) = union.finish();
            stream_busy_row(stream, ops, &stats, span)
        });
        let device_rows = self.devices.into_iter().map(|(device, union)| {
            let (ops, stats) = union.finish();
            busy_row(device, ops, &stats, span)
        });
        stream_rows.chain(device_rows).collect()
    }
}

/// The busy rows from each stream's intervals, merged per device: for ops
/// that arrive out of start order.
fn merged_busy(trace: &Trace, keys: StreamKeys, span: i64) -> Vec<GpuBusy> {
    let mut streams = StreamUnions::default();
    for k in trace.kernels.iter() {
        streams.add(keys.kernel(trace, k), k.start, trace.kernels.end(k));
    }
    for m in &trace.memops {
        let m = &m.gpu;
        streams.add(keys.memop(m), m.start, m.end);
    }
    // A device is busy where any of its streams is: the union of the
    // streams' unions, merged in order without a combined list.
    let mut by_device: HashMap<i64, (u64, Vec<Intervals>)> = HashMap::default();
    let mut rows = Vec::new();
    for (stream, union) in streams.finish() {
        let stats = UnionStats::of(union.intervals.iter().copied());
        rows.push(stream_busy_row(stream, union.ops, &stats, span));
        let d = by_device.entry(stream.0).or_default();
        d.0 += union.ops;
        d.1.push(union.intervals);
    }
    for (device, (count, unions)) in by_device {
        let stats = device_union(unions);
        rows.push(busy_row(device, count, &stats, span));
    }
    rows
}

/// A union of intervals that arrive in start order, kept as the stats of
/// its closed intervals and the one still open.
#[derive(Default)]
struct RunningUnion {
    ops: u64,
    open: Option<(i64, i64)>,
    closed: UnionStats,
}

impl RunningUnion {
    /// Adds an op; false when it starts before the open interval, where
    /// the union would need the closed intervals back.
    fn add(&mut self, start: i64, end: i64) -> bool {
        self.ops += 1;
        self.open = match self.open {
            Some((s, _)) if start < s => return false,
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some(closed) => {
                self.closed.push(closed);
                Some((start, end))
            }
            None => Some((start, end)),
        };
        true
    }

    /// The op count and the union's stats.
    fn finish(mut self) -> (u64, UnionStats) {
        if let Some(open) = self.open.take() {
            self.closed.push(open);
        }
        (self.ops, self.closed)
    }
}

/// Start-ordered, merged busy intervals.
type Intervals = Vec<(i64, i64)>;

/// The busy intervals of every (device, stream), merged as the ops arrive.
/// A stream's ops come in start order (one stream runs one op at a time), so
/// each op extends the last interval or opens one; at 1 GB this replaces a
/// 94 MB list of every op and its sort. An op that arrives out of order is
/// kept aside and merged by sorting at the end, which gives the same union.
#[derive(Default)]
struct StreamUnions {
    /// Ops of one stream come in runs.
    slots: RunSlots<StreamKey>,
    streams: Vec<(StreamKey, StreamUnion)>,
}

#[derive(Default)]
struct StreamUnion {
    ops: u64,
    /// Merged so far, in start order.
    intervals: Vec<(i64, i64)>,
    last_start: i64,
    out_of_order: Vec<(i64, i64)>,
}

impl StreamUnions {
    fn add(&mut self, key: StreamKey, start: i64, end: i64) {
        let (slot, new) = self.slots.slot(key);
        if new {
            self.streams.push((key, StreamUnion::default()));
        }
        // An op that ends before it starts covers no time.
        self.streams[slot].1.add(start, end.max(start));
    }

    fn finish(self) -> impl Iterator<Item = (StreamKey, StreamUnion)> {
        self.streams.into_iter().map(|(key, mut union)| {
            if !union.out_of_order.is_empty() {
                let mut all = std::mem::take(&mut union.intervals);
                all.append(&mut union.out_of_order);
                union.intervals = union_of(all);
            }
            (key, union)
        })
    }
}

impl StreamUnion {
    #[inline]
    fn add(&mut self, start: i64, end: i64) {
        self.ops += 1;
        if !self.intervals.is_empty() && start < self.last_start {
            self.out_of_order.push((start, end));
            return;
        }
        self.last_start = start;
        match self.intervals.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => self.intervals.push((start, end)),
        }
    }
}

/// Sorted and merged: the union of `intervals` as disjoint intervals.
pub(crate) fn union_of(mut intervals: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    // Ops of one stream arrive in order: the run-aware stable sort is close
    // to linear on them.
    intervals.sort();
    let mut merged = 0;
    for i in 0..intervals.len() {
        let (s, e) = intervals[i];
        if merged > 0 && s <= intervals[merged - 1].1 {
            let last = &mut intervals[merged - 1].1;
            *last = (*last).max(e);
        } else {
            intervals[merged] = (s, e);
            merged += 1;
        }
    }
    intervals.truncate(merged);
    intervals
}

/// Busy time, interval count and longest gap of a union, taken as its
/// intervals arrive in start order.
#[derive(Default)]
struct UnionStats {
    busy: i64,
    intervals: u64,
    /// Gaps in a union are positive, so 0 stands for "no gap".
    longest_gap: i64,
    last_end: Option<i64>,
}

impl UnionStats {
    fn of(intervals: impl IntoIterator<Item = (i64, i64)>) -> UnionStats {
        let mut stats = UnionStats::default();
        intervals.into_iter().for_each(|i| stats.push(i));
        stats
    }

    fn push(&mut self, (start, end): (i64, i64)) {
        self.busy += end - start;
        if let Some(last) = self.last_end {
            self.longest_gap = self.longest_gap.max(start - last);
        }
        self.intervals += 1;
        self.last_end = Some(end);
    }
}

/// The union of a device's stream unions (each sorted and merged): a merge
/// that takes the smallest head each time, in the (start, end) order
/// [`union_of`] sorts into, so the result is the same. Past a few streams
/// the heads cost more than a sort, and the lists are sorted together.
fn device_union(unions: Vec<Intervals>) -> UnionStats {
    const MERGE_STREAMS: usize = 8;
    if unions.len() > MERGE_STREAMS {
        return UnionStats::of(union_of(unions.concat()));
    }
    let mut heads = vec![0usize; unions.len()];
    let mut merged = RunningUnion::default();
    loop {
        let mut next: Option<(usize, (i64, i64))> = None;
        for (i, union) in unions.iter().enumerate() {
            if let Some(&interval) = union.get(heads[i]) {
                if next.is_none_or(|(_, best)| interval < best) {
                    next = Some((i, interval));
                }
            }
        }
        let Some((i, (start, end))) = next else { break };
        heads[i] += 1;
        let in_order = merged.add(start, end);
        debug_assert!(in_order, "heads are taken in start order");
    }
    merged.finish().1
}

/// Busy time, gaps and idle share from the union of a device's or stream's ops.
fn busy_row(device: i64, ops: u64, union: &UnionStats, span: i64) -> GpuBusy {
    let idle = (span - union.busy).max(0);
    GpuBusy {
        device,
        pid: None,
        stream: None,
        ops,
        busy_ns: union.busy,
        idle_ns: idle,
        idle_pct: percent(idle as f64, span as f64),
        gaps: union.intervals.saturating_sub(1),
        longest_gap_ns: union.longest_gap,
    }
}

fn stream_busy_row(stream: StreamKey, ops: u64, union: &UnionStats, span: i64) -> GpuBusy {
    let (device, global_pid, stream) = stream;
    GpuBusy {
        pid: Some(global_id::pid(global_pid)),
        stream: Some(stream),
        ..busy_row(device, ops, union, span)
    }
}

/// One row of the `memory` report (`cuda_gpu_mem_time_sum`, plus bytes).
#[derive(Debug, Clone, Serialize)]
pub struct MemorySummary {
    pub operation: String,
    #[serde(flatten)]
    pub time: DurationStats,
    pub share_pct: f64,
    pub bytes: i64,
    /// Bytes over busy time of these operations.
    pub bandwidth_bytes_per_s: f64,
}

/// `cuda_gpu_mem_time_sum`: memcpy by kind and memset.
pub fn memory_summary(trace: &Trace) -> Vec<MemorySummary> {
    let mut durations: HashMap<MemOpKind, DurationList> = HashMap::default();
    let mut bytes: HashMap<MemOpKind, i64> = HashMap::default();
    for m in &trace.memops {
        durations
            .entry(m.kind)
            .or_default()
            .push(m.gpu.end - m.gpu.start);
        *bytes.entry(m.kind).or_default() += m.bytes;
    }
    summarise(durations)
        .into_iter()
        .map(|(kind, time, share_pct)| {
            let bytes = bytes[&kind];
            MemorySummary {
                operation: trace.memop_label(kind),
                share_pct,
                bandwidth_bytes_per_s: if time.total_ns > 0 {
                    bytes as f64 * 1e9 / time.total_ns as f64
                } else {
                    0.0
                },
                bytes,
                time,
            }
        })
        .collect()
}

/// One row of the `api` report (`cuda_api_sum`).
#[derive(Debug, Clone, Serialize)]
pub struct ApiSummary {
    /// Without a four-digit `_vNNNN` suffix, as nsys prints it.
    pub name: String,
    #[serde(flatten)]
    pub time: DurationStats,
    pub share_pct: f64,
}

/// `cuda_api_sum`: CPU time per CUDA runtime and driver API.
pub fn api_summary(trace: &Trace) -> Vec<ApiSummary> {
    // Ids whose names differ only in the version suffix print as one API;
    // each id finds its group once, by a dense slot, not once per call.
    let mut id_slots = DenseIds::default();
    let mut group_of_slot: Vec<usize> = Vec::new();
    let mut group_of_name: HashMap<&str, usize> = HashMap::default();
    let mut groups: Vec<(&str, DurationList)> = Vec::new();
    for c in trace.api_calls.iter() {
        let slot = id_slots.slot(c.name()) as usize;
        if slot == group_of_slot.len() {
            let name = super::trace::strip_version_suffix(trace.strings.get(c.name()));
            let g = *group_of_name.entry(name).or_insert_with(|| {
                groups.push((name, DurationList::default()));
                groups.len() - 1
            });
            group_of_slot.push(g);
        }
        groups[group_of_slot[slot]]
            .1
            .push(trace.api_calls.duration(c));
    }
    let mut rows: Vec<ApiSummary> = summarise(groups)
        .into_iter()
        .map(|(name, time, share_pct)| ApiSummary {
            name: name.to_string(),
            share_pct,
            time,
        })
        .collect();
    largest_first(&mut rows, |r| (r.time.total_ns, &r.name));
    rows
}

#[cfg(test)]
mod tests {
    use super::{device_union, merge_stretches, scan_stretch, union_of, StreamUnions, UnionStats};
    use crate::nsys::launch_index::LaunchIndex;
    use crate::nsys::nvtx_index::NvtxIndex;

    /// On every real export: the ops cut into stretches of a few ops each,
    /// in reverse order, project as the whole table scanned at once. Graph
    /// launches put one call's kernels into many stretches, so a call
    /// counted in two is there to be found.
    #[test]
    fn stretches_in_any_cut_project_as_one_scan() {
        let mut shared_calls = 0;
        for (file, trace) in crate::nsys::real_traces() {
            let launches = LaunchIndex::build(&trace);
            let index = NvtxIndex::build(&trace, &launches);
            let ops = trace.kernels.len() + trace.memops.len();
            let whole = scan_stretch(&trace, &launches, &index, 0..ops);
            let distinct = whole.counted.ones().count();
            let whole = merge_stretches(&trace, &index, [whole]);
            let stretches: Vec<_> = (0..ops)
                .step_by(7)
                .rev()
                .map(|start| scan_stretch(&trace, &launches, &index, start..(start + 7).min(ops)))
                .collect();
            let counted: usize = stretches.iter().map(|s| s.counted.ones().count()).sum();
            shared_calls += counted - distinct;
            assert_eq!(
                merge_stretches(&trace, &index, stretches),
                whole,
                "{}",
                file.display()
            );
        }
        assert!(shared_calls > 0, "no call had ops in two stretches");
    }

    fn same_stats(a: &UnionStats, b: &UnionStats) -> bool {
        (a.busy, a.intervals, a.longest_gap) == (b.busy, b.intervals, b.longest_gap)
    }

    /// Hand-made ops: real streams run one op at a time, in start order, so
    /// no real export reaches the out-of-order path or many streams.
    #[test]
    fn running_unions_equal_the_sorted_union() {
        // Pseudo-random ops on 12 streams of 2 devices, some out of order,
        // some touching, some nested, some ending before they start.
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % m) as i64
        };
        let mut streams = StreamUnions::default();
        let mut raw: std::collections::BTreeMap<super::StreamKey, Vec<(i64, i64)>> =
            Default::default();
        let mut clock = 0;
        for _ in 0..5000 {
            let key = (next(2), next(2) << 24, next(6));
            clock += next(50);
            let start = if next(10) == 0 {
                clock - next(400)
            } else {
                clock
            };
            let end = start + next(60) - 5;
            streams.add(key, start, end);
            raw.entry(key).or_default().push((start, end.max(start)));
        }
        let mut by_device: std::collections::BTreeMap<i64, Vec<Vec<(i64, i64)>>> =
            Default::default();
        for (key, union) in streams.finish() {
            let expected = union_of(raw[&key].clone());
            assert_eq!(union.intervals, expected, "stream {key:?}");
            assert_eq!(union.ops, raw[&key].len() as u64);
            by_device.entry(key.0).or_default().push(union.intervals);
        }
        for (device, unions) in by_device {
            let expected = UnionStats::of(union_of(unions.concat()));
            assert!(
                same_stats(&device_union(unions.clone()), &expected),
                "device {device}"
            );
            // Past eight streams the lists are sorted together: same answer.
            let many: Vec<_> = unions
                .iter()
                .cycle()
                .take(unions.len() + 9)
                .cloned()
                .collect();
            assert!(
                same_stats(&device_union(many), &expected),
                "device {device}, lists repeated"
            );
        }
    }
}
