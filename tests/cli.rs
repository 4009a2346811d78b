//! The binary as a user runs it: default digest, each report and format.

use crate::common::*;

fn sample_arg(name: &str) -> String {
    sample(name).display().to_string()
}

#[test]
fn default_digest_shows_facts_and_top_tables() {
    let (code, out, err) = run("nsys-digest", &[&sample_arg("h200_llama8_eager_1step")]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "NVIDIA H200",
        "2025.3",
        "GPU kernels",
        "NVTX ranges",
        "Memory operations",
        "Idle (%)",
        "GPU time by kernel category",
    ] {
        assert!(out.contains(needle), "missing {needle}");
    }
    // Nine sections of ten rows at most, and their notes: a page, not a
    // timeline.
    assert!(
        out.lines().count() < 100,
        "one page: {} lines",
        out.lines().count()
    );
}

#[test]
fn csv_headers_follow_the_documented_columns() {
    let cases = [
        ("kernels", "name,instances,total_ns,avg_ns,median_ns,min_ns,max_ns,stddev_ns,share_pct"),
        ("nvtx-kernels", "range,kernel,pid,tid,instances,total_ns,avg_ns,median_ns,min_ns,max_ns,stddev_ns"),
        ("nvtx", "range,style,instances,total_ns,avg_ns,median_ns,min_ns,max_ns,stddev_ns,proj_total_ns,gpu_ops"),
        ("categories", "phase,category,gpu_ns,share_of_phase_pct,instances,kernel_names"),
        ("steps", "step,phase,duration_ns,vs_phase_median,gpu_ns,kernels,gpu_busy_pct,api_calls,api_ns,tokens,start_ns,range,filter_index"),
    ];
    for (report, header) in cases {
        let (code, out, err) = run(
            "nsys-digest",
            &[
                &sample_arg("h200_llama8_eager_1step"),
                "--report",
                report,
                "--format",
                "csv",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().next(), Some(header), "{report}");
    }
}

/// Communication is a report, and a section of the default digest, only
/// where kernels communicate.
#[test]
fn communication_shows_where_kernels_communicate() {
    let nccl = sample_arg("h200_nccl_onerank_allreduce_overlap");
    let (code, out, err) = run("nsys-digest", &[&nccl, "-r", "communication", "-f", "csv"]);
    assert_eq!(code, 0, "{err}");
    let header = "device,kernels,gpu_ns,busy_ns,overlapped_ns,overlapped_pct,exposed_ns";
    assert_eq!(out.lines().collect::<Vec<_>>()[..1], [header]);
    assert_eq!(out.lines().count(), 2, "one GPU: {out}");
    let title = "Communication kernels and their overlap with compute";
    let (_, out, _) = run("nsys-digest", &[&nccl]);
    assert!(out.contains(title));
    let (_, out, _) = run("nsys-digest", &[&sample_arg("h200_llama8_eager_1step")]);
    assert!(!out.contains(title));
}

/// A profile of two processes: `kernels` sums them unless `--by-process`
/// is given, and `busy` names each stream's process.
#[test]
fn csv_headers_of_a_two_process_profile_follow_the_documented_columns() {
    const STATS: &str = "instances,total_ns,avg_ns,median_ns,min_ns,max_ns,stddev_ns,share_pct";
    let busy = "device,pid,stream,ops,busy_ns,idle_ns,idle_pct,gaps,longest_gap_ns".to_string();
    let cases = [
        (&["-r", "kernels"][..], format!("name,{STATS}")),
        (
            &["-r", "kernels", "--by-process"],
            format!("name,pid,device,{STATS}"),
        ),
        (&["-r", "busy"], busy),
    ];
    for (args, header) in cases {
        let file = sample_arg("h200_llama8_2procs_graphs_node_1step");
        let mut all = vec![file.as_str(), "--format", "csv"];
        all.extend(args);
        let (code, out, err) = run("nsys-digest", &all);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().next(), Some(header.as_str()), "{args:?}");
    }
}

