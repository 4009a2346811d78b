//! Reports that `nsys stats` has no counterpart for, recomputed here from
//! the raw rows of the committed samples.

use crate::common::*;
use nsight_digest::nsys::{Digest, DigestOptions};
use nsight_digest::stats::DurationStats;
use std::collections::{BTreeMap, BTreeSet};

/// (ops, busy ns, gaps, longest gap) of a set of intervals, by a plain
/// sort-and-sweep.
fn busy(mut ops: Vec<(i64, i64)>) -> (u64, i64, u64, i64) {
    ops.sort();
    let count = ops.len() as u64;
    let mut union: Vec<(i64, i64)> = Vec::new();
    for (s, e) in ops {
        match union.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => union.push((s, e)),
        }
    }
    let total = union.iter().map(|(s, e)| e - s).sum();
    let longest = union.windows(2).map(|w| w[1].0 - w[0].1).max().unwrap_or(0);
    (count, total, union.len().saturating_sub(1) as u64, longest)
}

#[test]
fn gpu_busy_is_the_union_of_kernel_and_memory_op_intervals() {
    for name in SAMPLES {
        let (_dir, conn) = sample_sql(name);
        let d = digest_sample(name, &DigestOptions::default());
        assert_busy_is_raw_union(name, &conn, &d);
    }
}

/// Every export seen lists a device's kernels in start order, which the
/// one-pass union relies on; this copy moves the first kernel to the end
/// of its table, so the union must be found from interval lists instead.
#[test]
fn gpu_busy_holds_when_kernels_arrive_out_of_start_order() {
    let name = "h200_llama8_graphs_node_1step";
    let (dir, conn) = sample_sql(name);
    conn.execute_batch(
        "CREATE TEMP TABLE first AS SELECT * FROM CUPTI_ACTIVITY_KIND_KERNEL
             WHERE rowid = (SELECT min(rowid) FROM CUPTI_ACTIVITY_KIND_KERNEL);
         DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL
             WHERE rowid = (SELECT min(rowid) FROM CUPTI_ACTIVITY_KIND_KERNEL);
         INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL SELECT * FROM first;
         DROP TABLE first;",
    )
    .unwrap();
    let (last_start, earlier_max): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT start FROM CUPTI_ACTIVITY_KIND_KERNEL ORDER BY rowid DESC LIMIT 1),
                    (SELECT max(start) FROM CUPTI_ACTIVITY_KIND_KERNEL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        last_start < earlier_max,
        "the moved kernel is not out of order"
    );
    let d = nsight_digest::nsys::digest(&dir.path().join("s.sqlite"), &DigestOptions::default())
        .unwrap();
    assert_busy_is_raw_union(name, &conn, &d);
}

/// No real export seen has copies without a process beside kernels with
/// one, so this copy of a one-process sample drops the copies' `globalPid`:
/// its streams must not split into an unknown process and the real one.
#[test]
fn gpu_busy_keeps_one_process_whole_when_a_table_lacks_its_process() {
    let name = "h200_llama8_eager_1step";
    let (dir, conn) = sample_sql(name);
    let nulled = conn
        .execute("UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET globalPid = NULL", [])
        .unwrap();
    assert!(nulled > 0);
    let d = nsight_digest::nsys::digest(&dir.path().join("s.sqlite"), &DigestOptions::default())
        .unwrap();
    assert!(d.launch.busy.iter().all(|r| r.pid.is_none()));
    assert_busy_is_raw_union(name, &conn, &d);
}

/// (device, pid, stream, (start, end)) of one kernel or memory operation.
type RawOp = (i64, Option<u32>, i64, (i64, i64));
/// (device, pid where several processes ran, stream).
type StreamOfProcess = (i64, Option<u32>, i64);

