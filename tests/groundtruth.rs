//! Every report against what NVIDIA's `nsys stats` (2025.3) printed for the
//! same file (tests/data/<sample>.<report>.csv, or .csv.gz): each committed
//! sample, the 451k-kernel shared export when `../shared` has it, and a
//! SYNTHETIC 1 GB export made from that one.
//! Counts and ns totals, minima and maxima must be exact; averages, medians
//! and standard deviations must equal nsys's one-decimal rounding.

use crate::common::*;
use nsight_digest::nsys::{Digest, DigestOptions};
use nsight_digest::stats::DurationStats;
use std::collections::HashMap;

/// One CSV row: header → cell.
type Row = HashMap<String, String>;

fn assert_stats(ctx: &str, ours: &DurationStats, row: &Row, cols: [&str; 7]) {
    let [count, total, avg, med, min, max, sd] = cols;
    assert_eq!(ours.count as i64, int(row, count), "{ctx}: {count}");
    assert_eq!(ours.total_ns, int(row, total), "{ctx}: {total}");
    assert_eq!(ours.min_ns, int(row, min), "{ctx}: {min}");
    assert_eq!(ours.max_ns, int(row, max), "{ctx}: {max}");
    assert_eq!(our_tenths(ours.avg_ns), tenths(row, avg), "{ctx}: {avg}");
    assert_eq!(our_tenths(ours.median_ns), tenths(row, med), "{ctx}: {med}");
    assert_eq!(our_tenths(ours.stddev_ns), tenths(row, sd), "{ctx}: {sd}");
}

const SUM_COLS: [&str; 7] = [
    "Instances",
    "Total Time (ns)",
    "Avg (ns)",
    "Med (ns)",
    "Min (ns)",
    "Max (ns)",
    "StdDev (ns)",
];

/// Digest every committed sample and check it against its `report` CSV.
fn check_every_sample(report: &str, check: fn(&str, &Digest, &[Row])) {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        check(sample, &d, &groundtruth(sample, report));
    }
}

#[test]
fn kernels_equal_cuda_gpu_kern_sum() {
    check_every_sample("cuda_gpu_kern_sum", assert_kernels_equal);
}

/// Every row of a `cuda_gpu_kern_sum` CSV, and no other kernel.
fn assert_kernels_equal(sample: &str, d: &Digest, gt: &[Row]) {
    assert_eq!(d.kernels.len(), gt.len(), "{sample}: kernel names");
    let ours: HashMap<&str, _> = d.kernels.iter().map(|k| (k.name.as_str(), k)).collect();
    for row in gt {
        let k = ours
            .get(row["Name"].as_str())
            .unwrap_or_else(|| panic!("{sample}: missing kernel {}", row["Name"]));
        assert_stats(&format!("{sample} {}", row["Name"]), &k.time, row, SUM_COLS);
        assert_eq!(
            our_tenths(k.share_pct),
            tenths(row, "Time (%)"),
            "{sample}: share"
        );
    }
}

/// The 451k-kernel shared export against what `nsys stats` 2025.3 printed
/// for it (see samples/README.md): every report the committed samples are
/// checked against, among them the NVTX projection that nsys 2022.4 did not
/// finish in 13 minutes.
#[test]
fn large_shared_sample_equals_nsys_2025() {
    const SAMPLE: &str = "h200_llama32_eager_3steps";
    let Some(shared) = shared() else { return };
    let file = shared.join(format!("samples/nsys/{SAMPLE}.sqlite.gz"));
    if !file.exists() {
        return;
    }
    assert_every_report_equal(SAMPLE, &file);
}

/// Digest `file` and check it against all seven of `sample`'s CSVs.
fn assert_every_report_equal(sample: &str, file: &std::path::Path) {
    let d = nsight_digest::nsys::digest(file, &DigestOptions::default()).unwrap();
    assert_digest_equal(sample, &d);
}

