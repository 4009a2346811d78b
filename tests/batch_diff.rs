//! Folders of profiles, before/after diffs, and PR-ready Markdown and SVG.
//! Expected numbers come from the ground truth nsys printed for the samples.

use crate::common::*;
use nsight_digest::nsys::llm::PhaseSummary;
use std::collections::HashMap;

fn arg(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// `nsys-digest diff` of two committed samples, as JSON.
fn diff_json([base, new]: [&str; 2]) -> serde_json::Value {
    let (base, new) = (arg(&sample(base)), arg(&sample(new)));
    let (code, out, err) = run("nsys-digest", &["diff", &base, &new, "-f", "json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The folder table's row for a committed sample.
fn row_of<'a>(rows: &'a [serde_json::Value], sample: &str) -> &'a serde_json::Value {
    let name = format!("{sample}.sqlite.gz");
    rows.iter()
        .find(|r| r["file"].as_str().unwrap().ends_with(&name))
        .unwrap_or_else(|| panic!("no row for {name}"))
}

/// The samples plus a truncated copy of one: every good file gets its row,
/// the bad one is named on stderr, and the exit code is 2.
#[test]
fn folder_with_a_truncated_profile() {
    let dir = tempfile::tempdir().unwrap();
    for s in SAMPLES {
        std::fs::copy(sample(s), dir.path().join(format!("{s}.sqlite.gz"))).unwrap();
    }
    let whole = std::fs::read(sample("h200_llama8_eager_1step")).unwrap();
    let bad = dir.path().join("truncated.sqlite.gz");
    std::fs::write(&bad, &whole[..whole.len() / 3]).unwrap();
    let (code, out, err) = run("nsys-digest", &[&arg(dir.path()), "--format", "json"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated.sqlite.gz"), "{err}");
    // Each good profile keeps its row; what the rows hold is checked in
    // folder_rows_agree_with_each_profile.
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), SAMPLES.len());
    for s in SAMPLES {
        row_of(&rows, s);
    }
    let (code, out, _) = run("nsys-digest", &[&arg(dir.path())]);
    assert_eq!(code, 2);
    let profiles = format!("{} profiles", SAMPLES.len());
    assert!(out.contains(&profiles), "{out}");
    // A folder where nothing could be read prints no empty table.
    let only_bad = tempfile::tempdir().unwrap();
    for name in ["a.sqlite.gz", "b.sqlite.gz"] {
        std::fs::copy(&bad, only_bad.path().join(name)).unwrap();
    }
    let (code, out, err) = run("nsys-digest", &[&arg(only_bad.path())]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
}

/// Median of the decode step ranges and decode GPU time per token, from
/// the nvtx_sum and nvtx_kern_sum ground truth.
fn decode_from_groundtruth(sample: &str) -> (f64, f64) {
    let step = "execute_context_0(0)_generation_8(8)";
    let med: f64 = groundtruth(sample, "nvtx_sum")
        .iter()
        .find(|r| r["Range"] == format!(":{step}"))
        .map(|r| r["Med (ns)"].parse().unwrap())
        .unwrap();
    let gpu: i64 = groundtruth(sample, "nvtx_kern_sum")
        .iter()
        .filter(|r| r["NVTX Range"] == format!(":{step}"))
        .map(|r| int(r, "Total Time (ns)"))
        .sum();
    let steps = groundtruth(sample, "nvtx_sum")
        .iter()
        .find(|r| r["Range"] == format!(":{step}"))
        .map(|r| int(r, "Instances"))
        .unwrap();
    (med, gpu as f64 / (steps as f64 * 8.0))
}

/// Decode GPU time per token of each kernel category, from the
/// nvtx_kern_sum ground truth of the decode step ranges.
fn decode_categories_from_groundtruth(sample: &str) -> HashMap<String, f64> {
    let step = format!(":{}", "execute_context_0(0)_generation_8(8)");
    let steps = groundtruth(sample, "nvtx_sum")
        .iter()
        .find(|r| r["Range"] == step)
        .map(|r| int(r, "Instances"))
        .unwrap();
    let categories = nsight_digest::categories::Categories::default();
    let mut out: HashMap<String, f64> = HashMap::new();
    for r in groundtruth(sample, "nvtx_kern_sum") {
        if r["NVTX Range"] == step {
            let c = categories.classify(&r["Kernel Name"]).to_string();
            *out.entry(c).or_default() += int(&r, "Total Time (ns)") as f64 / (steps as f64 * 8.0);
        }
    }
    out
}

#[test]
fn diff_compares_kernel_categories_per_token_of_their_phase() {
    let (graphs, eager) = ("h200_llama8_graphs_node_1step", "h200_llama8_eager_1step");
    let (code, out, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&sample(graphs)),
            &arg(&sample(eager)),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<&serde_json::Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "categories")
        .filter(|r| r["name"].as_str().unwrap().starts_with("decode: "))
        .collect();
    let (base, new) = (
        decode_categories_from_groundtruth(graphs),
        decode_categories_from_groundtruth(eager),
    );
    assert_eq!(rows.len(), base.len().max(new.len()));
    for r in rows {
        let category = r["name"].as_str().unwrap().trim_start_matches("decode: ");
        for (side, expected) in [("base", &base), ("new", &new)] {
            let ours = r[side].as_f64();
            match expected.get(category) {
                Some(want) => assert!((ours.unwrap() - want).abs() < 1e-6, "{category} {side}"),
                None => assert_eq!(ours, None, "{category} {side}"),
            }
        }
        assert_eq!(r["metric"], "GPU ns per token");
    }
}

/// Exposed communication is compared, and fails the run, like a kernel.
#[test]
fn diff_compares_exposed_communication() {
    let nccl = "h200_nccl_onerank_allreduce_overlap";
    let (code, out, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&sample(nccl)),
            &arg(&sample("h200_llama8_eager_1step")),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["section"] == "communication" && r["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let (_dir, conn) = sample_sql(nccl);
    let (_, _, busy, overlapped) = crate::llm::comm_from_sql(&conn)[&0];
    let exposed = row("exposed communication");
    assert_eq!(exposed["metric"], "ns", "the sample has no step ranges");
    assert_eq!(exposed["base"].as_f64(), Some((busy - overlapped) as f64));
    assert_eq!(exposed["new"].as_f64(), Some(0.0));
    let hidden = row("communication under compute");
    let want = 100.0 * overlapped as f64 / busy as f64;
    assert!((hidden["base"].as_f64().unwrap() - want).abs() < 1e-9);
}

/// Against a run without step ranges, a phased run's layer types and
/// categories are compared as totals over all its phases.
#[test]
fn diff_with_an_unphased_run_sums_every_phase() {
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared is absent");
        return;
    };
    let phased = sample("h200_llama8_eager_1step");
    let unphased =
        shared.join("thirdparty/nsys/GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_after.sqlite");
    let (code, out, err) = run(
        "nsys-digest",
        &["diff", &arg(&phased), &arg(&unphased), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let base_of = |section: &str, name: &str| -> f64 {
        let rows = report["rows"].as_array().unwrap();
        let row = rows
            .iter()
            .find(|r| r["section"] == section && r["name"] == name);
        row.unwrap_or_else(|| panic!("{section} {name}"))["base"]
            .as_f64()
            .unwrap()
    };
    let d = digest_sample("h200_llama8_eager_1step", &Default::default());
    assert!(d.llm.phases.phases.len() >= 2);
    for t in &d.llm.layers.types {
        assert_eq!(base_of("layers", &t.layer_type), t.gpu_ns as f64);
    }
    let gt = groundtruth("h200_llama8_eager_1step", "cuda_gpu_kern_sum");
    let categories = nsight_digest::categories::Categories::default();
    let mut expected: HashMap<String, f64> = HashMap::new();
    for r in &gt {
        let c = categories.classify(&r["Name"]).to_string();
        *expected.entry(c).or_default() += int(r, "Total Time (ns)") as f64;
    }
    for (category, total) in expected {
        assert_eq!(base_of("categories", &category), total, "{category}");
    }
}

#[test]
fn diff_of_graph_and_eager_decode_has_the_known_direction() {
    let (graphs, eager) = (
        sample("h200_llama8_graphs_node_1step"),
        sample("h200_llama8_eager_1step"),
    );
    let (code, out, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&graphs),
            &arg(&eager),
            "--threshold",
            "5%",
            "--fail-on-regression",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1, "graphs → eager regresses: {err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = |metric: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["section"] == "phases" && r["name"] == "decode" && r["metric"] == metric)
            .cloned()
            .unwrap()
    };
    let (med_g, tok_g) = decode_from_groundtruth("h200_llama8_graphs_node_1step");
    let (med_e, tok_e) = decode_from_groundtruth("h200_llama8_eager_1step");
    let step = row("step median ns");
    assert_eq!(step["base"].as_f64().unwrap(), med_g);
    assert_eq!(step["new"].as_f64().unwrap(), med_e);
    assert!(step["regression"].as_bool().unwrap());
    let expect_pct = 100.0 * (med_e - med_g) / med_g;
    assert!((step["delta_pct"].as_f64().unwrap() - expect_pct).abs() < 1e-6);
    assert!(expect_pct > 1000.0, "eager decode steps are launch-bound");
    let tok = row("GPU ns per token");
    assert!((tok["base"].as_f64().unwrap() - tok_g).abs() < 1e-6);
    assert!((tok["new"].as_f64().unwrap() - tok_e).abs() < 1e-6);
    assert!(report["summary"].as_str().unwrap().contains("decode"));

    let (code, _, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&eager),
            &arg(&graphs),
            "--threshold",
            "5%",
            "--fail-on-regression",
        ],
    );
    assert_eq!(code, 0, "eager → graphs does not regress: {err}");
}

#[test]
fn diff_of_two_folders_matches_files_by_name() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::copy(
        sample("h200_llama8_eager_1step"),
        a.path().join("run.sqlite.gz"),
    )
    .unwrap();
    std::fs::copy(
        sample("h200_llama8_eager_1step"),
        b.path().join("run.sqlite.gz"),
    )
    .unwrap();
    std::fs::copy(
        sample("h200_llama8_graphs_node_1step"),
        b.path().join("only_new.sqlite.gz"),
    )
    .unwrap();
    let (code, out, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(a.path()),
            &arg(b.path()),
            "--fail-on-regression",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The profile only the new folder holds is named, not silently dropped.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("only_new.sqlite.gz: nothing of that name in") && err.contains("not compared"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["regressions"], 0);
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["delta"].as_f64().unwrap_or(0.0) == 0.0));
}

