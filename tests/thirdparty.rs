//! Other people's real exports (nsys schemas 2.9 to 3.25) from
//! `../shared/thirdparty`, and the large shared sample. They are never
//! copied into the project; these tests skip when `../shared` is absent.
//! Their ground truth comes from nsys 2022.4, whose `gpukernsum` groups by
//! name *and* grid/block, so rows are summed per name before comparing.

use crate::common::*;
use nsight_digest::nsys::{digest, DigestOptions};
use nsight_digest::DigestError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn thirdparty_exports() -> Vec<PathBuf> {
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared is absent");
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared.join("thirdparty/nsys"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "sqlite"));
    files.sort();
    files
}

/// `groundtruth/<file>.<report>.csv` beside a third-party export.
fn groundtruth_2022(file: &Path, report: &str) -> PathBuf {
    let name = file.file_name().unwrap().to_string_lossy();
    file.parent()
        .unwrap()
        .join("groundtruth")
        .join(format!("{name}.{report}.csv"))
}

/// Per kernel name: (instances, total, min, max), summed over grid/block rows.
fn per_name_2022(csv: &Path) -> HashMap<String, (i64, i64, i64, i64)> {
    let mut out: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
    for row in read_csv(csv) {
        let e = out
            .entry(row["Name"].clone())
            .or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += int(&row, "Instances");
        e.1 += int(&row, "Total Time (ns)");
        e.2 = e.2.min(int(&row, "Min (ns)"));
        e.3 = e.3.max(int(&row, "Max (ns)"));
    }
    out
}

fn assert_kernels_match(file: &Path, gt: &Path) {
    let d = digest(file, &DigestOptions::default()).unwrap();
    assert_kernels_match_digest(&d, file, gt);
}

fn assert_kernels_match_digest(d: &nsight_digest::nsys::Digest, file: &Path, gt: &Path) {
    let mut ours: HashMap<String, (i64, i64, i64, i64)> = HashMap::new();
    for k in &d.kernels {
        let e = ours
            .entry(k.name.clone())
            .or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += k.time.count as i64;
        e.1 += k.time.total_ns;
        e.2 = e.2.min(k.time.min_ns);
        e.3 = e.3.max(k.time.max_ns);
    }
    assert_eq!(ours, per_name_2022(gt), "{}", file.display());
}