/// Check a digest against all seven of `sample`'s CSVs.
fn assert_digest_equal(sample: &str, d: &Digest) {
    let gt = |report| groundtruth(sample, report);
    assert_kernels_equal(sample, d, &gt("cuda_gpu_kern_sum"));
    assert_nvtx_equal(sample, d, &gt("nvtx_sum"));
    assert_projection_equal(sample, d, &gt("nvtx_gpu_proj_sum"));
    assert_nvtx_kernels_equal(sample, d, &gt("nvtx_kern_sum"));
    assert_launch_equal(sample, d, &gt("cuda_kern_exec_sum"));
    assert_memory_equal(sample, d, &gt("cuda_gpu_mem_time_sum"));
    assert_api_equal(sample, d, &gt("cuda_api_sum"));
}

/// The SYNTHETIC 1 GB export that `bench/synthetic_nsys.py` makes from the
/// shared export (13 copies: 5.9 M kernels, 12.2 M runtime calls) against
/// what `nsys stats` 2025.3 printed for the same rows (samples/README.md).
/// Its 82 M correlation ids per process put the launch index in its ranked
/// form, which no real sample reaches. Skipped where `../shared` or python3
/// is missing; it writes 1 GB to the temp folder.
#[test]
fn synthetic_1gb_export_equals_nsys_2025() {
    const SAMPLE: &str = "synthetic_1gb";
    let Some(shared) = shared() else { return };
    let source = shared.join("samples/nsys/h200_llama32_eager_3steps.sqlite.gz");
    if !source.exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synthetic_1gb.sqlite");
    // Its progress lines stay out of the test log unless it fails.
    let made = std::process::Command::new("python3")
        .arg(repo().join("bench/synthetic_nsys.py"))
        .args([source.as_os_str(), file.as_os_str(), "1000".as_ref()])
        .output();
    match made {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("python3: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "bench/synthetic_nsys.py: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    assert_every_report_equal(SAMPLE, &file);
}

#[test]
fn nvtx_equals_nvtx_sum_and_gpu_projection() {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        assert_nvtx_equal(sample, &d, &groundtruth(sample, "nvtx_sum"));
        assert_projection_equal(sample, &d, &groundtruth(sample, "nvtx_gpu_proj_sum"));
    }
}

/// Every row of an `nvtx_sum` CSV, and no other range with CPU time.
fn assert_nvtx_equal(sample: &str, d: &Digest, cpu: &[Row]) {
    let by_name: HashMap<(&str, &str), _> = d
        .nvtx
        .iter()
        .map(|r| ((r.range.as_str(), r.style.as_str()), r))
        .collect();
    assert_eq!(
        d.nvtx.iter().filter(|r| r.time.count > 0).count(),
        cpu.len(),
        "{sample}"
    );
    for row in cpu {
        let r = by_name[&(row["Range"].as_str(), row["Style"].as_str())];
        assert_stats(
            &format!("{sample} {}", row["Range"]),
            &r.time,
            row,
            SUM_COLS,
        );
        assert_eq!(our_tenths(r.share_pct), tenths(row, "Time (%)"));
    }
}

/// Every row of an `nvtx_gpu_proj_sum` CSV, and no other projected range.
fn assert_projection_equal(sample: &str, d: &Digest, proj: &[Row]) {
    let by_name: HashMap<(&str, &str), _> = d
        .nvtx
        .iter()
        .map(|r| ((r.range.as_str(), r.style.as_str()), r))
        .collect();
    assert_eq!(
        d.nvtx.iter().filter(|r| r.gpu.is_some()).count(),
        proj.len(),
        "{sample}"
    );
    for row in proj {
        let ctx = format!("{sample} {} (projection)", row["Range"]);
        let g = by_name[&(row["Range"].as_str(), row["Style"].as_str())]
            .gpu
            .as_ref()
            .unwrap_or_else(|| panic!("{ctx}: no projection"));
        assert_stats(
            &ctx,
            &g.time,
            row,
            [
                "Range Instances",
                "Total Proj Time (ns)",
                "Proj Avg (ns)",
                "Proj Med (ns)",
                "Proj Min (ns)",
                "Proj Max (ns)",
                "Proj StdDev (ns)",
            ],
        );
        assert_eq!(g.range_total_ns, int(row, "Total Range Time (ns)"), "{ctx}");
        assert_eq!(g.gpu_ops as i64, int(row, "Total GPU Ops"), "{ctx}");
        assert_eq!(
            our_tenths(g.avg_gpu_ops),
            tenths(row, "Avg GPU Ops"),
            "{ctx}"
        );
        assert_eq!(
            our_tenths(g.avg_level),
            tenths(row, "Avg Range Lvl"),
            "{ctx}"
        );
        assert_eq!(
            our_tenths(g.avg_children),
            tenths(row, "Avg Num Child"),
            "{ctx}"
        );
    }
}

#[test]
fn nvtx_kernels_equal_nvtx_kern_sum() {
    check_every_sample("nvtx_kern_sum", assert_nvtx_kernels_equal);
}

/// Every row of an `nvtx_kern_sum` CSV, and no other.
fn assert_nvtx_kernels_equal(sample: &str, d: &Digest, gt: &[Row]) {
    assert_eq!(d.nvtx_kernels.len(), gt.len(), "{sample}: rows");
    let key = |range: &str, pid: &str, tid: &str, kernel: &str| {
        format!("{range}\u{1}{pid}\u{1}{tid}\u{1}{kernel}")
    };
    let ours: HashMap<String, _> = d
        .nvtx_kernels
        .iter()
        .map(|r| {
            let s = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_default();
            (
                key(
                    r.range.as_deref().unwrap_or(""),
                    &s(r.pid),
                    &s(r.tid),
                    &r.kernel,
                ),
                r,
            )
        })
        .collect();
    for row in gt {
        let k = key(
            &row["NVTX Range"],
            &row["PID"],
            &row["TID"],
            &row["Kernel Name"],
        );
        let r = ours
            .get(&k)
            .unwrap_or_else(|| panic!("{sample}: missing row {k:?}"));
        let ctx = format!("{sample} {k:?}");
        assert_eq!(r.range_instances as i64, int(row, "NVTX Inst"), "{ctx}");
        assert_eq!(r.kernel_instances as i64, int(row, "Kern Inst"), "{ctx}");
        let mut pairs = row.clone();
        // Our `time.count` counts (range, kernel) pairs, which nsys does not print.
        pairs.insert("Pairs".into(), r.time.count.to_string());
        assert_stats(
            &ctx,
            &r.time,
            &pairs,
            [
                "Pairs",
                "Total Time (ns)",
                "Avg (ns)",
                "Med (ns)",
                "Min (ns)",
                "Max (ns)",
                "StdDev (ns)",
            ],
        );
    }
}

#[test]
fn launch_equals_cuda_kern_exec_sum() {
    check_every_sample("cuda_kern_exec_sum", assert_launch_equal);
}

/// Every row of a `cuda_kern_exec_sum` CSV, and no other.
fn assert_launch_equal(sample: &str, d: &Digest, gt: &[Row]) {
    assert_eq!(d.launch.kernels.len(), gt.len(), "{sample}: rows");
    let ours: HashMap<(String, String, String, String, String), _> = d
        .launch
        .kernels
        .iter()
        .map(|r| {
            (
                (
                    r.pid.to_string(),
                    r.tid.to_string(),
                    r.device.to_string(),
                    r.api.clone(),
                    r.kernel.clone(),
                ),
                r,
            )
        })
        .collect();
    for row in gt {
        let key = (
            row["PID"].clone(),
            row["TID"].clone(),
            row["DevId"].clone(),
            row["API Name"].clone(),
            row["Kernel Name"].clone(),
        );
        let r = ours
            .get(&key)
            .unwrap_or_else(|| panic!("{sample}: missing {key:?}"));
        let ctx = format!("{sample} {key:?}");
        assert_eq!(r.queued as i64, int(row, "QCount"), "{ctx}");
        let stat_cols = |p: &'static str| -> [String; 7] {
            [
                "Count".to_string(),
                format!("{p}Total"),
                format!("{p}Avg (ns)"),
                format!("{p}Med (ns)"),
                format!("{p}Min (ns)"),
                format!("{p}Max (ns)"),
                format!("{p}StdDev (ns)"),
            ]
        };
        for (prefix, stats) in [
            ("T", Some(&r.total)),
            ("A", Some(&r.api_time)),
            ("K", Some(&r.kernel_time)),
            ("Q", r.queue.as_ref()),
        ] {
            let Some(stats) = stats else {
                assert_eq!(int(row, "QCount"), 0, "{ctx}");
                continue;
            };
            // nsys prints no total here: derive it from avg × count.
            let mut row = row.clone();
            let cols = stat_cols(prefix);
            let count = if prefix == "Q" {
                int(&row, "QCount")
            } else {
                int(&row, "Count")
            };
            row.insert("Count".into(), count.to_string());
            row.insert(cols[1].clone(), stats.total_ns.to_string());
            let avg_gt: f64 = row[&cols[2]].parse().unwrap();
            assert!(
                (stats.total_ns as f64 / count as f64 - avg_gt).abs() <= 0.05 + 1e-9,
                "{ctx}: {prefix} avg"
            );
            let c: Vec<&str> = cols.iter().map(String::as_str).collect();
            assert_stats(
                &format!("{ctx} {prefix}"),
                stats,
                &row,
                [c[0], c[1], c[2], c[3], c[4], c[5], c[6]],
            );
        }
    }
}