fn gfm_html(markdown: &str) -> String {
    let mut options = comrak::Options::default();
    options.extension.table = true;
    options.extension.tagfilter = true;
    options.extension.strikethrough = true;
    options.extension.autolink = true;
    // GitHub passes <details> through; tagfilter drops only unsafe tags.
    options.render.unsafe_ = true;
    comrak::markdown_to_html(markdown, &options)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every `<tr>` of every table has as many cells as its header.
fn assert_tables_are_rectangular(html: &str) {
    for table in html.split("<table>").skip(1) {
        let table = &table[..table.find("</table>").unwrap()];
        let header = table.matches("</th>").count();
        for row in table.split("<tr>").skip(2) {
            assert_eq!(row.matches("</td>").count(), header, "ragged row: {row}");
        }
    }
}

#[test]
fn markdown_renders_in_gfm_with_every_kernel_name_intact() {
    let f = sample("h200_llama8_graphs_node_1step");
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("chart.svg");
    let (code, md, err) = run(
        "nsys-digest",
        &[&arg(&f), "--format", "markdown", "--svg", &arg(&svg)],
    );
    assert_eq!(code, 0, "{err}");
    let html = gfm_html(&md);
    assert!(
        !html.contains("raw HTML omitted") && !html.contains("&lt;details"),
        "raw HTML dropped"
    );
    assert!(
        html.contains("<details>") && html.contains("<img src="),
        "details block and chart"
    );
    assert_tables_are_rectangular(&html);
    let (_, json, _) = run("nsys-digest", &[&arg(&f), "--format", "json"]);
    let d: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut checked = 0;
    for k in d["kernels"].as_array().unwrap().iter().take(10) {
        let name = k["name"].as_str().unwrap();
        assert!(
            html.contains(&html_escape(name)),
            "kernel name lost: {name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
    roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).expect("SVG is XML");
}

#[test]
fn diff_markdown_opens_with_a_summary_and_the_svg_parses() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("diff.svg");
    let (graphs, eager) = (
        sample("h200_llama8_graphs_node_1step"),
        sample("h200_llama8_eager_1step"),
    );
    let (code, md, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&graphs),
            &arg(&eager),
            "--format",
            "markdown",
            "--svg",
            &arg(&svg),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let first = md.lines().next().unwrap();
    assert!(
        first.starts_with("**decode") || first.starts_with("**prefill"),
        "{first}"
    );
    assert!(first.contains("regression"));
    let html = gfm_html(&md);
    assert_tables_are_rectangular(&html);
    assert!(!html.contains("raw HTML omitted"));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&svg_text).expect("SVG is XML");
    assert!(doc.descendants().filter(|n| n.has_tag_name("rect")).count() > 2);
}