#[test]
fn every_thirdparty_export_digests_or_fails_clearly() {
    let files = thirdparty_exports();
    let mut digested = 0;
    for file in &files {
        match digest(file, &DigestOptions::default()) {
            Ok(d) => {
                digested += 1;
                assert_eq!(
                    d.source.kernels as usize,
                    d.kernels
                        .iter()
                        .map(|k| k.time.count as usize)
                        .sum::<usize>()
                );
            }
            Err(DigestError::NoCudaData { .. }) => {
                assert!(
                    file.to_string_lossy().contains("Game-of-Life"),
                    "{}",
                    file.display()
                );
            }
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
    if !files.is_empty() {
        assert_eq!(
            digested,
            files.len() - 1,
            "all but the CUDA-less export digest"
        );
    }
}

/// A table the digest reads when present, but which lacks a column, is
/// named in a warning exactly when it holds rows. Some of these exports
/// carry empty tables in an older layout, and lose nothing by them.
/// As for the committed samples: a window over all time changes nothing,
/// on every schema from 2.9 on.
#[test]
fn a_window_over_all_time_changes_no_report_of_a_thirdparty_export() {
    for file in thirdparty_exports() {
        assert_open_window_changes_nothing(&file);
    }
}

#[test]
fn tables_lacking_a_column_are_warned_of_when_they_hold_rows() {
    use nsight_digest::input::{open_profile, open_readonly, InputOptions};
    use nsight_digest::nsys::{schema::Schema, trace::READ_WHEN_PRESENT};
    let (mut warned, mut empty) = (0, 0);
    for file in thirdparty_exports() {
        let Ok(d) = digest(&file, &DigestOptions::default()) else {
            continue;
        };
        let profile = open_profile(&file, &InputOptions::default()).unwrap();
        let conn = open_readonly(&profile).unwrap();
        let schema = Schema::read(&conn, &file).unwrap();
        for query in READ_WHEN_PRESENT {
            for &(table, _) in query.needs {
                if !schema.has_table(table) || schema.missing_columns(query, table).is_empty() {
                    continue;
                }
                let rows: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                let named = d
                    .source
                    .warnings
                    .iter()
                    .any(|w| w.starts_with(&format!("{table} lacks")));
                assert_eq!(
                    named,
                    rows > 0,
                    "{table} ({rows} rows) in {}",
                    file.display()
                );
                if rows > 0 {
                    warned += 1
                } else {
                    empty += 1
                }
            }
        }
    }
    if shared().is_some() {
        assert!(empty > 0, "no export has an empty table lacking a column");
    }
    eprintln!("{warned} tables warned of, {empty} empty ones not");
}

#[test]
fn thirdparty_kernel_totals_equal_gpukernsum_2022() {
    let mut compared = 0;
    for file in thirdparty_exports() {
        let gt = groundtruth_2022(&file, "gpukernsum");
        if gt.exists() {
            assert_kernels_match(&file, &gt);
            compared += 1;
        }
    }
    if shared().is_some() {
        assert!(compared >= 10, "compared {compared}");
    }
}

/// nsys 2022.4 `nvtxkernsum`: names without a ':' prefix, `None` for kernels
/// outside every range. Compared per (range, pid, tid, kernel).
#[test]
fn thirdparty_nvtx_kernels_equal_nvtxkernsum_2022() {
    let mut compared = 0;
    for file in thirdparty_exports() {
        let gt = groundtruth_2022(&file, "nvtxkernsum");
        if !gt.exists() {
            continue;
        }
        let d = digest(&file, &DigestOptions::default()).unwrap();
        assert_nvtx_kernels_match_2022(&d, &gt);
        compared += 1;
    }
    if shared().is_some() {
        assert_eq!(compared, 3);
    }
}

/// (range, pid, tid, kernel) as the 2022 CSV prints them.
type RangeThreadKernel = (String, String, String, String);

/// Compare per (range, pid, tid, kernel): kernel instances, total and max.
fn assert_nvtx_kernels_match_2022(d: &nsight_digest::nsys::Digest, gt: &Path) {
    let name = gt.display().to_string();
    let mut ours: HashMap<RangeThreadKernel, (i64, i64, i64)> = HashMap::new();
    for r in &d.nvtx_kernels {
        let range = r.range.as_deref().map_or("None".to_string(), |n| {
            n.strip_prefix(':').unwrap_or(n).to_string()
        });
        let s = |v: Option<u32>| v.map_or("None".to_string(), |x| x.to_string());
        ours.insert(
            (range, s(r.pid), s(r.tid), r.kernel.clone()),
            (r.kernel_instances as i64, r.time.total_ns, r.time.max_ns),
        );
    }
    let rows = read_csv(gt);
    for row in &rows {
        let key = (
            row["NVTX Range"].clone(),
            row["PID"].clone(),
            row["TID"].clone(),
            row["Kernel Name"].clone(),
        );
        let got = ours
            .get(&key)
            .unwrap_or_else(|| panic!("{name}: missing {key:?}"));
        assert_eq!(
            *got,
            (
                int(row, "Kern Inst"),
                int(row, "Total Time (ns)"),
                int(row, "Max (ns)")
            ),
            "{name}: {key:?}"
        );
    }
    assert_eq!(ours.len(), rows.len(), "{name}");
}

/// The 451k-kernel shared sample against its nsys 2022.4 ground truth.
#[test]
fn large_sample_equals_nsys_2022() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("samples/nsys");
    let file = dir.join("h200_llama32_eager_3steps.sqlite.gz");
    if !file.exists() {
        return;
    }
    assert_kernels_match(
        &file,
        &dir.join("groundtruth/h200_llama32_eager_3steps.nsys2022_gpukernsum.csv"),
    );
}
