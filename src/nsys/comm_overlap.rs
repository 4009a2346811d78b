//! How much of each GPU's communication ran under compute: the time its
//! communication kernels (NCCL collectives, custom all-reduce, ...) ran
//! while some other kernel ran on the same GPU. Communication that overlaps
//! compute costs no step time; the rest is exposed, and is what a tensor-
//! or pipeline-parallel user can still win back.
//!
//! Only profiles whose kernels include communication pay for it: two passes
//! over the kernels, the second keeping only the compute that falls inside
//! communication.

use super::bit_set::BitSet;
use super::reports::union_of;
use super::trace::{NameStyle, Trace};
use crate::stats::percent;
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;

/// One GPU's communication kernels and their overlap with compute.
#[derive(Debug, Clone, Serialize)]
pub struct CommOverlap {
    pub device: i64,
    pub kernels: u64,
    /// The communication kernels' durations, summed.
    pub gpu_ns: i64,
    /// The union of their intervals: time with communication running.
    pub busy_ns: i64,
    /// Of `busy_ns`, the time some other kernel ran on the device too.
    pub overlapped_ns: i64,
    pub overlapped_pct: f64,
    /// `busy_ns - overlapped_ns`: communication nothing else ran beside.
    pub exposed_ns: i64,
}

/// Per device, in device order; empty when no kernel name is in
/// `comm_names` (string ids under the digest's name style).
pub fn comm_overlap(trace: &Trace, names: NameStyle, comm_names: &[i64]) -> Vec<CommOverlap> {
    if comm_names.is_empty() {
        return Vec::new();
    }
    // A bit per string id: the test runs twice per kernel.
    let max_id = comm_names.iter().copied().max().unwrap_or(0).max(0) as usize;
    let mut comm_ids = BitSet::new(max_id + 1);
    comm_names
        .iter()
        .filter(|&&n| n >= 0)
        .for_each(|&n| _ = comm_ids.insert(n as usize));
    let is_comm = |i: usize| {
        let id = trace.kernel_name_id(i, names);
        id >= 0 && comm_ids.contains(id as usize)
    };
    let comm = DeviceComm::gather(trace, is_comm);
    let mut inside = compute_inside(trace, &comm, is_comm);
    let mut rows: Vec<CommOverlap> = comm
        .into_iter()
        .map(|(device, c)| {
            let overlapped = inside
                .remove(&device)
                .map_or(0, |pieces| measure(&union_of(pieces)));
            let busy = measure(&c.union);
            CommOverlap {
                device,
                kernels: c.kernels,
                gpu_ns: c.gpu_ns,
                busy_ns: busy,
                overlapped_ns: overlapped,
                overlapped_pct: percent(overlapped as f64, busy as f64),
                exposed_ns: busy - overlapped,
            }
        })
        .collect();
    rows.sort_by_key(|r| r.device);
    rows
}

/// A device's communication kernels: their count, summed time and union.
#[derive(Default)]
struct DeviceComm {
    kernels: u64,
    gpu_ns: i64,
    /// Sorted and merged.
    union: Vec<(i64, i64)>,
}

impl DeviceComm {
    fn gather(trace: &Trace, is_comm: impl Fn(usize) -> bool) -> HashMap<i64, DeviceComm> {
        let mut devices: HashMap<i64, DeviceComm> = HashMap::default();
        for (i, k) in trace.kernels.iter().enumerate() {
            if !is_comm(i) {
                continue;
            }
            let (start, end) = (k.start, trace.kernels.end(k).max(k.start));
            let d = devices
                .entry(i64::from(trace.kernels.device(k)))
                .or_default();
            d.kernels += 1;
            d.gpu_ns += end - start;
            d.union.push((start, end));
        }
        for d in devices.values_mut() {
            d.union = union_of(std::mem::take(&mut d.union));
        }
        devices
    }
}

/// Per device, the pieces of its compute kernels that fall inside its
/// communication union, clipped to it: the union of these pieces is the
/// overlap, however many streams ran compute at once.
fn compute_inside(
    trace: &Trace,
    comm: &HashMap<i64, DeviceComm>,
    is_comm: impl Fn(usize) -> bool,
) -> HashMap<i64, Vec<(i64, i64)>> {
    let mut inside: HashMap<i64, Vec<(i64, i64)>> = HashMap::default();
    for (i, k) in trace.kernels.iter().enumerate() {
        let device = i64::from(trace.kernels.device(k));
        let Some(c) = comm.get(&device) else { continue };
        let (start, end) = (k.start, trace.kernels.end(k).max(k.start));
        // The first communication interval that ends after this kernel starts.
        let first = c.union.partition_point(|&(_, e)| e <= start);
        let overlapping = c.union[first..].iter().take_while(|&&(s, _)| s < end);
        let mut pieces = overlapping
            .map(|&(s, e)| (start.max(s), end.min(e)))
            .filter(|&(s, e)| s < e)
            .peekable();
        if pieces.peek().is_some() && !is_comm(i) {
            inside.entry(device).or_default().extend(pieces);
        }
    }
    inside
}

/// Total length of disjoint intervals.
fn measure(union: &[(i64, i64)]) -> i64 {
    union.iter().map(|(s, e)| e - s).sum()
}