/// Each busy row equals the union of its device's or stream's raw ops. A
/// stream is its process's: where ops came from several processes, each
/// numbers its streams alike, and the rows name the process.
fn assert_busy_is_raw_union(name: &str, conn: &rusqlite::Connection, d: &Digest) {
    // A table the capture had nothing for is absent from the export.
    let sql = ["KERNEL", "MEMCPY", "MEMSET"]
        .iter()
        .map(|kind| format!("CUPTI_ACTIVITY_KIND_{kind}"))
        .filter(|table| {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [table],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                > 0
        })
        .map(|table| {
            format!(
                "SELECT deviceId, (globalPid >> 24) & 16777215, streamId, start, end FROM {table}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut stmt = conn.prepare(&sql).unwrap();
    let mut by_device: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let ops: Vec<RawOp> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, (r.get(3)?, r.get(4)?)))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let pids: BTreeSet<u32> = ops.iter().filter_map(|op| op.1).collect();
    let several = pids.len() > 1;
    let mut by_stream: BTreeMap<StreamOfProcess, Vec<(i64, i64)>> = BTreeMap::new();
    for (device, pid, stream, op) in ops {
        by_device.entry(device).or_default().push(op);
        let pid = pid.filter(|_| several);
        by_stream.entry((device, pid, stream)).or_default().push(op);
    }
    let span = d.source.span_ns.unwrap();
    assert_eq!(
        d.launch.busy.len(),
        by_device.len() + by_stream.len(),
        "{name}"
    );
    let expected = by_device
        .into_iter()
        .map(|(dev, ops)| ((dev, None, None), ops))
        .chain(
            by_stream
                .into_iter()
                .map(|((dev, pid, st), ops)| ((dev, pid, Some(st)), ops)),
        );
    for ((device, pid, stream), ops) in expected {
        let row = d
            .launch
            .busy
            .iter()
            .find(|r| (r.device, r.pid, r.stream) == (device, pid, stream))
            .unwrap_or_else(|| panic!("{name}: no row for {device}/{pid:?}/{stream:?}"));
        let (count, total, gaps, longest) = busy(ops);
        let ctx = format!("{name} device {device} pid {pid:?} stream {stream:?}");
        assert_eq!(row.ops, count, "{ctx}");
        assert_eq!(row.busy_ns, total, "{ctx}");
        assert_eq!(row.idle_ns, (span - total).max(0), "{ctx}");
        assert_eq!(row.gaps, gaps, "{ctx}");
        assert_eq!(row.longest_gap_ns, longest, "{ctx}");
    }
}

/// The reports keep a duration in 4 bytes and one that does not fit (over
/// 4.29 s, or negative) in 8 (`DurationList`). No real sample has such a
/// kernel, so every kernel's end is moved 2^32 ns later in a copy: every
/// kernel duration then takes the long path, and each `nvtx-kernels` and
/// `kernels` row must move by exactly that.
#[test]
fn nvtx_kernels_rows_move_exactly_with_durations_over_32_bits() {
    const SHIFT: i64 = 1 << 32;
    let name = "h200_llama8_eager_1step";
    let (dir, conn) = sample_sql(name);
    let path = dir.path().join("s.sqlite");
    let opts = DigestOptions::default();
    let key = |r: &nsight_digest::nsys::reports::NvtxKernelSummary| {
        (r.range.clone(), r.style, r.pid, r.tid, r.kernel.clone())
    };
    let digest_before = nsight_digest::nsys::digest(&path, &opts).unwrap();
    let before: BTreeMap<_, _> = digest_before
        .nvtx_kernels
        .into_iter()
        .map(|r| (key(&r), r))
        .collect();
    conn.execute_batch(&format!(
        "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = end + {SHIFT};"
    ))
    .unwrap();
    drop(conn);
    let digest_after = nsight_digest::nsys::digest(&path, &opts).unwrap();
    let after = digest_after.nvtx_kernels;
    assert_eq!(after.len(), before.len());
    assert!(after.len() > 10, "only {} rows", after.len());
    let moved = |t: &DurationStats, u: &DurationStats| {
        assert_eq!(u.count, t.count);
        assert_eq!(u.total_ns, t.total_ns + t.count as i64 * SHIFT);
        assert_eq!(u.min_ns, t.min_ns + SHIFT);
        assert_eq!(u.max_ns, t.max_ns + SHIFT);
        assert_eq!(u.median_ns, t.median_ns + SHIFT as f64);
        assert!((u.avg_ns - (t.avg_ns + SHIFT as f64)).abs() < 1e-3);
        assert!((u.stddev_ns - t.stddev_ns).abs() < 1e-3);
    };
    for a in after {
        let b = &before[&key(&a)];
        assert_eq!(a.range_instances, b.range_instances);
        assert_eq!(a.kernel_instances, b.kernel_instances);
        moved(&b.time, &a.time);
    }
    let kernels_before: BTreeMap<_, _> = digest_before
        .kernels
        .iter()
        .map(|k| ((k.name.clone(), k.pid, k.device), &k.time))
        .collect();
    assert_eq!(digest_after.kernels.len(), kernels_before.len());
    for k in &digest_after.kernels {
        moved(kernels_before[&(k.name.clone(), k.pid, k.device)], &k.time);
    }
}

/// `--by-process` on a profile of two processes: one row per (process,
/// device, kernel name). Per name the rows add up to the merged row, which
/// the ground-truth tests hold equal to `cuda_gpu_kern_sum`; per process
/// they add up to that process's kernels in the export.
#[test]
fn kernels_by_process_split_the_merged_rows() {
    let sample = "h200_llama8_2procs_graphs_node_1step";
    let (_dir, conn) = sample_sql(sample);
    let merged = digest_sample(sample, &DigestOptions::default());
    let split = digest_sample(
        sample,
        &DigestOptions {
            kernels_by_process: true,
            ..Default::default()
        },
    );
    assert!(merged.kernels.iter().all(|k| k.pid.is_none()));
    let mut per_name: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    let mut per_pid: BTreeMap<u32, (u64, i64)> = BTreeMap::new();
    for k in &split.kernels {
        assert_eq!(k.device, Some(0), "{}", k.name);
        for e in [
            per_name.entry(&k.name).or_default(),
            per_pid.entry(k.pid.unwrap()).or_default(),
        ] {
            e.0 += k.time.count;
            e.1 += k.time.total_ns;
        }
    }
    let merged_per_name: BTreeMap<&str, (u64, i64)> = merged
        .kernels
        .iter()
        .map(|k| (k.name.as_str(), (k.time.count, k.time.total_ns)))
        .collect();
    assert_eq!(per_name, merged_per_name);
    let raw: BTreeMap<u32, (u64, i64)> = conn
        .prepare(
            "SELECT (globalPid >> 24) & 16777215, count(*), sum(end - start) \
             FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(per_pid, raw);
    assert_eq!(raw.len(), 2);
}