/// The diff chart draws the report's twelve largest gated changes, largest
/// first: red where the change is for the worse, green otherwise, each
/// labelled with its % as the tables print it. The pairs give changes both
/// ways, and, with the shared samples, an ncu efficiency, which is worse
/// when lower.
#[test]
fn the_diff_chart_draws_the_largest_changes_of_the_report() {
    let ncu = |name: &str| arg(&repo().join(format!("samples/ncu/{name}.details.csv.gz")));
    let graphs = arg(&sample("h200_llama8_graphs_node_1step"));
    let eager = arg(&sample("h200_llama8_eager_3steps"));
    let mut cases = vec![
        ("nsys-digest", graphs.clone(), eager.clone()),
        ("nsys-digest", eager, graphs),
        (
            "ncu-digest",
            ncu("h200_llama2L_memmetrics_60kernels_batch16"),
            ncu("h200_llama2L_memmetrics_60kernels_batch8"),
        ),
    ];
    // Only the larger shared capture moves an efficiency far enough to be
    // drawn.
    let shared_capture = shared()
        .map(|s| s.join("samples/ncu/llama/h200_llama4L_memmetrics_525kernels.details.csv.gz"));
    if let Some(capture) = &shared_capture {
        cases.push((
            "ncu-digest",
            arg(capture),
            ncu("h200_llama2L_memmetrics_60kernels_batch16"),
        ));
    }
    let mut worse_when = std::collections::BTreeSet::new();
    for (bin, base, new) in cases {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("diff.svg");
        let (code, json, err) = run(
            bin,
            &["diff", &base, &new, "--format", "json", "--svg", &arg(&svg)],
        );
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let drawn = largest_gated_changes(&report, 12);
        assert!(drawn.len() > 2, "{base}: too few changes to draw");
        let (fills, labels) = bars_of(&std::fs::read_to_string(&svg).unwrap());
        assert_eq!(fills.len(), drawn.len(), "{base}");
        assert_eq!(labels.len(), drawn.len(), "{base}");
        for ((row, fill), label) in drawn.iter().zip(&fills).zip(&labels) {
            let pct = row["delta_pct"].as_f64().unwrap();
            let worse = match row["worse"].as_str().unwrap() {
                "higher" => pct > 0.0,
                _ => pct < 0.0,
            };
            if pct.abs() >= 0.05 {
                worse_when.insert((row["worse"].as_str().unwrap().to_string(), pct > 0.0));
            }
            assert_eq!(*fill, if worse { "#e15759" } else { "#59a14f" }, "{row}");
            let sign = if pct >= 0.0 { '+' } else { '−' };
            assert_eq!(*label, format!("{sign}{:.1} %", pct.abs()), "{row}");
        }
    }
    let kinds = if shared_capture.is_some() { 3 } else { 2 };
    assert!(
        worse_when.len() >= kinds,
        "too few kinds of change: {worse_when:?}"
    );
}