#[test]
fn csv_kernel_rows_equal_ground_truth() {
    let sample = "h200_llama8_graphs_node_1step";
    let (_, out, _) = run(
        "nsys-digest",
        &[
            &sample_arg(sample),
            "--report",
            "kernels",
            "--format",
            "csv",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.csv");
    std::fs::write(&p, out).unwrap();
    let ours = read_csv(&p);
    let gt = groundtruth(sample, "cuda_gpu_kern_sum");
    assert_eq!(ours.len(), gt.len());
    for (o, g) in ours.iter().zip(&gt) {
        assert_eq!(o["name"], g["Name"]);
        assert_eq!(o["total_ns"], g["Total Time (ns)"]);
        assert_eq!(o["avg_ns"], g["Avg (ns)"]);
        assert_eq!(o["stddev_ns"], g["StdDev (ns)"]);
    }
}

#[test]
fn csv_without_report_is_an_error() {
    let (code, _, err) = run(
        "nsys-digest",
        &[&sample_arg("h200_llama8_eager_1step"), "--format", "csv"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--report"));
}

#[test]
fn json_holds_every_section() {
    let (code, out, err) = run(
        "nsys-digest",
        &[&sample_arg("h200_llama8_eager_1step"), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "source",
        "kernels",
        "nvtx",
        "nvtx_kernels",
        "launch",
        "memory",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["source"]["gpus"][0]["name"], "NVIDIA H200");
    assert_eq!(v["source"]["kernels"], 10006);
}

#[test]
fn markdown_puts_names_in_code_spans_and_right_aligns_numbers() {
    let (code, out, _) = run(
        "nsys-digest",
        &[
            &sample_arg("h200_llama8_eager_1step"),
            "--format",
            "markdown",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("---:"));
    assert!(
        out.contains("| `void at::native::"),
        "kernel names backticked"
    );
}

#[test]
fn every_report_runs_alone() {
    for report in [
        "kernels",
        "nvtx",
        "nvtx-kernels",
        "launch",
        "busy",
        "memory",
        "api",
        "graphs",
        "phases",
        "layers",
        "categories",
        "hotspots",
    ] {
        let (code, out, err) = run(
            "nsys-digest",
            &[
                &sample_arg("h200_llama8_graphs_node_1step"),
                "--report",
                report,
            ],
        );
        assert_eq!(code, 0, "{report}: {err}");
        assert!(!out.contains("(no data)"), "{report}");
    }
}

#[test]
fn a_folder_digests_every_profile_inside() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &repo().join("samples").display().to_string(),
            "--report",
            "kernels",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), SAMPLES.len());
}

/// A folder of links to the committed samples, as a user may gather runs
/// from several places: links to files are digested, and a link to a
/// folder (here, one that would loop) is not walked.
#[cfg(unix)]
#[test]
fn a_folder_run_follows_links_to_profiles_but_not_to_folders() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["h200_llama8_eager_1step", "h200_llama8_graphs_node_1step"] {
        let file = format!("{name}.sqlite.gz");
        std::os::unix::fs::symlink(repo().join("samples").join(&file), dir.path().join(&file))
            .unwrap();
    }
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let folder = dir.path().display().to_string();
    let (code, out, err) = run("nsys-digest", &[&folder, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{out}");
}

#[test]
fn a_folder_run_lists_profiles_by_name_though_it_digests_the_largest_first() {
    let dir = repo().join("samples");
    let (code, out, err) = run(
        "nsys-digest",
        &[&dir.display().to_string(), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    let mut by_name = files.clone();
    by_name.sort();
    assert_eq!(files, by_name);
    let size = |f: &&str| std::fs::metadata(f).unwrap().len();
    let mut by_size = files.clone();
    by_size.sort_by_key(|f| std::cmp::Reverse(size(f)));
    assert_ne!(
        by_size, by_name,
        "the samples no longer tell the two orders apart"
    );
}

#[test]
fn default_digest_of_a_graph_profile_answers_the_llm_questions() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &sample_arg("h200_llama8_graphs_node_1step"),
            "--format",
            "markdown",
        ],
    );
    assert_eq!(code, 0, "{err}");
    for needle in [
        "CUDA graphs: trace mode node",
        "mode: full-decode-only",
        "Engine steps by phase",
        "GPU time by layer type",
        "Hotspots",
    ] {
        assert!(out.contains(needle), "missing {needle}");
    }
}

#[test]
fn json_holds_the_llm_sections() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &sample_arg("h200_llama8_graphs_node_1step"),
            "--format",
            "json",
            "--by-phase",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["graphs"]["trace_mode"], "node");
    assert!(v["phases"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["phase"] == "decode"));
    assert!(v["layers"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["phase"] == "decode"));
    assert!(v["hotspots"][0]["category"].is_string());
}

#[test]
fn bad_user_patterns_are_one_line_errors() {
    for args in [["--step-regex", "("], ["--category", "x=("]] {
        let (code, _, err) = run(
            "nsys-digest",
            &[&sample_arg("h200_llama8_eager_1step"), args[0], args[1]],
        );
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn per_file_prints_every_full_digest() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &repo().join("samples").display().to_string(),
            "--per-file",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("GPU kernels (as cuda_gpu_kern_sum)").count(),
        SAMPLES.len()
    );
}

/// Several profiles as CSV make one table with a leading `file` column:
/// one header, and per file the rows and nanosecond totals of its
/// `cuda_gpu_kern_sum` ground truth.
#[test]
fn per_file_csv_is_one_table_with_a_file_column() {
    let dir = repo().join("samples").display().to_string();
    let (code, out, err) = run(
        "nsys-digest",
        &[&dir, "--per-file", "--format", "csv", "--report", "kernels"],
    );
    assert_eq!(code, 0, "{err}");
    let rows = csv_rows(out.as_bytes());
    assert_eq!(out.lines().filter(|l| l.starts_with("file,")).count(), 1);
    for s in SAMPLES {
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r["file"].ends_with(&format!("{s}.sqlite.gz")))
            .collect();
        let truth = groundtruth(s, "cuda_gpu_kern_sum");
        assert_eq!(mine.len(), truth.len(), "{s}");
        let total_ns: i64 = mine.iter().map(|r| int(r, "total_ns")).sum();
        let truth_ns: i64 = truth.iter().map(|r| int(r, "Total Time (ns)")).sum();
        assert_eq!(total_ns, truth_ns, "{s}");
    }
}

