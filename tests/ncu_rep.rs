//! `.ncu-rep` reports, read through `ncu --import … --csv --page raw
//! --print-units base`.
//!
//! Where `ncu` is installed, the real reports under `../shared` must digest
//! as the CSV that ncu prints for them. Everywhere else the process
//! handling is checked with stand-ins for `ncu`, small shell scripts made
//! by hand, since no real ncu is here: some print a committed sample (for
//! the batch 8/16 pair, the very text the real ncu printed for their
//! reports), one fails as ncu does on a file it cannot load, one never
//! ends, one refuses `--print-units` as ncu 2020.1 would. The report they are handed is a stand-in too, four magic bytes:
//! no report is committed.

use crate::common::*;
use nsight_digest::ncu::report_import::{IMPORT_ARGS, MAGIC};
use nsight_digest::nvidia_tools::{locate, NvidiaTool};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A stand-in report, alone in a temp folder of its own.
fn stand_in_report() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.ncu-rep");
    std::fs::write(&p, [MAGIC, b"stand-in"].concat()).unwrap();
    (dir, p)
}

/// A folder holding an `ncu` script with this body.
fn fake_ncu(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ncu");
    let tools = "PATH=/bin:/usr/bin; export PATH";
    std::fs::write(&script, format!("#!/bin/sh\n{tools}\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A stand-in `ncu` that prints a committed sample's text, and the
/// inflated text it prints, which must live as long as it does.
fn ncu_printing_sample(csv: &Path) -> (tempfile::NamedTempFile, tempfile::TempDir) {
    let text = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(text.path(), inflate(csv)).unwrap();
    let ncu = fake_ncu(&format!("cat '{}'", text.path().display()));
    (text, ncu)
}

/// ncu-digest with `PATH` set to `path` alone and `NCU` naming the `ncu`
/// there, or nothing, so that an `ncu` installed on this machine is never
/// the one found.
fn ncu_digest(path: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::cargo_bin("ncu-digest")
        .unwrap()
        .args(args)
        .env("PATH", path)
        .env("NCU", path.join("ncu"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ncu-digest refusing its input: exit 2, nothing on stdout, and one
/// error line, which is returned.
fn refused(path: &Path, args: &[&str]) -> String {
    let (code, out, err) = ncu_digest(path, args);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// The JSON digest without the input's name, which differs by design.
fn without_file(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["source"]["file"] = serde_json::Value::Null;
    v
}

#[test]
fn a_report_without_ncu_names_the_export_command() {
    let (dir, report) = stand_in_report();
    let err = refused(dir.path(), &[&report.display().to_string()]);
    assert!(err.contains("needs `ncu`"), "{err}");
    assert!(err.contains("NCU="), "{err}");
    assert!(err.contains("ncu --import"), "{err}");
}

/// Without `NCU`, the `ncu` on PATH is the one run.
#[test]
fn ncu_on_path_is_found_without_the_variable() {
    let csv = repo().join("samples/ncu/h200_llama2L_fullset_40kernels.raw.csv.gz");
    let (_text, ncu) = ncu_printing_sample(&csv);
    let (_dir, report) = stand_in_report();
    let out = assert_cmd::Command::cargo_bin("ncu-digest")
        .unwrap()
        .args([&report.display().to_string(), "--format", "json"])
        .env("PATH", ncu.path())
        .env_remove("NCU")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let (_, want, _) = ncu_digest(
        ncu.path(),
        &[&csv.display().to_string(), "--format", "json"],
    );
    assert_eq!(
        without_file(&String::from_utf8_lossy(&out.stdout)),
        without_file(&want)
    );
}

#[test]
fn a_report_streams_through_ncu_like_the_csv() {
    let csv = repo().join("samples/ncu/h200_llama4L_memmetrics_525kernels.raw_baseunits.csv.gz");
    let (_text, ncu) = ncu_printing_sample(&csv);
    let (_dir, report) = stand_in_report();
    let (code, out, err) = ncu_digest(
        ncu.path(),
        &[&report.display().to_string(), "--format", "json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, want, err) = ncu_digest(
        ncu.path(),
        &[&csv.display().to_string(), "--format", "json"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(without_file(&out), without_file(&want));
}

/// ncu 2025.3.1 prints why it cannot load a report on stdout, as these
/// lines (the first two as it printed them for a damaged report); the
/// same lines on stderr give the same error.
#[test]
fn a_report_ncu_cannot_load_is_one_line_with_its_reason() {
    for channel in ["", ">&2"] {
        let ncu = fake_ncu(&format!(
            "echo \"==ERROR== Failed to load report file 'run.ncu-rep'.\" {channel}\n\
             echo '==ERROR== The report file version is not compatible with this version of Nsight Compute.' {channel}\n\
             echo 'some other line' >&2\n\
             exit 1",
        ));
        let (_dir, report) = stand_in_report();
        let err = refused(ncu.path(), &[&report.display().to_string()]);
        assert!(err.contains("run.ncu-rep"), "{err}");
        assert!(
            err.contains("report file version is not compatible"),
            "{err}"
        );
    }
}

/// ncu prints text that is no CSV and then keeps running: the read ends
/// at once and ncu is stopped, instead of the digest waiting for it.
#[test]
fn a_read_that_fails_early_does_not_wait_for_ncu() {
    let ncu = fake_ncu("head -c 20000000 /dev/zero | tr '\\0' x; exec sleep 300");
    let (_dir, report) = stand_in_report();
    let started = Instant::now();
    let (code, _, err) = ncu_digest(ncu.path(), &[&report.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");
}

/// A stand-in for ncu 2020.1, which spells `--print-units` as `--units`:
/// it refuses an option it does not know in the line ncu 2025.3.1 prints
/// on stdout for one, and counts its runs in `runs`. Given `--units base`,
/// it prints `text`, or refuses that too when `text` is `None`.
fn ncu_of_2020(runs: &Path, text: Option<&Path>) -> tempfile::TempDir {
    let print = match text {
        Some(t) => format!("cat '{}'", t.display()),
        None => "echo \"==ERROR== unrecognised option '--units'. Use --help for further details.\"; exit 1".into(),
    };
    fake_ncu(&format!(
        "echo run >> '{}'\n\
         case \"$*\" in *--print-units*)\n\
         echo \"==ERROR== unrecognised option '--print-units'. Use --help for further details.\"\n\
         exit 1;; esac\n\
         case \"$*\" in *'--page raw --units base --import '*) {print};;\n\
         *) echo \"==ERROR== unexpected arguments: $*\" >&2; exit 1;; esac",
        runs.display()
    ))
}

/// An ncu that refuses `--print-units` is asked once more with ncu
/// 2020.1's `--units base`, and its text then digests as the CSV.
#[test]
fn an_ncu_that_refuses_print_units_is_asked_for_units() {
    let (_texts, texts) = raw_texts();
    let runs = tempfile::NamedTempFile::new().unwrap();
    let ncu = ncu_of_2020(runs.path(), Some(&texts[0]));
    let (_dir, report) = stand_in_report();
    let (code, out, err) = ncu_digest(
        ncu.path(),
        &[&report.display().to_string(), "--format", "json"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(runs.path())
            .unwrap()
            .lines()
            .count(),
        2
    );
    let (_, want, _) = ncu_digest(
        ncu.path(),
        &[&texts[0].display().to_string(), "--format", "json"],
    );
    assert_eq!(without_file(&out), without_file(&want));
}

/// When the old spelling is refused too, the read ends with that refusal,
/// after two runs of ncu and no more.
#[test]
fn an_ncu_refusing_both_spellings_is_one_error_line() {
    let runs = tempfile::NamedTempFile::new().unwrap();
    let ncu = ncu_of_2020(runs.path(), None);
    let (_dir, report) = stand_in_report();
    let err = refused(ncu.path(), &[&report.display().to_string()]);
    assert!(err.contains("run.ncu-rep"), "{err}");
    assert!(err.contains("'--units'"), "{err}");
    assert_eq!(
        std::fs::read_to_string(runs.path())
            .unwrap()
            .lines()
            .count(),
        2
    );
}

/// With a real `ncu`, each real report under `../shared` digests as the
/// CSV ncu prints for it, written to a file first.
#[test]
fn real_reports_digest_as_their_csv_export() {
    let (Some(shared), Ok(ncu)) = (shared(), locate(NvidiaTool::Ncu)) else {
        eprintln!("skipped: needs ../shared and an installed ncu");
        return;
    };
    let dir = shared.join("thirdparty/ncu");
    let reports: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".ncu-rep"))
        .collect();
    assert!(!reports.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    for report in &reports {
        let csv = tmp.path().join("export.csv");
        let printed = std::process::Command::new(&ncu)
            .args(IMPORT_ARGS)
            .arg(report)
            .output()
            .unwrap();
        assert!(printed.status.success(), "{}", report.display());
        std::fs::write(&csv, printed.stdout).unwrap();
        let (code, a, err) = run(
            "ncu-digest",
            &[&report.display().to_string(), "--format", "json"],
        );
        assert_eq!(code, 0, "{}: {err}", report.display());
        let (_, b, _) = run(
            "ncu-digest",
            &[&csv.display().to_string(), "--format", "json"],
        );
        assert_eq!(without_file(&a), without_file(&b), "{}", report.display());
    }
}

/// What the real `ncu` printed for two real reports (the committed batch
/// 8/16 pair, see `samples/README.md`), in files a stand-in `ncu` can print.
fn raw_texts() -> (tempfile::TempDir, [PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "h200_llama2L_memmetrics_60kernels_batch8.raw_baseunits.csv.gz",
        "h200_llama2L_memmetrics_60kernels_batch16.raw_baseunits.csv.gz",
    ];
    let texts = names.map(|n| {
        let text = dir.path().join(n.trim_end_matches(".gz"));
        std::fs::write(&text, inflate(&repo().join("samples/ncu").join(n))).unwrap();
        text
    });
    (dir, texts)
}

/// A stand-in `ncu` that prints the first text for a report named `base…`
/// or in a folder named so, and the second for any other. It fails as ncu
/// does on an unknown option unless asked for the raw page in base units,
/// the text whose numbers ncu does not round.
fn ncu_printing(texts: &[PathBuf; 2]) -> tempfile::TempDir {
    fake_ncu(&format!(
        "case \"$*\" in *'--page raw --print-units base --import '*) ;;\n\
         *) echo \"==ERROR== unexpected arguments: $*\" >&2; exit 1;; esac\n\
         for a; do report=$a; done\n\
         case \"$report\" in */base[.-]*) cat '{}';; *) cat '{}';; esac",
        texts[0].display(),
        texts[1].display()
    ))
}

fn json_rows(out: &str) -> Vec<serde_json::Value> {
    let mut rows: Vec<serde_json::Value> = serde_json::from_str(out).unwrap();
    for r in &mut rows {
        r["file"] = serde_json::Value::Null;
    }
    rows
}

/// A folder that holds reports and no CSV is read through ncu: its table
/// is the one its CSV exports give. Without ncu, each report is one error
/// line.
#[test]
fn a_folder_of_reports_is_read_through_ncu() {
    let (_texts, texts) = raw_texts();
    let ncu = ncu_printing(&texts);
    let reports = tempfile::tempdir().unwrap();
    let sub = reports.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("base.ncu-rep"), MAGIC).unwrap();
    std::fs::write(sub.join("new.ncu-rep"), MAGIC).unwrap();
    let folder = reports.path().display().to_string();
    let (code, out, err) = ncu_digest(ncu.path(), &[&folder, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let exports = tempfile::tempdir().unwrap();
    std::fs::copy(&texts[0], exports.path().join("base.csv")).unwrap();
    std::fs::copy(&texts[1], exports.path().join("new.csv")).unwrap();
    let csv_folder = exports.path().display().to_string();
    let (_, want, _) = ncu_digest(ncu.path(), &[&csv_folder, "--format", "json"]);
    assert_eq!(json_rows(&out), json_rows(&want));

    let nowhere = tempfile::tempdir().unwrap();
    let (code, out, err) = ncu_digest(nowhere.path(), &[&folder]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.contains("ncu --import")), "{err}");
}

/// A report with a CSV in its folder is left to the CSV, whatever its
/// name: the stand-in `ncu` here fails if it is run. A CSV named after the
/// report is its export; beside any other, the report is named in a
/// warning, since that CSV may be another profile's; once, although the
/// scan sees it both as a file to choose and as a report to warn about.
#[test]
fn a_report_beside_a_csv_is_left_to_it() {
    let (_texts, texts) = raw_texts();
    let ncu = fake_ncu("echo '==ERROR== must not be run' >&2; exit 1");
    for (csv_name, warned) in [("k.details.csv", false), ("details.csv", true)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.ncu-rep"), MAGIC).unwrap();
        let csv = dir.path().join(csv_name);
        std::fs::copy(&texts[1], &csv).unwrap();
        let folder = dir.path().display().to_string();
        let (code, out, err) = ncu_digest(ncu.path(), &[&folder, "--format", "json"]);
        assert_eq!(code, Some(0), "{err}");
        let (_, want, _) = ncu_digest(
            ncu.path(),
            &[&csv.display().to_string(), "--format", "json"],
        );
        assert_eq!(out, want);
        // A diff of the folder with itself reads the same file on each
        // side, and warns once per side.
        let (code, _, diff_err) = ncu_digest(ncu.path(), &["diff", &folder, &folder]);
        assert_eq!(code, Some(0), "{diff_err}");
        for (err, lines) in [(err, 1), (diff_err, 2)] {
            match warned {
                false => assert!(err.is_empty(), "{csv_name}: {err}"),
                true => {
                    assert_eq!(err.lines().count(), lines, "{err}");
                    assert!(
                        err.lines()
                            .all(|l| l.contains("warning") && l.contains("k.ncu-rep")),
                        "{err}"
                    );
                }
            }
        }
    }
}

/// Two folders of reports are compared by file name, as their exports are.
#[test]
fn folders_of_reports_diff_like_their_exports() {
    let (_texts, texts) = raw_texts();
    let ncu = ncu_printing(&texts);
    let root = tempfile::tempdir().unwrap();
    let diff_of = |ext: &str, write: &dyn Fn(&Path, usize)| {
        for (i, side) in ["base", "new"].iter().enumerate() {
            let folder = root.path().join(format!("{side}-{ext}"));
            std::fs::create_dir(&folder).unwrap();
            write(&folder.join(format!("run.{ext}")), i);
        }
        let arg = |side: &str| {
            root.path()
                .join(format!("{side}-{ext}"))
                .display()
                .to_string()
        };
        let (code, out, err) = ncu_digest(
            ncu.path(),
            &["diff", &arg("base"), &arg("new"), "--format", "json"],
        );
        assert_eq!(code, Some(0), "{err}");
        let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["base"] = serde_json::Value::Null;
        v["new"] = serde_json::Value::Null;
        v
    };
    let from_reports = diff_of("ncu-rep", &|p, _| std::fs::write(p, MAGIC).unwrap());
    let from_csv = diff_of("csv", &|p, i| {
        std::fs::copy(&texts[i], p).unwrap();
    });
    assert!(from_csv["rows"].as_array().is_some_and(|r| !r.is_empty()));
    assert_eq!(from_reports, from_csv);
}