#[test]
fn memory_equals_cuda_gpu_mem_time_sum() {
    check_every_sample("cuda_gpu_mem_time_sum", assert_memory_equal);
}

/// Every row of a `cuda_gpu_mem_time_sum` CSV, and no other.
fn assert_memory_equal(sample: &str, d: &Digest, gt: &[Row]) {
    let ours: Vec<_> = d
        .memory
        .iter()
        .map(|m| (m.operation.as_str(), &m.time, m.share_pct))
        .collect();
    assert_named_sums(sample, &ours, gt, "Operation", "Count");
}

/// Every row of a summary CSV with one row per `name_col`, and no other:
/// `ours` holds each name's stats and share of the total.
fn assert_named_sums(
    sample: &str,
    ours: &[(&str, &DurationStats, f64)],
    gt: &[Row],
    name_col: &str,
    count_col: &'static str,
) {
    assert_eq!(ours.len(), gt.len(), "{sample}");
    for row in gt {
        let (_, time, share) = ours
            .iter()
            .find(|(name, ..)| *name == row[name_col])
            .unwrap_or_else(|| panic!("{sample}: missing {}", row[name_col]));
        let mut cols = SUM_COLS;
        cols[0] = count_col;
        assert_stats(&format!("{sample} {}", row[name_col]), time, row, cols);
        assert_eq!(our_tenths(*share), tenths(row, "Time (%)"), "{sample}");
    }
}