/// `--names short` and `--names mangled` group by the other name columns;
/// per-name totals are recomputed here with SQL on the export.
#[test]
fn short_and_mangled_names_follow_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.sqlite");
    std::fs::write(&db, inflate(&sample("h200_llama8_eager_1step"))).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (style, column) in [("short", "shortName"), ("mangled", "mangledName")] {
        let sql = format!(
            "SELECT s.value, sum(k.end - k.start) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.{column} GROUP BY 1"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let want: std::collections::HashMap<String, i64> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let (code, out, err) = run(
            "nsys-digest",
            &[
                &db.display().to_string(),
                "--report",
                "kernels",
                "--format",
                "json",
                "--names",
                style,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let got: std::collections::HashMap<String, i64> = v["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["name"].as_str().unwrap().to_string(),
                    k["total_ns"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{style}");
    }
}

/// The binary's JSON for `path`, and for the same bytes read from a pipe
/// (`/dev/stdin`, as `<(zcat …)` gives), with the file names left out.
fn json_from_file_and_pipe(
    bin: &str,
    path: &std::path::Path,
    bytes: Vec<u8>,
    args: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let json = |out: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(out).unwrap();
        v["source"]["file"] = serde_json::Value::Null;
        v
    };
    let from_file = assert_cmd::Command::cargo_bin(bin)
        .unwrap()
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(from_file.status.success());
    let from_pipe = assert_cmd::Command::cargo_bin(bin)
        .unwrap()
        .arg("/dev/stdin")
        .args(args)
        .write_stdin(bytes)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&from_pipe.stderr);
    assert!(from_pipe.status.success(), "{err}");
    (json(&from_file.stdout), json(&from_pipe.stdout))
}

/// A pipe cannot be sniffed and read again, and SQLite cannot read it at
/// all: it is copied aside, inflated if it is gzip, and digests the same.
#[test]
fn a_profile_read_from_a_pipe_digests_like_the_file() {
    let path = sample("h200_llama8_graphs_node_1step");
    let args = ["--format", "json"];
    let gz = std::fs::read(&path).unwrap();
    let (want, got) = json_from_file_and_pipe("nsys-digest", &path, gz, &args);
    assert_eq!(got, want, "gzip through a pipe");
    let (want, got) = json_from_file_and_pipe("nsys-digest", &path, inflate(&path), &args);
    assert_eq!(got, want, "SQLite through a pipe");
    let ncu = repo().join("samples/ncu/h200_llama4L_memmetrics_525kernels.details.csv.gz");
    let (want, got) = json_from_file_and_pipe("ncu-digest", &ncu, inflate(&ncu), &args);
    assert_eq!(got, want, "ncu CSV through a pipe");
    assert_eq!(want["source"]["launches_read"], 525);
}

/// `| head` closes stdout while the digest is still being written; the
/// rest is dropped, with exit 0 and no panic message.
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let nsys = sample("h200_llama8_eager_1step");
    let ncu = repo().join("samples/ncu/h200_llama4L_memmetrics_525kernels.details.csv.gz");
    let runs: [(&str, &std::path::Path, &[&str]); 2] = [
        ("nsys-digest", &nsys, &["--format", "json"]),
        ("ncu-digest", &ncu, &["--per-launch", "--format", "json"]),
    ];
    for (bin, path, args) in runs {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin(bin))
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        stdout.read_exact(&mut first).unwrap();
        // Both digests are several times the size of a pipe's buffer, so
        // the writer is still writing when the pipe closes.
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{bin}: {:?} {err}", out.status);
        assert!(err.is_empty(), "{bin}: {err}");
    }
}