/// A diff report's gated rows with the largest % change, largest first.
fn largest_gated_changes(report: &serde_json::Value, n: usize) -> Vec<serde_json::Value> {
    let mut gated: Vec<serde_json::Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["gated"] == true && r["delta_pct"].is_f64())
        .cloned()
        .collect();
    let size = |r: &serde_json::Value| r["delta_pct"].as_f64().unwrap().abs();
    gated.sort_by(|a, b| size(b).total_cmp(&size(a)));
    gated.truncate(n);
    gated
}

/// Each bar's colour and its % label, in the order drawn.
fn bars_of(svg: &str) -> (Vec<String>, Vec<String>) {
    let doc = roxmltree::Document::parse(svg).expect("SVG is XML");
    let fills = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("width") != Some("100%"))
        .filter_map(|n| n.attribute("fill").map(str::to_string))
        .collect();
    let labels = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .filter(|t| t.ends_with(" %"))
        .map(str::to_string)
        .collect();
    (fills, labels)
}

/// The capture recipe leaves `run.nsys-rep` beside `run.sqlite`: a folder
/// of such pairs holds one profile per pair, read from the export, even
/// with no `nsys` to export the reports. A report alone is still picked up,
/// also under the name nsys gave reports before 2021.4 (`.qdrep`).
/// No real `.nsys-rep` is committed, so the reports here are stand-ins
/// made by hand; their bytes are never read unless one is alone.
#[test]
fn folder_reads_a_report_beside_its_export_once() {
    let dir = tempfile::tempdir().unwrap();
    for s in SAMPLES {
        std::fs::copy(sample(s), dir.path().join(format!("{s}.sqlite.gz"))).unwrap();
        for report in ["nsys-rep", "qdrep"] {
            std::fs::write(dir.path().join(format!("{s}.{report}")), b"stand-in").unwrap();
        }
    }
    let digest_folder = || {
        let out = assert_cmd::Command::cargo_bin("nsys-digest")
            .unwrap()
            .args([&arg(dir.path()), "--format", "json"])
            .env("PATH", dir.path())
            .env("NSYS", dir.path().join("nsys"))
            .output()
            .unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), rows, err)
    };
    let (code, rows, err) = digest_folder();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows.len(), SAMPLES.len());
    assert!(rows
        .iter()
        .all(|r| r["file"].as_str().unwrap().ends_with(".sqlite.gz")));
    std::fs::write(dir.path().join("alone.nsys-rep"), b"stand-in").unwrap();
    std::fs::write(dir.path().join("older.qdrep"), b"stand-in").unwrap();
    let (code, rows, err) = digest_folder();
    assert_eq!(code, Some(2));
    assert_eq!(rows.len(), SAMPLES.len());
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("alone.nsys-rep"), "{err}");
    assert!(err.contains("older.qdrep"), "{err}");
}