/// `--innermost` counts each kernel exactly once, so its pairs equal the
/// kernel table, and the per-kernel totals equal cuda_gpu_kern_sum.
#[test]
fn innermost_counts_each_kernel_once() {
    let sample = "h200_llama8_eager_1step";
    let opts = DigestOptions {
        innermost: true,
        ..Default::default()
    };
    let d = digest_sample(sample, &opts);
    let pairs: u64 = d.nvtx_kernels.iter().map(|r| r.time.count).sum();
    assert_eq!(pairs, d.source.kernels);
    let mut per_kernel: HashMap<&str, i64> = HashMap::new();
    for r in &d.nvtx_kernels {
        *per_kernel.entry(&r.kernel).or_default() += r.time.total_ns;
    }
    for row in groundtruth(sample, "cuda_gpu_kern_sum") {
        assert_eq!(
            per_kernel[row["Name"].as_str()],
            int(&row, "Total Time (ns)")
        );
    }
}

#[test]
fn api_equals_cuda_api_sum() {
    check_every_sample("cuda_api_sum", assert_api_equal);
}

/// Every row of a `cuda_api_sum` CSV, and no other.
fn assert_api_equal(sample: &str, d: &Digest, gt: &[Row]) {
    let ours: Vec<_> = d
        .api
        .iter()
        .map(|a| (a.name.as_str(), &a.time, a.share_pct))
        .collect();
    assert_named_sums(sample, &ours, gt, "Name", "Num Calls");
}