/// Where the layers cannot be found, the terminal and Markdown say why,
/// in the default digest too: its graph kernels come from graphs captured
/// before the profile started, and its hotspots alone would only say
/// "(no layer)".
#[test]
fn an_empty_layer_report_prints_its_reason() {
    let file = sample_arg("h200_llama8_graphs_node_capture_before_profile");
    let (code, json, err) = run("nsys-digest", &[&file, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let layers = &v["layers"];
    assert_eq!(layers["status"], "unknown");
    let reason = layers["reason"].as_str().unwrap();
    let graph_note = layers["graph_note"].as_str().unwrap();
    for args in [
        vec![file.as_str()],
        vec![file.as_str(), "--report", "layers"],
        vec![file.as_str(), "--report", "layers", "--format", "markdown"],
    ] {
        let (code, out, err) = run("nsys-digest", &args);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("GPU time by layer type"), "{args:?}: {out}");
        assert!(out.contains(reason), "{args:?}: {out}");
        assert!(out.contains(graph_note), "{args:?}: {out}");
    }
}

#[test]
fn bad_filters_are_one_line_errors() {
    let eager = sample_arg("h200_llama8_eager_1step");
    let domains = sample_arg("h200_nvtx_domains_threads");
    let cases = [
        (&eager, "--filter-time", "9s/8s", "start time is later"),
        (&eager, "--filter-time", "8x/9s", "not a time"),
        (&eager, "--filter-time", "/", "at least one"),
        (
            &eager,
            "--filter-nvtx",
            "no_such_range",
            "could not be found",
        ),
        // A range in a named domain is found only with its domain; the
        // error says how to write what the reports print.
        (
            &domains,
            "--filter-nvtx",
            "step",
            "could not be found (write 'step@engine')",
        ),
        (
            &domains,
            "--filter-nvtx",
            "engine:step",
            "(write 'step@engine')",
        ),
        (&domains, "--filter-nvtx", ":forward", "(write 'forward')"),
        (
            &domains,
            "--filter-nvtx",
            "step@engine/4",
            "index 4 is past the last",
        ),
    ];
    for (file, option, value, says) in cases {
        let (code, out, err) = run("nsys-digest", &[file, option, value]);
        assert_eq!(code, 2, "{option} {value}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{option} {value}: {err}");
        assert!(out.is_empty(), "{out}");
    }
}

/// The window and the rows kept, recomputed from the export's own cells:
/// the sixth decode step by start time, and the kernels of its process
/// that overlap it.
#[test]
fn an_nvtx_filter_keeps_the_rows_that_overlap_the_range() {
    const STEP: &str = "execute_context_0(0)_generation_8(8)";
    let name = "h200_llama8_eager_3steps";
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &sample_arg(name),
            "--filter-nvtx",
            &format!("{STEP}/5"),
            "-f",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let filter = &v["source"]["filter"];
    let (_dir, conn) = sample_sql(name);
    let (start, end, tid): (i64, i64, i64) = conn
        .query_row(
            "SELECT start, end, globalTid FROM NVTX_EVENTS WHERE text = ?1
             ORDER BY start LIMIT 1 OFFSET 5",
            [STEP],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(filter["start_ns"], start);
    assert_eq!(filter["end_ns"], end);
    assert_eq!(filter["pid"], (tid >> 24) & 0xFF_FFFF);
    let kernels: i64 = conn
        .query_row(
            "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL
             WHERE start < ?2 AND end >= ?1 AND globalPid >> 24 = ?3 >> 24",
            [start, end, tid],
            |r| r.get(0),
        )
        .unwrap();
    assert!(kernels > 0);
    assert_eq!(v["source"]["kernels"], kernels);
    assert_eq!(v["source"]["span_ns"], end - start);
}

/// Over a folder, the filter applies to each profile: the ones without
/// the range are named on stderr, the others still digested.
#[test]
fn a_folder_run_filters_each_profile() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &repo().join("samples").display().to_string(),
            "--filter-nvtx",
            "step@engine/1",
            "-r",
            "kernels",
            "-f",
            "json",
        ],
    );
    assert_eq!(code, 2, "{err}");
    // A folder gives an array, even with one profile digested.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let [d] = v.as_array().unwrap().as_slice() else {
        panic!("one digest: {out}")
    };
    let file = d["source"]["file"].as_str().unwrap();
    assert!(
        file.ends_with("h200_nvtx_domains_threads.sqlite.gz"),
        "{file}"
    );
    let missing = err.lines().filter(|l| l.contains("could not be found"));
    assert_eq!(missing.count(), SAMPLES.len() - 1, "{err}");
    // And CSV keeps its file column.
    let (_, out, _) = run(
        "nsys-digest",
        &[
            &repo().join("samples").display().to_string(),
            "--filter-nvtx",
            "step@engine/1",
            "-r",
            "kernels",
            "-f",
            "csv",
        ],
    );
    assert!(out.starts_with("file,name,"), "{out}");
}

