//! Links every GPU operation to the API call that launched it. The join key
//! is (process, correlationId): correlation ids repeat across processes.
//! All kernels of one CUDA graph launch share that launch's correlation id.
//! Correlation ids are small consecutive integers per process, so each
//! process gets a dense array indexed by id; a hash map takes over when a
//! process's ids are too sparse for that.

use super::trace::{global_id, Trace};
use rustc_hash::FxHashMap;

/// For each kernel and memory operation, the index of its launching API call.
#[derive(Debug, Default)]
pub struct LaunchIndex {
    pub kernel_call: Vec<Option<u32>>,
    pub memop_call: Vec<Option<u32>>,
    /// Graph trace mode rows: the `cudaGraphLaunch` behind each.
    pub graph_exec_call: Vec<Option<u32>>,
    /// API calls whose (process, correlation id) an earlier call already had.
    pub duplicate_calls: u64,
}

/// correlationId → API call index, for one process.
enum CallsById {
    Dense { min: i64, calls: Vec<u32> },
    Sparse(FxHashMap<i64, u32>),
}

const NONE: u32 = u32::MAX;

impl CallsById {
    /// An empty table for `count` ids between `min` and `max`.
    fn with_range(min: i64, max: i64, count: usize) -> CallsById {
        let span = max.saturating_sub(min).saturating_add(1);
        // Up to 8 slots per call: 32 bytes per call at worst, still less than a hash map.
        if span > 0 && span <= 8 * count as i64 + 4096 {
            CallsById::Dense {
                min,
                calls: vec![NONE; span as usize],
            }
        } else {
            CallsById::Sparse(FxHashMap::default())
        }
    }

    /// Record a call; the first call with an id wins, as in a join.
    /// Returns false when the id was taken.
    fn insert(&mut self, corr: i64, call: u32) -> bool {
        match self {
            CallsById::Dense { min, calls } => {
                let slot = &mut calls[(corr - *min) as usize];
                let fresh = *slot == NONE;
                if fresh {
                    *slot = call;
                }
                fresh
            }
            CallsById::Sparse(map) => match map.entry(corr) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(call);
                    true
                }
            },
        }
    }

    #[cfg(test)]
    fn build(ids: &[(i64, u32)]) -> CallsById {
        let (min, max) = ids.iter().fold((i64::MAX, i64::MIN), |(lo, hi), (c, _)| {
            (lo.min(*c), hi.max(*c))
        });
        let mut t = CallsById::with_range(min, max, ids.len());
        for &(c, i) in ids {
            t.insert(c, i);
        }
        t
    }

    fn get(&self, corr: i64) -> Option<u32> {
        match self {
            CallsById::Dense { min, calls } => corr
                .checked_sub(*min)
                .and_then(|off| calls.get(usize::try_from(off).ok()?))
                .copied()
                .filter(|&i| i != NONE),
            CallsById::Sparse(map) => map.get(&corr).copied(),
        }
    }
}

impl LaunchIndex {
    pub fn build(trace: &Trace) -> LaunchIndex {
        // Pass 1: id range and count per process. Calls come in long runs
        // from one process, so the last process is remembered.
        let mut ranges: FxHashMap<i64, (i64, i64, usize)> = FxHashMap::default();
        let mut last: Option<(i64, (i64, i64, usize))> = None;
        for call in &trace.api_calls {
            let p = global_id::process(call.global_tid);
            let r = match &mut last {
                Some((lp, r)) if *lp == p => r,
                _ => {
                    if let Some((lp, r)) = last.take() {
                        ranges.insert(lp, r);
                    }
                    last = Some((
                        p,
                        ranges.get(&p).copied().unwrap_or((i64::MAX, i64::MIN, 0)),
                    ));
                    &mut last.as_mut().unwrap().1
                }
            };
            r.0 = r.0.min(call.correlation);
            r.1 = r.1.max(call.correlation);
            r.2 += 1;
        }
        if let Some((lp, r)) = last {
            ranges.insert(lp, r);
        }
        // Pass 2: fill each process's table.
        let mut index: FxHashMap<i64, CallsById> = ranges
            .into_iter()
            .map(|(p, (min, max, count))| (p, CallsById::with_range(min, max, count)))
            .collect();
        let mut duplicate_calls = 0;
        for (i, call) in trace.api_calls.iter().enumerate() {
            if let Some(t) = index.get_mut(&global_id::process(call.global_tid)) {
                duplicate_calls += u64::from(!t.insert(call.correlation, i as u32));
            }
        }
        let lookup = |pid: Option<i64>, corr: i64| index.get(&pid?)?.get(corr);
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
            duplicate_calls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_agree_and_first_call_wins() {
        let ids = vec![(5, 0), (7, 1), (5, 2), (9, 3)];
        let dense = CallsById::build(&ids);
        assert!(matches!(dense, CallsById::Dense { .. }));
        let sparse_ids: Vec<(i64, u32)> =
            ids.iter().map(|&(c, i)| (c * 1_000_000_007, i)).collect();
        let sparse = CallsById::build(&sparse_ids);
        assert!(matches!(sparse, CallsById::Sparse(_)));
        for (c, want) in [
            (5, Some(0)),
            (7, Some(1)),
            (9, Some(3)),
            (6, None),
            (4, None),
            (99, None),
        ] {
            assert_eq!(dense.get(c), want, "{c}");
            assert_eq!(sparse.get(c * 1_000_000_007), want, "{c}");
        }
    }
}
