//! Links every GPU operation to the API call that launched it. The join key
//! is (process, correlationId): correlation ids repeat across processes.
//! All kernels of one CUDA graph launch share that launch's correlation id.

use super::trace::{global_id, Trace};
use rustc_hash::FxHashMap;

/// For each kernel and memory operation, the index of its launching API call.
#[derive(Debug, Default)]
pub struct LaunchIndex {
    pub kernel_call: Vec<Option<u32>>,
    pub memop_call: Vec<Option<u32>>,
    /// Graph trace mode rows: the `cudaGraphLaunch` behind each.
    pub graph_exec_call: Vec<Option<u32>>,
}

impl LaunchIndex {
    pub fn build(trace: &Trace) -> LaunchIndex {
        // Key only the calls GPU work points at, so the map stays as small as
        // the GPU tables rather than the (larger) runtime table.
        let mut wanted: FxHashMap<(i64, i64), Option<u32>> = FxHashMap::default();
        wanted.reserve(trace.kernels.len() / 2 + trace.memops.len());
        let gpu_keys = trace
            .kernels
            .iter()
            .map(|k| (k.global_pid, k.correlation))
            .chain(trace.memops.iter().map(|m| (m.global_pid, m.correlation)))
            .chain(
                trace
                    .graph_executions
                    .iter()
                    .map(|g| (g.global_pid, g.correlation)),
            );
        for (pid, corr) in gpu_keys {
            if let Some(pid) = pid {
                wanted.entry((pid, corr)).or_insert(None);
            }
        }
        for (i, call) in trace.api_calls.iter().enumerate() {
            let key = (global_id::process(call.global_tid), call.correlation);
            if let Some(slot) = wanted.get_mut(&key) {
                slot.get_or_insert(i as u32);
            }
        }
        let lookup = |pid: Option<i64>, corr: i64| {
            pid.and_then(|p| wanted.get(&(p, corr)).copied().flatten())
        };
        LaunchIndex {
            kernel_call: trace
                .kernels
                .iter()
                .map(|k| lookup(k.global_pid, k.correlation))
                .collect(),
            memop_call: trace
                .memops
                .iter()
                .map(|m| lookup(m.global_pid, m.correlation))
                .collect(),
            graph_exec_call: trace
                .graph_executions
                .iter()
                .map(|g| lookup(g.global_pid, g.correlation))
                .collect(),
        }
    }
}
