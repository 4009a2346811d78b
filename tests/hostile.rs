//! Hostile inputs, generated here from the real samples by damaging a copy
//! (or written by hand where no real file shows the case, as marked). Every
//! case ends with exit code 2 and one line naming the file, or with a result;
//! never a panic, never a hang, never a change to the input.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit 0 with output, or exit 2 with one line naming the file; no panic;
/// input unchanged.
fn assert_handled(bin: &str, path: &Path, extra: &[&str]) -> i32 {
    let before = std::fs::read(path).unwrap();
    let p = path.display().to_string();
    let mut args = vec![p.as_str()];
    args.extend_from_slice(extra);
    let (code, out, err) = run(bin, &args);
    assert!(!err.contains("panicked"), "{p}: {err}");
    match code {
        0 => assert!(!out.is_empty(), "{p}: no output"),
        2 => {
            assert_eq!(
                err.lines().filter(|l| l.contains("error")).count(),
                1,
                "{p}: {err}"
            );
            assert!(err.contains(&p), "{p}: names the file: {err}");
            let reason = err.trim_end().rsplit(": ").next().unwrap_or_default();
            assert_eq!(err.matches(reason).count(), 1, "{p}: says it once: {err}");
        }
        other => panic!("{p}: exit {other}: {err}"),
    }
    assert_eq!(std::fs::read(path).unwrap(), before, "{p}: input changed");
    code
}

/// A writable copy of a committed sample, inflated.
fn copy_sample(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.sqlite"));
    std::fs::write(&p, inflate(&sample(name))).unwrap();
    p
}

/// Rebuild the kernel table without its NOT NULL constraints, so damage
/// that nsys itself would refuse can be written.
const RELAX_KERNELS: &str = "CREATE TABLE k AS SELECT * FROM CUPTI_ACTIVITY_KIND_KERNEL;
    DROP TABLE CUPTI_ACTIVITY_KIND_KERNEL;
    ALTER TABLE k RENAME TO CUPTI_ACTIVITY_KIND_KERNEL;";

fn damaged(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_sample(dir.path(), "h200_llama8_graphs_graphmode_1step");
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute_batch(RELAX_KERNELS).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    (dir, p)
}