/// Each row of a folder's table says what that profile's own digest says:
/// the top kernel and its share as `cuda_gpu_kern_sum` prints them, the GPU
/// time as its total (plus the graph executions in graph trace mode), and
/// the span, phases, graph launches and idle time of the full digest.
#[test]
fn folder_rows_agree_with_each_profile() {
    let (code, out, err) = run(
        "nsys-digest",
        &[&arg(&repo().join("samples")), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), SAMPLES.len());
    for s in SAMPLES {
        let path = sample(s);
        let row = row_of(&rows, s);
        let (code, full, err) = run("nsys-digest", &[&arg(&path), "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        let full: serde_json::Value = serde_json::from_str(&full).unwrap();
        let gt = groundtruth(s, "cuda_gpu_kern_sum");
        assert_eq!(row["top_kernel"].as_str().unwrap(), gt[0]["Name"], "{s}");
        assert_eq!(
            our_tenths(row["top_kernel_share_pct"].as_f64().unwrap()),
            tenths(&gt[0], "Time (%)"),
            "{s}"
        );
        let kernel_ns: i64 = gt.iter().map(|r| int(r, "Total Time (ns)")).sum();
        let graphs = &full["graphs"];
        let executions = if graphs["trace_mode"] == "graph" {
            graphs["gpu_ns"].as_i64().unwrap()
        } else {
            0
        };
        assert_eq!(
            row["gpu_ns"].as_i64().unwrap(),
            kernel_ns + executions,
            "{s}"
        );
        assert_eq!(row["span_ns"], full["source"]["span_ns"], "{s}");
        assert_eq!(row["graph_launches"], graphs["launches"], "{s}");
        let phase = |name: &str, key: &str| {
            full["phases"]["phases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["phase"] == name)
                .map_or(serde_json::Value::Null, |p| p[key].clone())
        };
        assert_eq!(
            row["prefill_gpu_ns_per_token"],
            phase("prefill", "gpu_ns_per_token"),
            "{s}"
        );
        assert_eq!(
            row["decode_gpu_ns_per_token"],
            phase("decode", "gpu_ns_per_token"),
            "{s}"
        );
        assert_eq!(
            row["decode_step_median_ns"],
            phase("decode", "step_median_ns"),
            "{s}"
        );
        assert_eq!(
            row["decode_gpu_busy_pct"],
            phase("decode", "gpu_busy_pct"),
            "{s}"
        );
        let idle: Vec<f64> = full["launch"]["busy"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["stream"].is_null())
            .map(|b| b["idle_pct"].as_f64().unwrap())
            .collect();
        let mean = idle.iter().sum::<f64>() / idle.len() as f64;
        assert!(
            (row["idle_pct"].as_f64().unwrap() - mean).abs() < 1e-9,
            "{s}"
        );
    }
}

#[test]
fn ncu_folder_and_diff() {
    let dir = repo().join("samples/ncu");
    let (code, out, err) = run("ncu-digest", &[&arg(&dir), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        rows.as_array().unwrap().len(),
        std::fs::read_dir(&dir).unwrap().count()
    );
    let base = dir.join("h200_llama4L_memmetrics_525kernels.raw_baseunits.csv.gz");
    let details = dir.join("h200_llama4L_memmetrics_525kernels.details.csv.gz");
    // The same launches in two layouts: only rounding differs.
    let (code, out, err) = run(
        "ncu-digest",
        &[
            "diff",
            &arg(&base),
            &arg(&details),
            "--fail-on-regression",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let by: HashMap<String, f64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "mean ns per launch")
        .filter_map(|r| Some((r["name"].as_str()?.to_string(), r["delta_pct"].as_f64()?)))
        .collect();
    assert!(by.len() > 20);
    assert!(by.values().all(|p| p.abs() < 1.0), "rounding only");
}

/// Mean `gpu__time_duration.sum` per kernel name, and over every launch,
/// in ns, from a raw page's cells and its units row (row 0).
fn mean_durations(path: &std::path::Path) -> (HashMap<String, f64>, f64) {
    let rows = csv_rows(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    let column = "gpu__time_duration.sum";
    let scale = match rows[0][column].as_str() {
        "" | "ns" | "nsecond" => 1.0,
        "us" | "usecond" => 1e3,
        "ms" | "msecond" => 1e6,
        unit => panic!("{}: unit {unit:?}", path.display()),
    };
    let mut by: HashMap<String, (f64, f64)> = HashMap::new();
    let mut all = (0.0, 0.0);
    for r in rows.iter().skip(1) {
        let cell: f64 = r[column].replace(',', "").parse().unwrap();
        let ns = cell * scale;
        let e = by.entry(r["Kernel Name"].clone()).or_default();
        *e = (e.0 + ns, e.1 + 1.0);
        all = (all.0 + ns, all.1 + 1.0);
    }
    let means = by.into_iter().map(|(k, (t, n))| (k, t / n)).collect();
    (means, all.0 / all.1)
}

/// A real before/after pair, the same 2-layer model at batch 8 and 16:
/// every kernel found in both is compared, and each side of each mean
/// duration, and of the all-kernels line, is the mean of the raw cells.
#[test]
fn ncu_diff_means_equal_the_raw_cells() {
    let [base, new] = ["batch8", "batch16"].map(|b| {
        repo().join(format!(
            "samples/ncu/h200_llama2L_memmetrics_60kernels_{b}.raw_baseunits.csv.gz"
        ))
    });
    let (code, out, err) = run(
        "ncu-digest",
        &["diff", &arg(&base), &arg(&new), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (base_means, base_all) = mean_durations(&base);
    let (new_means, new_all) = mean_durations(&new);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs();
    let rows: Vec<&serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "mean ns per launch")
        .collect();
    let mut compared = 0;
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let (b, n) = if r["section"] == "total" {
            (base_all, new_all)
        } else {
            compared += 1;
            (base_means[name], new_means[name])
        };
        assert!(close(r["base"].as_f64().unwrap(), b), "{name}: {r}");
        assert!(close(r["new"].as_f64().unwrap(), n), "{name}: {r}");
    }
    let in_both = base_means.keys().filter(|k| new_means.contains_key(*k));
    assert_eq!(compared, in_both.count());
    assert!(compared > 10);
}

/// In a diff's Markdown every Δ carries its sign, as the Δ % beside it
/// does, and equals New − Base to the printed rounding.
#[test]
fn diff_deltas_are_signed_like_their_percentages() {
    let (code, md, err) = run(
        "nsys-digest",
        &[
            "diff",
            &arg(&sample("h200_llama8_eager_3steps")),
            &arg(&sample("h200_llama8_graphs_node_3steps")),
            "--format",
            "markdown",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let number = |cell: &str| -> Option<f64> {
        let t = cell.trim().replace(',', "").replace('−', "-");
        t.trim_end_matches(" %").parse().ok()
    };
    let mut checked = 0;
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | name | metric | base | new | Δ | Δ % | flag |
        let (Some(base), Some(new), Some(delta)) =
            (number(cells[3]), number(cells[4]), number(cells[5]))
        else {
            continue;
        };
        let sign = |c: &str| c.chars().next().unwrap();
        assert!(matches!(sign(cells[5]), '+' | '−'), "{line}");
        if cells[6] != "—" {
            assert_eq!(sign(cells[5]), sign(cells[6]), "{line}");
        }
        assert!((new - base - delta).abs() <= 0.15, "{line}");
        checked += 1;
    }
    assert!(checked > 10, "{md}");
}

/// A pull request that changes how CUDA graphs run says so: the summary
/// names both modes, and the graphs section holds the launches per step
/// and the share of GPU time in graphs of each run, as their digests give
/// them. Two runs without graphs get neither.
#[test]
fn diff_of_graph_modes_names_both_modes() {
    let names = [
        "h200_llama8_graphs_node_1step",
        "h200_llama8_piecewise_node_1step",
    ];
    let graphs = names.map(|s| {
        let d = digest_sample(s, &Default::default());
        let steps: u64 = d.llm.phases.phases.iter().map(|p| p.steps).sum();
        let g = d.llm.graphs;
        (g.mode, g.launches as f64 / steps as f64, g.graph_share_pct)
    });
    let report = diff_json(names);
    let summary = report["summary"].as_str().unwrap();
    let change = format!("CUDA graph mode {} → {}", graphs[0].0, graphs[1].0);
    assert!(summary.ends_with(&change), "{summary}");
    let row = |name: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["section"] == "graphs" && r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} row"))
    };
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    let launches = row("graph launches");
    assert_eq!(launches["metric"], "per step");
    assert!(close(&launches["base"], graphs[0].1), "{launches}");
    assert!(close(&launches["new"], graphs[1].1), "{launches}");
    let share = row("GPU time in graphs");
    assert!(close(&share["base"], graphs[0].2), "{share}");
    assert!(close(&share["new"], graphs[1].2), "{share}");

    let eager = arg(&sample("h200_llama8_eager_1step"));
    let (_, out, _) = run("nsys-digest", &["diff", &eager, &eager, "-f", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!report["summary"].as_str().unwrap().contains("graph mode"));
    let sections = report["rows"].as_array().unwrap().iter();
    assert!(sections.clone().all(|r| r["section"] != "graphs"));
}

/// Eager against CUDA graphs: each phase's GPU busy share is the one its
/// run's digest gives, its change in points with no relative change, and
/// it stays out of the headline, which speaks of time.
#[test]
fn diff_shows_each_phase_gpu_busy_share_in_points() {
    let names = ["h200_llama8_eager_1step", "h200_llama8_graphs_node_1step"];
    let busy = names.map(|s| {
        let d = digest_sample(s, &Default::default());
        let phases = d.llm.phases.phases;
        phases
            .into_iter()
            .map(|p| (p.phase.as_str().to_string(), p.gpu_busy_pct))
            .collect::<Vec<_>>()
    });
    let report = diff_json(names);
    let metric = "GPU busy % of step window";
    let rows: Vec<&serde_json::Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == metric)
        .collect();
    assert_eq!(rows.len(), busy[0].len(), "{rows:?}");
    for r in rows {
        let phase = r["name"].as_str().unwrap();
        let of = |side: usize| {
            busy[side]
                .iter()
                .find(|(p, _)| p == phase)
                .and_then(|(_, v)| *v)
        };
        assert_eq!(r["base"].as_f64(), of(0), "{r}");
        assert_eq!(r["new"].as_f64(), of(1), "{r}");
        assert!(r["delta_pct"].is_null(), "{r}");
        assert_eq!(r["section"], "phases");
    }
    assert!(!report["summary"].as_str().unwrap().contains(metric));
    // Eager decode waits on its launches; graphs keep the GPU busy.
    let decode = |side: usize| {
        busy[side]
            .iter()
            .find(|(p, _)| p == "decode")
            .unwrap()
            .1
            .unwrap()
    };
    assert!(
        decode(0) < 10.0 && decode(1) > 80.0,
        "{} → {}",
        decode(0),
        decode(1)
    );
}

/// Graphs → eager: each phase's CUDA API calls and time per step are the
/// digests' own (checked against the call rows in `llm.rs`), and even the
/// decode step's 200-fold rise in calls is shown, not counted as a
/// regression.
#[test]
fn diff_shows_each_phase_cuda_api_per_step_ungated() {
    let names = ["h200_llama8_graphs_node_1step", "h200_llama8_eager_1step"];
    let phases = names.map(|s| digest_sample(s, &Default::default()).llm.phases.phases);
    let report = diff_json(names);
    let rows = report["rows"].as_array().unwrap();
    for (metric, value) in [
        (
            "CUDA API calls per step",
            (|p| p.api_calls_per_step) as fn(&PhaseSummary) -> f64,
        ),
        ("CUDA API ns per step", |p| p.api_ns_per_step),
    ] {
        let shown: Vec<&serde_json::Value> =
            rows.iter().filter(|r| r["metric"] == metric).collect();
        assert_eq!(shown.len(), phases[0].len(), "{metric}");
        for r in shown {
            let of = |side: usize| {
                let p = phases[side].iter().find(|p| p.phase.as_str() == r["name"]);
                p.map(value)
            };
            assert_eq!(r["base"].as_f64(), of(0), "{r}");
            assert_eq!(r["new"].as_f64(), of(1), "{r}");
            assert_eq!(
                (r["gated"].as_bool(), r["regression"].as_bool()),
                (Some(false), Some(false)),
                "{r}"
            );
        }
    }
    let decode_calls = rows
        .iter()
        .find(|r| r["metric"] == "CUDA API calls per step" && r["name"] == "decode")
        .unwrap();
    assert!(decode_calls["new"].as_f64().unwrap() > 100.0 * decode_calls["base"].as_f64().unwrap());
    let (_, table, _) = run(
        "nsys-digest",
        &["diff", &arg(&sample(names[0])), &arg(&sample(names[1]))],
    );
    let line = table
        .lines()
        .find(|l| l.contains("decode") && l.contains("CUDA API calls per step"))
        .unwrap();
    assert!(!line.contains("REGRESSION"), "{line}");
}

/// Which rows of each section a rendered diff must show: the `top` largest
/// changes (the JSON lists them first) and every regression.
fn shown_per_section(report: &serde_json::Value, top: usize) -> Vec<(String, usize, usize)> {
    let mut sections: Vec<(String, usize, usize)> = Vec::new();
    for r in report["rows"].as_array().unwrap() {
        let name = r["section"].as_str().unwrap();
        if sections.last().map(|s| s.0.as_str()) != Some(name) {
            sections.push((name.into(), 0, 0));
        }
        let s = sections.last_mut().unwrap();
        if s.2 < top || r["regression"].as_bool().unwrap() {
            s.1 += 1;
        }
        s.2 += 1;
    }
    sections
}

/// Going from full graphs to piecewise graphs regresses 22 NVTX ranges,
/// 7 of them past the section's 15 largest changes: the tables still show
/// every row the summary counts, and say how many they left out.
#[test]
fn diff_tables_show_every_regression_the_summary_counts() {
    let pair = [
        "h200_llama8_graphs_node_1step",
        "h200_llama8_piecewise_node_1step",
    ];
    let report = diff_json(pair);
    let regressions = report["regressions"].as_u64().unwrap() as usize;
    let past_top = shown_per_section(&report, 15)
        .iter()
        .map(|(_, shown, total)| shown - 15.min(*total))
        .sum::<usize>();
    assert!(
        past_top > 0,
        "the pair must rank regressions past the top 15"
    );
    let (base, new) = (arg(&sample(pair[0])), arg(&sample(pair[1])));
    for (top, extra) in [(15, vec![]), (3, vec!["--top", "3"])] {
        for format in ["markdown", "table"] {
            let mut args = vec!["diff", &base, &new, "-f", format];
            args.extend(&extra);
            let (code, out, err) = run("nsys-digest", &args);
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                out.matches("REGRESSION").count(),
                regressions,
                "{format} --top {top}"
            );
            for (section, shown, total) in shown_per_section(&report, top) {
                let note = format!("{shown} of {total} rows");
                assert_eq!(out.contains(&note), shown < total, "{section}: {note}");
            }
        }
    }
    let all = ["diff", &base, &new, "--top", "all"];
    let (_, out, _) = run("nsys-digest", &all);
    assert!(!out.contains(" rows: the "), "--top all keeps every row");
}

/// Graph-trace mode names no kernel inside a graph, so against a node-trace
/// run of the same model every decode kernel the graphs launch is new: each
/// ranks by its whole time per token, ahead of the small changes of the
/// kernels on both sides, and the table a reviewer sees flags it.
#[test]
fn a_node_trace_against_a_graph_trace_lists_the_decode_kernels_as_new() {
    let pair = [
        "h200_llama8_graphs_graphmode_1step",
        "h200_llama8_graphs_node_1step",
    ];
    let v = diff_json(pair);
    let kernels: Vec<&serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == "kernels")
        .collect();
    let one_sided: Vec<&&serde_json::Value> = kernels
        .iter()
        .filter(|r| r["base"].is_null() || r["new"].is_null())
        .collect();
    // The kernels launched outside the graphs (sampling) are on both sides.
    assert!(one_sided
        .iter()
        .all(|r| r["base"].is_null() && r["name"].as_str().unwrap().starts_with("decode: ")));
    let new: Vec<f64> = kernels
        .iter()
        .take_while(|r| r["base"].is_null())
        .map(|r| r["new"].as_f64().unwrap())
        .collect();
    assert_eq!(new.len(), one_sided.len());
    assert!(new.windows(2).all(|w| w[0] >= w[1]), "{new:?}");
    let matched = kernels[new.len()..]
        .iter()
        .filter_map(|r| r["delta"].as_f64());
    assert!(matched.fold(0.0, |m: f64, d| m.max(d.abs())) <= new[new.len() - 1]);
    let (code, table, err) = run(
        "nsys-digest",
        &["diff", &arg(&sample(pair[0])), &arg(&sample(pair[1]))],
    );
    assert_eq!(code, 0, "{err}");
    let section = table
        .split("\nkernels\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap();
    let flagged = section
        .lines()
        .filter(|l| l.trim_end().ends_with("| new"))
        .count();
    assert_eq!(
        flagged,
        new.len().min(nsight_digest::diff::DEFAULT_DIFF_TOP)
    );
}