/// A window may start before the capture's zero, as a value that starts
/// with a minus sign.
#[test]
fn a_time_window_may_start_at_a_negative_time() {
    let (code, out, err) = run(
        "nsys-digest",
        &[
            &sample_arg("h200_llama8_eager_1step"),
            "--filter-time",
            "-1s/",
            "-f",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["source"]["filter"]["start_ns"], -1_000_000_000i64);
}

#[test]
fn a_diff_filters_both_profiles() {
    let file = sample_arg("h200_llama8_eager_3steps");
    let (code, out, err) = run(
        "nsys-digest",
        &[
            "diff",
            &file,
            &file,
            "--filter-time",
            "8s/9s",
            "--fail-on-regression",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no regression"), "{out}");
    assert!(
        out.contains("each run cut to --filter-time 8000000000/9000000000"),
        "{out}"
    );
}

/// The default digest names the step furthest above its phase's median,
/// on its own indented line under the phases, with a filter that digests
/// exactly that step.
#[test]
fn the_default_digest_names_the_slowest_step_and_how_to_isolate_it() {
    let file = sample_arg("h200_llama8_eager_3steps");
    let (code, out, err) = run("nsys-digest", &[&file]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("  slowest step: "))
        .unwrap_or_else(|| panic!("no slowest-step line: {out}"));
    let (_, json, _) = run("nsys-digest", &[&file, "-r", "steps", "-f", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let ratio = |s: &serde_json::Value| s["vs_phase_median"].as_f64().unwrap_or(0.0);
    let worst = steps
        .iter()
        .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
        .unwrap();
    assert!(ratio(worst) >= 1.5);
    assert!(
        line.contains(&format!("slowest step: {} ", worst["step"])),
        "{line}"
    );
    let spec = format!(
        "{}/{}",
        worst["range"].as_str().unwrap(),
        worst["filter_index"]
    );
    assert!(line.ends_with(&format!("--filter-nvtx '{spec}'")), "{line}");
    let (code, alone, err) = run(
        "nsys-digest",
        &[&file, "--filter-nvtx", &spec, "-f", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let alone: serde_json::Value = serde_json::from_str(&alone).unwrap();
    assert_eq!(alone["source"]["span_ns"], worst["duration_ns"]);
}

/// The phases table says how busy counts a graph only where the export
/// has whole-graph executions instead of the graph's kernels.
#[test]
fn graph_trace_mode_says_a_graph_counts_busy_whole() {
    let caveat = "gaps between its kernels included";
    for (sample, said) in [
        ("h200_llama8_graphs_graphmode_1step", true),
        ("h200_llama8_graphs_node_1step", false),
        ("h200_llama8_eager_1step", false),
    ] {
        let (code, out, err) = run("nsys-digest", &[&sample_arg(sample), "-r", "phases"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("GPU busy (%)"), "{sample}");
        assert_eq!(out.contains(caveat), said, "{sample}");
    }
}

/// `--top N` keeps the first N rows of each table ranked by time, in every
/// table format, and says how many it left out; tables in another order,
/// and JSON, keep every row.
#[test]
fn top_on_steps_keeps_those_furthest_above_their_phase_median() {
    let f = sample_arg("h200_llama8_eager_3steps");
    let csv = |top: &[&str]| {
        let mut args = vec![f.as_str(), "-r", "steps", "-f", "csv"];
        args.extend(top);
        let (code, out, err) = run("nsys-digest", &args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(String::from).collect::<Vec<_>>()
    };
    let all = csv(&[]);
    let cell = |row: &str, i: usize| row.split(',').nth(i).unwrap().to_string();
    // step, phase and duration_ns are the first three columns; the ratio
    // to the phase's median is recomputed from them, as the printed one
    // is rounded.
    let mut by_phase: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for r in &all[1..] {
        if let Ok(d) = cell(r, 2).parse() {
            by_phase.entry(cell(r, 1)).or_default().push(d);
        }
    }
    let median = |phase: &str| {
        let mut d = by_phase[phase].clone();
        d.sort_unstable();
        let n = d.len();
        (d[(n - 1) / 2] + d[n / 2]) as f64 / 2.0
    };
    let key = |r: &String| {
        let duration: Option<i64> = cell(r, 2).parse().ok();
        let ratio = duration.map_or(f64::NEG_INFINITY, |d| d as f64 / median(&cell(r, 1)));
        (ratio, duration, cell(r, 0).parse::<u64>().unwrap())
    };
    let mut ranked: Vec<&String> = all[1..].iter().collect();
    ranked.sort_by(|a, b| {
        let (ra, da, sa) = key(a);
        let (rb, db, sb) = key(b);
        rb.total_cmp(&ra).then(db.cmp(&da)).then(sa.cmp(&sb))
    });
    // All steps but one, so the whole ranking is compared.
    let n = all.len() - 2;
    let top = csv(&["--top", &n.to_string()]);
    assert_eq!(top[0], all[0]);
    assert_eq!(
        top[1..],
        ranked[..n]
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(csv(&["--top", "all"]), all, "all: every step in time order");
    // The digest's line counts the slow steps and names the --top that
    // lists exactly them.
    let slow = all[1..]
        .iter()
        .filter(|r| cell(r, 3).parse::<f64>().is_ok_and(|v| v >= 1.5))
        .count();
    assert!(slow > 5 && slow < all.len() - 1, "{slow}");
    let (_, out, _) = run("nsys-digest", &[&f]);
    let hint = format!(
        "{slow} of {} steps at 1.5× or more (--report steps --top {slow})",
        all.len() - 1
    );
    assert!(out.contains(&hint), "{out}");
    let listed = csv(&["--top", &slow.to_string()]);
    assert!(listed[1..]
        .iter()
        .all(|r| cell(r, 3).parse::<f64>().unwrap() >= 1.5));
    let (_, table, _) = run("nsys-digest", &[&f, "-r", "steps", "--top", "5"]);
    assert!(
        table.contains(&format!(
            "5 of {} steps; every step in time order: without --top",
            all.len() - 1
        )),
        "{table}"
    );
}

#[test]
fn top_keeps_the_first_rows_of_the_ranked_tables() {
    let f = sample_arg("h200_llama8_graphs_node_1step");
    let csv = |report: &str, top: &[&str]| {
        let mut args = vec![f.as_str(), "-r", report, "-f", "csv"];
        args.extend(top);
        let (code, out, err) = run("nsys-digest", &args);
        assert_eq!(code, 0, "{err}");
        out.lines().map(String::from).collect::<Vec<_>>()
    };
    for report in ["kernels", "nvtx", "api", "memory", "layers", "hotspots"] {
        let all = csv(report, &[]);
        assert!(all.len() > 3, "{report}: too few rows to cut");
        assert_eq!(csv(report, &["--top", "2"]), all[..3], "{report}");
        assert_eq!(csv(report, &["--top", "all"]), all, "{report}");
    }
    for report in ["nvtx-kernels", "launch"] {
        assert_eq!(csv(report, &["--top", "2"]), csv(report, &[]), "{report}");
    }
    let (_, json, _) = run("nsys-digest", &[&f, "-f", "json"]);
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kernels = d["kernels"].as_array().unwrap().len();
    let (_, out, _) = run("nsys-digest", &[&f, "--top", "3"]);
    assert!(out.contains(&format!(
        "3 of {kernels} rows; more: --top N, or --report kernels"
    )));
    let (_, out, _) = run("nsys-digest", &[&f, "--top", "all"]);
    assert!(!out.contains(" rows; more:"), "{out}");
    let (_, out, _) = run("nsys-digest", &[&f]);
    assert!(
        out.contains(&format!("10 of {kernels} rows")),
        "the default keeps 10"
    );
    let (_, top_json, _) = run("nsys-digest", &[&f, "-f", "json", "--top", "3"]);
    assert_eq!(top_json, json, "JSON keeps every row");
    let (code, _, err) = run("nsys-digest", &[&f, "--top", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("'0' is not a number of rows"), "{err}");
}