#[test]
fn broken_kernel_cells() {
    let cases = [
        ("null start", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET start = NULL WHERE rowid % 7 = 0;", 2),
        ("text end", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = 'soon' WHERE rowid = 3;", 2),
        ("end before start", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = start - 1000 WHERE rowid % 5 = 0;", 0),
        ("a device id outside 32 bits", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET deviceId = -1 WHERE rowid = 3;", 2),
        (
            "a huge rowid (the row-count estimate must not reserve for it)",
            "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET rowid = 9000000000000000000 WHERE rowid = 5; UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET rowid = 9000000000000000000 WHERE rowid = 5;",
            0,
        ),
        (
            "duplicate correlation ids",
            "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = 7; UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET correlationId = 7;",
            0,
        ),
        ("a correlation id outside 32 bits", "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = 4294967296 WHERE rowid = 3;", 2),
        (
            "correlation id 2^32 - 1, which the call rows keep for NULL",
            "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = 4294967295 WHERE rowid = 3;",
            2,
        ),
        ("null correlation ids", "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET correlationId = NULL WHERE rowid % 3 = 0;", 0),
        ("a kernel correlation id outside 32 bits", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET correlationId = -5 WHERE rowid = 3;", 2),
        ("a kernel name id outside 32 bits", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET shortName = 4294967296 WHERE rowid = 3;", 2),
        ("null kernel correlation ids", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET correlationId = NULL WHERE rowid % 3 = 0;", 0),
        ("1 MB kernel name", "UPDATE StringIds SET value = printf('%.*c', 1048576, 'k') WHERE id IN (SELECT demangledName FROM CUPTI_ACTIVITY_KIND_KERNEL LIMIT 1);", 0),
        ("null names", "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET demangledName = NULL, shortName = NULL WHERE rowid % 3 = 0;", 0),
    ];
    for (what, sql, want) in cases {
        let (_dir, p) = damaged(sql);
        assert_eq!(assert_handled("nsys-digest", &p, &[]), want, "{what}");
        assert_handled("nsys-digest", &p, &["--format", "json"]);
        assert_handled("nsys-digest", &p, &["--filter-time", "0/9s"]);
    }
}

/// Hand-made: one kernel, which ends before it starts, and nothing else to
/// span the capture: the span runs backwards, and a time filter clips
/// its window to it.
#[test]
fn a_backwards_span_under_a_time_filter() {
    let (_dir, p) = damaged(
        "DELETE FROM ANALYSIS_DETAILS; DELETE FROM CUPTI_ACTIVITY_KIND_RUNTIME;
         DELETE FROM CUPTI_ACTIVITY_KIND_MEMCPY; DELETE FROM CUPTI_ACTIVITY_KIND_MEMSET;
         DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE rowid > (SELECT min(rowid) FROM CUPTI_ACTIVITY_KIND_KERNEL);
         UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = start - 1000;",
    );
    for window in ["1/", "-1s/", "5s/6s"] {
        assert_eq!(
            assert_handled("nsys-digest", &p, &["--filter-time", window]),
            0
        );
    }
}

#[test]
fn broken_nvtx_ranges() {
    let cases = [
        (
            "ranges that never end",
            "UPDATE NVTX_EVENTS SET end = NULL WHERE rowid % 4 = 0;",
        ),
        (
            "ranges ending on another thread",
            "UPDATE NVTX_EVENTS SET endGlobalTid = globalTid + 1 WHERE rowid % 3 = 0;",
        ),
        (
            "nested ranges with identical bounds",
            "INSERT INTO NVTX_EVENTS SELECT * FROM NVTX_EVENTS WHERE rowid % 2 = 0;",
        ),
        (
            "no text at all",
            "UPDATE NVTX_EVENTS SET text = NULL, textId = NULL;",
        ),
    ];
    for (what, sql) in cases {
        let (_dir, p) = damaged(sql);
        assert_eq!(assert_handled("nsys-digest", &p, &[]), 0, "{what}");
        assert_eq!(
            assert_handled(
                "nsys-digest",
                &p,
                &["--report", "nvtx-kernels", "--format", "csv"]
            ),
            0,
            "{what}"
        );
    }
}

#[test]
fn missing_tables_and_columns() {
    let cases = [
        ("no StringIds", "DROP TABLE StringIds;", 0),
        (
            "no runtime table",
            "DROP TABLE CUPTI_ACTIVITY_KIND_RUNTIME;",
            0,
        ),
        ("no NVTX", "DROP TABLE NVTX_EVENTS;", 0),
        (
            "no kernel grid columns",
            "ALTER TABLE CUPTI_ACTIVITY_KIND_KERNEL DROP COLUMN demangledName;",
            2,
        ),
    ];
    for (what, sql, want) in cases {
        let (_dir, p) = damaged(sql);
        assert_eq!(assert_handled("nsys-digest", &p, &[]), want, "{what}");
    }
}

/// Hand-made from a committed sample: a table that is there but lacks a
/// column the digest reads cannot be read, and the digest says so instead
/// of reporting nothing; a table that is not there, or holds no rows, says
/// nothing.
#[test]
fn an_unreadable_table_is_a_warning() {
    let cases = [
        ("CUPTI_ACTIVITY_KIND_RUNTIME", "globalTid"),
        ("NVTX_EVENTS", "globalTid"),
        ("CUPTI_ACTIVITY_KIND_MEMCPY", "bytes"),
    ];
    for (table, column) in cases {
        let (_dir, p) = damaged(&format!("ALTER TABLE {table} DROP COLUMN {column};"));
        let (code, _, err) = run("nsys-digest", &[&p.display().to_string()]);
        assert_eq!(code, 0, "{err}");
        let warned = format!("{table} lacks column(s) {column}");
        assert!(
            err.lines()
                .any(|l| l.contains("warning") && l.contains(&warned)),
            "{err}"
        );
    }
    for gone in [
        "DROP TABLE CUPTI_ACTIVITY_KIND_RUNTIME;",
        "DELETE FROM CUPTI_ACTIVITY_KIND_MEMCPY; ALTER TABLE CUPTI_ACTIVITY_KIND_MEMCPY DROP COLUMN bytes;",
    ] {
        let (_dir, p) = damaged(gone);
        let (code, _, err) = run("nsys-digest", &[&p.display().to_string()]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("lacks column"), "{gone}: {err}");
    }
}

/// Hand-made: 200 MB of zeros compress to 200 KB; the limit stops it.
#[test]
fn gzip_bomb_is_stopped_by_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.sqlite.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::best(),
    );
    let mut chunk = vec![0u8; 1 << 20];
    chunk[..16].copy_from_slice(b"SQLite format 3\0");
    enc.write_all(&chunk).unwrap();
    chunk[..16].fill(0);
    for _ in 0..199 {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap();
    let (code, _, err) = run(
        "nsys-digest",
        &[&p.display().to_string(), "--max-decompressed-mb", "64"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("exceeds the limit"), "{err}");
    let (code, _, err) = run(
        "ncu-digest",
        &[&p.display().to_string(), "--max-decompressed-mb", "64"],
    );
    assert_eq!(code, 2, "{err}");
}

fn real_details_csv() -> String {
    let path = repo().join("samples/ncu/h200_llama4L_memmetrics_525kernels.details.csv.gz");
    String::from_utf8(inflate(&path)).unwrap()
}

#[test]
fn hostile_csv_files() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_details_csv();
    let header = real.lines().next().unwrap().to_string();
    let body: Vec<&str> = real.lines().skip(1).take(200).collect();
    let wide_header: Vec<String> = (0..10_000).map(|i| format!("\"m{i}__x.sum\"")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // NaN and infinities in the values of a real export.
        (
            "nan_inf.csv",
            format!(
                "{header}\n{}",
                body.join("\n")
                    .replace("\"0.04\"", "\"nan\"")
                    .replace("\"100\"", "\"inf\"")
            )
            .into_bytes(),
        ),
        // Non-UTF-8 bytes in a real export's kernel names.
        ("latin1.csv", {
            let mut b = format!("{header}\n{}", body.join("\n")).into_bytes();
            for i in (200..b.len()).step_by(997) {
                b[i] = 0xE9;
            }
            b
        }),
        // Hand-made: duplicate header names.
        (
            "dupes.csv",
            format!(
                "{}\n{}",
                header.replace("\"Host Name\"", "\"ID\""),
                body.join("\n")
            )
            .into_bytes(),
        ),
        // Hand-made: a raw page 10,000 columns wide.
        (
            "wide.csv",
            format!(
                "\"ID\",\"Kernel Name\",{}\n\"\",\"\",{}\n\"0\",\"k\",{}\n",
                wide_header.join(","),
                vec!["\"byte\""; 10_000].join(","),
                vec!["\"1\""; 10_000].join(",")
            )
            .into_bytes(),
        ),
        // Hand-made: only a header and a units row.
        (
            "units_only.csv",
            b"\"ID\",\"Kernel Name\",\"dram__bytes.sum\"\n\"\",\"\",\"byte\"\n".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        assert_handled("ncu-digest", &p, &[]);
        assert_handled("ncu-digest", &p, &["--format", "json", "--per-launch"]);
    }
}

#[test]
fn a_folder_with_nothing_usable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    for bin in ["nsys-digest", "ncu-digest"] {
        let (code, _, err) = run(bin, &[&dir.path().display().to_string()]);
        assert_eq!(code, 2, "{bin}");
        assert!(
            err.contains("no ") && err.contains("in this folder"),
            "{bin}: {err}"
        );
    }
}

/// Another process holds the export open inside a write transaction; with
/// `immutable=1` the digest neither waits for its lock nor writes.
#[test]
fn works_while_another_process_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = copy_sample(dir.path(), "h200_llama8_graphs_node_1step");
    let holder = rusqlite::Connection::open(&p).unwrap();
    holder
        .execute_batch("BEGIN EXCLUSIVE; CREATE TABLE held(x);")
        .unwrap();
    let (code, out, err) = run(
        "nsys-digest",
        &[&p.display().to_string(), "--report", "kernels"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GPU kernels"));
    holder.execute_batch("ROLLBACK;").unwrap();
}

/// A 2 MB tmpfs as the temp folder: inflating a 10 MB export fills it.
/// Needs root to mount; skipped elsewhere.
#[test]
fn full_disk_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let (code, _, err) = run(
        "nsys-digest",
        &[
            &sample("h200_llama8_eager_3steps").display().to_string(),
            "--temp-dir",
            &dir.path().display().to_string(),
        ],
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is full"), "{err}");
    assert_eq!(leftovers, 0, "the partial copy is removed");
}

/// A `--temp-dir` that does not exist: the error is about that folder, not
/// "no such file" against an input that is there.
#[test]
fn a_missing_temp_folder_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-made");
    let input = sample("h200_llama8_eager_1step").display().to_string();
    let (code, out, err) = run(
        "nsys-digest",
        &[&input, "--temp-dir", &missing.display().to_string()],
    );
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&input), "{err}");
    assert!(
        err.contains(&format!("making a temp folder in {}", missing.display())),
        "{err}"
    );
}

/// Ctrl-C while a large export is being inflated leaves no temp files.
#[test]
fn interrupt_removes_temp_files() {
    let Some(shared) = shared() else { return };
    let big = shared.join("samples/nsys/h200_llama32_eager_3steps.sqlite.gz");
    if !big.exists() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("nsys-digest"))
        .arg(&big)
        .arg("--temp-dir")
        .arg(temp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(temp.path()).unwrap().count() == 0
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted while inflating");
    let left: Vec<_> = std::fs::read_dir(temp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?} (exit {status:?})");
}