/// The seven reports under `--filter-nvtx` and `--filter-time`, against
/// what `nsys stats` 2025.3 printed with the same option for the same file
/// (tests/data/filtered/<sample>__<case>.<report>.csv.gz; samples/README.md
/// has the commands). The cases cover a push/pop range's thread (decode
/// steps, a layer), another process's work left out (the two-process
/// sample), graph kernels, and time edges that cut through kernels and
/// calls.
#[test]
fn filtered_reports_equal_nsys_stats_filters() {
    use nsight_digest::nsys::time_filter::TraceFilter;
    const DECODE: &str = "execute_context_0(0)_generation_8(8)";
    let nvtx = |spec: &str| TraceFilter::parse_nvtx(spec).unwrap();
    let time = |spec: &str| TraceFilter::parse_time(spec).unwrap();
    let eager = "h200_llama8_eager_3steps";
    let graphs = "h200_llama8_graphs_node_3steps";
    let domains = "h200_nvtx_domains_threads";
    let cases = [
        (eager, "dec_all", nvtx(DECODE)),
        (eager, "dec_5", nvtx(&format!("{DECODE}/5"))),
        (eager, "layer3_10", nvtx("model.layers.3/10")),
        (eager, "time_a", time("8000000000/9000000000")),
        // The same window written with units.
        (eager, "time_a", time("8s/9s")),
        (eager, "time_b", time("8500600000/9500900000")),
        (graphs, "dec_all", nvtx(DECODE)),
        (graphs, "capture", nvtx("cuda_graph_capture decode")),
        (graphs, "time_a", time("7800000000/8000000000")),
        (
            "h200_llama8_2procs_graphs_node_1step",
            "dec_all",
            nvtx(DECODE),
        ),
        // Named domains: created before the window, a domain's name is
        // dropped (`:step`); created inside it ("late"), it is kept.
        (domains, "step1", nvtx("step@engine/1")),
        (domains, "step2", nvtx("step@engine/2")),
        (domains, "layer4", nvtx("layer@engine/4")),
        // A start/end range on a thread other than the main one.
        (domains, "worker", nvtx("worker@engine")),
        (domains, "forward0", nvtx("forward")),
        // The main thread: NVIDIA's rule takes it for a start/end range and
        // keeps the whole process.
        (domains, "background3", nvtx("background/3")),
    ];
    for (name, case, filter) in cases {
        let opts = DigestOptions {
            filter: Some(filter),
            ..DigestOptions::default()
        };
        let d = digest_sample(name, &opts);
        assert!(d.source.filter.is_some(), "{name} {case}");
        assert_digest_equal(&format!("filtered/{name}__{case}"), &d);
    }
}

/// A window every row overlaps keeps every row: the slots renumbered by
/// the filter, the graph nodes and names kept beside the rows, all give
/// back the same digest.
#[test]
fn a_window_over_all_time_changes_no_report() {
    for name in SAMPLES {
        assert_open_window_changes_nothing(&sample(name));
    }
}
