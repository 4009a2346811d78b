//! The LLM view on the real samples. Expected numbers are computed
//! independently: SQL on the export, or sums over the `nvtx_kern_sum`
//! ground truth that nsys printed.

use crate::common::*;
use nsight_digest::nsys::llm::{LlmOptions, Phase};
use nsight_digest::nsys::DigestOptions;
use regex::Regex;
use std::collections::HashMap;

fn scalar(conn: &rusqlite::Connection, q: &str) -> i64 {
    conn.query_row(q, [], |r| r.get::<_, Option<i64>>(0))
        .unwrap()
        .unwrap_or(0)
}

/// Graph launches, counted in the runtime table.
const GRAPH_LAUNCHES: &str = "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId WHERE s.value LIKE 'cudaGraphLaunch%'";

/// Kernels that ran as a node of a graph (node trace mode).
const GRAPH_KERNELS: &str =
    "SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE graphNodeId IS NOT NULL";

fn by_phase() -> DigestOptions {
    DigestOptions {
        llm: LlmOptions {
            by_phase: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Sum of nvtx_kern_sum totals over rows whose range matches `re`.
fn kern_sum_total(sample: &str, re: &Regex) -> i64 {
    groundtruth(sample, "nvtx_kern_sum")
        .iter()
        .filter(|r| re.is_match(&r["NVTX Range"]))
        .map(|r| int(r, "Total Time (ns)"))
        .sum()
}

#[test]
fn eager_phases_equal_step_ranges_in_nvtx_kern_sum() {
    let sample = "h200_llama8_eager_3steps";
    let d = digest_sample(sample, &DigestOptions::default());
    let phases = &d.llm.phases;
    assert_eq!(phases.status, "detected");
    let get = |p: Phase| phases.phases.iter().find(|s| s.phase == p).unwrap();
    assert_eq!(get(Phase::Prefill).steps, 3);
    assert_eq!(get(Phase::Decode).steps, 96);
    let prefill = Regex::new(r"^:execute_context_[1-9]\d*\(\d+\)_generation_0\(0\)$").unwrap();
    let decode = Regex::new(r"^:execute_context_0\(0\)_generation_[1-9]\d*\(\d+\)$").unwrap();
    assert_eq!(get(Phase::Prefill).gpu_ns, kern_sum_total(sample, &prefill));
    assert_eq!(get(Phase::Decode).gpu_ns, kern_sum_total(sample, &decode));
    // Tokens: 8 requests x 512 prompt tokens per prefill; 8 per decode step.
    assert_eq!(get(Phase::Prefill).tokens, Some(3 * 4096));
    assert_eq!(get(Phase::Decode).tokens, Some(96 * 8));
}

#[test]
fn eager_layer_types_equal_their_module_ranges() {
    let sample = "h200_llama8_eager_3steps";
    let d = digest_sample(sample, &DigestOptions::default());
    assert_eq!(d.llm.layers.status, "detected");
    for ty in [
        "self_attn",
        "mlp",
        "input_layernorm",
        "post_attention_layernorm",
    ] {
        let row = d
            .llm
            .layers
            .types
            .iter()
            .find(|t| t.layer_type == format!("model.layers.*.{ty}"))
            .unwrap_or_else(|| panic!("no {ty}"));
        let re = Regex::new(&format!(r"^:model\.layers\.\d+\.{ty}$")).unwrap();
        assert_eq!(row.gpu_ns, kern_sum_total(sample, &re), "{ty}");
        assert_eq!(row.layers, 8, "{ty}");
    }
}

#[test]
fn node_trace_graphs_are_counted_and_timed() {
    let sample = "h200_llama8_graphs_node_3steps";
    let (_dir, conn) = sample_sql(sample);
    let d = digest_sample(sample, &by_phase());
    let g = &d.llm.graphs;
    assert_eq!(g.trace_mode, "node");
    assert_eq!(g.per_graph.len(), 3);
    assert_eq!(g.graphs_instantiated, 3);
    assert_eq!(g.graphs_captured, 3);
    let launches = scalar(&conn, GRAPH_LAUNCHES);
    assert_eq!(g.launches as i64, launches);
    assert_eq!(launches, 96);
    let kernels = scalar(&conn, GRAPH_KERNELS);
    assert_eq!(g.kernels as i64, kernels);
    assert_eq!(kernels, 56_352);
    let graph_ns = scalar(
        &conn,
        "SELECT sum(end - start) FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE graphNodeId IS NOT NULL",
    );
    assert_eq!(g.gpu_ns, graph_ns);
    let eager_ns = scalar(
        &conn,
        "SELECT sum(end - start) FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE graphNodeId IS NULL",
    );
    assert_eq!(g.eager_gpu_ns, eager_ns);
    assert_eq!(g.mode, "full-decode-only", "{:?}", g.evidence);
}

/// Graphs captured before the profile started, as vLLM captures its
/// graphs at start-up: launches, graph kernels and decode steps are still
/// counted, and the graph kernels' GPU time lands in the steps that
/// launched them; but no layer range exists for those kernels, so the
/// layer report says why instead of guessing.
#[test]
fn graphs_captured_before_the_profile_are_counted_but_not_placed_in_layers() {
    let sample = "h200_llama8_graphs_node_capture_before_profile";
    let (_dir, conn) = sample_sql(sample);
    let d = digest_sample(sample, &DigestOptions::default());
    let g = &d.llm.graphs;
    let launches = scalar(&conn, GRAPH_LAUNCHES);
    assert!(launches > 0);
    assert_eq!(g.launches as i64, launches);
    assert_eq!((g.graphs_captured, g.graphs_instantiated), (0, 0));
    let kernels = scalar(&conn, GRAPH_KERNELS);
    assert_eq!(g.kernels as i64, kernels);
    assert_eq!(g.mode, "full", "{:?}", g.evidence);

    let phases = &d.llm.phases;
    assert_eq!(phases.status, "detected");
    let [decode] = &phases.phases[..] else {
        panic!("{:?}", phases.phases);
    };
    assert_eq!(decode.phase, Phase::Decode);
    let steps = Regex::new(r"^:execute_context_0\(0\)_generation_[1-9]\d*\(\d+\)$").unwrap();
    assert_eq!(decode.gpu_ns, kern_sum_total(sample, &steps));
    assert_eq!(decode.steps as i64, launches);

    let layers = &d.llm.layers;
    assert_eq!(layers.status, "unknown");
    assert_eq!(layers.graph_kernels as i64, kernels);
    assert_eq!(layers.graph_kernels_with_layer, 0);
    let note = layers.graph_note.as_deref().unwrap_or_default();
    assert!(note.contains("captured outside the profile"), "{note}");
}

/// vLLM's piecewise mode: each decode step replays one graph per stretch
/// between two attentions and runs the attentions eagerly; the prefill,
/// larger than any captured size, runs eagerly. The mode is `piecewise`,
/// the decode time is that of the step ranges, and the graph kernels get
/// the layer ranges open when their piece was captured: the decode layer
/// types are those of the eager run of the same model.
#[test]
fn piecewise_graphs_are_named_so_and_placed_in_layers() {
    let sample = "h200_llama8_piecewise_node_1step";
    let (_dir, conn) = sample_sql(sample);
    let d = digest_sample(sample, &by_phase());
    let g = &d.llm.graphs;
    assert_eq!(g.launches as i64, scalar(&conn, GRAPH_LAUNCHES));
    assert_eq!(g.kernels as i64, scalar(&conn, GRAPH_KERNELS));
    assert!(g.per_graph.len() > 1);
    assert_eq!(g.mode, "piecewise", "{:?}", g.evidence);

    let decode = d.llm.phases.phase(Phase::Decode);
    let steps = Regex::new(r"^:execute_context_0\(0\)_generation_[1-9]\d*\(\d+\)$").unwrap();
    assert_eq!(decode.unwrap().gpu_ns, kern_sum_total(sample, &steps));

    let eager = digest_sample("h200_llama8_eager_1step", &by_phase());
    assert_eq!(decode_layer_types(&d), decode_layer_types(&eager));
    let layers = &d.llm.layers;
    assert!(layers.graph_kernels_with_layer > layers.graph_kernels / 2);
}

/// The graphs report of a two-process sample equals `sql` over its raw
/// tables, (pid, graph, launches, kernels, GPU ns) per graph, and holds one
/// graph per process, numbered alike in both.
fn assert_one_graph_per_process(sample: &str, sql: &str) -> nsight_digest::nsys::Digest {
    let (_dir, conn) = sample_sql(sample);
    let mut expected: Vec<(Option<u32>, i64, u64, u64, i64)> = conn
        .prepare(sql)
        .unwrap()
        .query_map([], |r| {
            Ok((Some(r.get(0)?), r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    expected.sort();
    let d = digest_sample(sample, &DigestOptions::default());
    let rows = d.llm.graphs.per_graph.iter();
    let ours: Vec<_> = rows
        .map(|g| (g.pid, g.graph, g.launches, g.kernels, g.gpu_ns))
        .collect();
    assert_eq!(ours, expected, "{sample}");
    assert_eq!(ours.len(), 2, "{sample}");
    assert_eq!(ours[0].1, ours[1].1, "{sample}: graphs numbered alike");
    d
}

/// Two processes on one GPU, each capturing and replaying its own graph:
/// one runs layers 0–3, the other layers 4–7, as two pipeline stages
/// would. Each process numbers its graphs and graph nodes from the same
/// start, so graph 2 and node 4294967296 exist twice. Per graph, the
/// launches, kernels and GPU time are those of its own process; and each
/// graph kernel takes the layer its node was captured in within its own
/// process, so with both stages doing the same work every layer index of a
/// type holds as many kernels as the others.
#[test]
fn graphs_and_their_layers_are_kept_apart_per_process() {
    let d = assert_one_graph_per_process(
        "h200_llama8_2procs_graphs_node_1step",
        "SELECT (globalPid >> 24) & 16777215, graphNodeId >> 32, count(DISTINCT correlationId), \
         count(*), sum(end - start) FROM CUPTI_ACTIVITY_KIND_KERNEL \
         WHERE graphNodeId IS NOT NULL GROUP BY 1, 2",
    );

    let layers = &d.llm.layers;
    assert!(layers.graph_kernels_with_layer > layers.graph_kernels / 2);
    let mut per_type: HashMap<&str, Vec<(u32, u64)>> = HashMap::new();
    for row in &layers.indices {
        per_type
            .entry(&row.layer_type)
            .or_default()
            .push((row.index, row.kernels));
        assert!(!row.outlier, "{row:?}");
    }
    for (ty, rows) in per_type {
        let indices: Vec<u32> = rows.iter().map(|r| r.0).collect();
        assert_eq!(indices, (0..8).collect::<Vec<_>>(), "{ty}");
        assert!(rows.iter().all(|r| r.1 == rows[0].1), "{ty}: {rows:?}");
    }
}

/// The same two processes in graph trace mode: each graph execution counts
/// in its own process's graph.
#[test]
fn graph_executions_are_kept_apart_per_process() {
    assert_one_graph_per_process(
        "h200_llama8_2procs_graphs_graphmode_1step",
        "SELECT (globalPid >> 24) & 16777215, graphExecId, count(DISTINCT correlationId), \
         0, sum(end - start) FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE GROUP BY 1, 2",
    );
}

/// Every process's step ranges count: per phase, the steps, tokens and
/// step median are those of both processes' ranges in `nvtx_sum`, and the
/// GPU time that of both processes' rows in `nvtx_kern_sum`.
#[test]
fn the_steps_of_every_process_count() {
    let sample = "h200_llama8_2procs_graphs_node_1step";
    let d = digest_sample(sample, &DigestOptions::default());
    let ranges = groundtruth(sample, "nvtx_sum");
    let name = Regex::new(r"^:execute_context_(\d+)\((\d+)\)_generation_(\d+)\((\d+)\)$").unwrap();
    for p in &d.llm.phases.phases {
        let (ctx_tokens, gen_tokens) = match p.phase {
            Phase::Prefill => (1, 0),
            Phase::Decode => (0, 1),
            other => panic!("{other:?}"),
        };
        let rows: Vec<_> = ranges
            .iter()
            .filter_map(|r| Some((name.captures(&r["Range"])?, r)))
            .filter(|(c, _)| {
                (&c[2] != "0") as u64 == ctx_tokens && (&c[4] != "0") as u64 == gen_tokens
            })
            .collect();
        let [(caps, row)] = &rows[..] else {
            panic!("{:?}: {} step names", p.phase, rows.len())
        };
        let steps = int(row, "Instances") as u64;
        assert_eq!(p.steps, steps, "{:?}", p.phase);
        let tokens: u64 = caps[2].parse::<u64>().unwrap() + caps[4].parse::<u64>().unwrap();
        assert_eq!(p.tokens, Some(tokens * steps), "{:?}", p.phase);
        assert_eq!(
            format!("{:.1}", p.step_median_ns),
            row["Med (ns)"],
            "{:?}",
            p.phase
        );
        let own = Regex::new(&format!("^{}$", regex::escape(&row["Range"]))).unwrap();
        assert_eq!(p.gpu_ns, kern_sum_total(sample, &own), "{:?}", p.phase);
    }
    assert_eq!(d.llm.phases.phases.len(), 2);
}

/// Decode layers per layer type.
fn decode_layer_types(d: &nsight_digest::nsys::Digest) -> HashMap<String, u64> {
    d.llm
        .layers
        .types
        .iter()
        .filter(|t| t.phase == Some(Phase::Decode))
        .map(|t| (t.layer_type.clone(), t.layers))
        .collect()
}

#[test]
fn node_trace_graph_kernels_get_their_capture_time_layers() {
    let graphs = digest_sample("h200_llama8_graphs_node_3steps", &by_phase());
    let eager = digest_sample("h200_llama8_eager_3steps", &by_phase());
    let g = decode_layer_types(&graphs);
    for ty in [
        "self_attn",
        "mlp",
        "input_layernorm",
        "post_attention_layernorm",
    ] {
        assert_eq!(
            g.get(&format!("model.layers.*.{ty}")),
            Some(&8),
            "decode {ty} in graphs"
        );
    }
    assert_eq!(
        g,
        decode_layer_types(&eager),
        "same decode layer types as eager"
    );
    assert!(graphs.llm.layers.graph_kernels_with_layer > 50_000);
    let (gc, ec) = (
        graphs.llm.layers.coverage_pct,
        eager.llm.layers.coverage_pct,
    );
    assert!(
        (gc - ec).abs() < 5.0,
        "coverage {gc:.1} % vs eager {ec:.1} %"
    );
}

#[test]
fn graph_trace_mode_counts_graph_trace_time() {
    let sample = "h200_llama8_graphs_graphmode_1step";
    let (_dir, conn) = sample_sql(sample);
    let d = digest_sample(sample, &DigestOptions::default());
    let g = &d.llm.graphs;
    assert_eq!(g.trace_mode, "graph");
    assert_eq!(g.launches, 16);
    let trace_ns = scalar(
        &conn,
        "SELECT sum(end - start) FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE",
    );
    assert_eq!(g.gpu_ns, trace_ns);
    // Phases plus work outside steps account for every kernel and graph execution.
    let kernel_ns = scalar(
        &conn,
        "SELECT sum(end - start) FROM CUPTI_ACTIVITY_KIND_KERNEL",
    );
    let phased: i64 = d.llm.phases.phases.iter().map(|p| p.gpu_ns).sum();
    assert_eq!(
        phased + d.llm.phases.outside_steps_gpu_ns,
        kernel_ns + trace_ns
    );
    assert!(d
        .llm
        .layers
        .graph_note
        .as_deref()
        .unwrap_or("")
        .contains("graph trace mode"));
}

#[test]
fn eager_profile_has_no_graph_mode() {
    let d = digest_sample("h200_llama8_eager_1step", &DigestOptions::default());
    assert_eq!(d.llm.graphs.launches, 0);
    assert_eq!(d.llm.graphs.mode, "none");
    // The first iteration's warm-up is CPU time: on the GPU the eight layers
    // cost the same, so none is flagged.
    assert!(d.llm.layers.indices.iter().all(|r| !r.outlier));
    assert!(d.llm.layers.indices.iter().any(|r| r.ratio_to_median > 0.9));
}

#[test]
fn profiles_without_steps_or_layers_say_unknown() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("thirdparty/nsys");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut checked = 0;
    let mut unknown_layers = 0;
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_none_or(|e| e != "sqlite") {
            continue;
        }
        let Ok(d) = nsight_digest::nsys::digest(&path, &DigestOptions::default()) else {
            continue;
        };
        assert_eq!(d.llm.phases.status, "unknown", "{}", path.display());
        assert!(d.llm.phases.reason.is_some());
        // Some of these files do carry layer ranges (FSDP `blocks.N` wrappers):
        // then layers are real, otherwise "unknown" with a reason.
        let layers = &d.llm.layers;
        if layers.status == "unknown" {
            assert!(layers.reason.is_some());
            unknown_layers += 1;
        } else {
            assert!(layers.types.iter().all(|t| t.layer_type.contains('*')));
            assert!(layers.coverage_pct > 0.0);
        }
        checked += 1;
    }
    assert!(checked >= 10);
    assert!(unknown_layers >= 10);
}

#[test]
fn user_step_regex_is_used() {
    let opts = DigestOptions {
        llm: LlmOptions {
            step_regex: Some(Regex::new(r"^model\.layers\.(?P<ctx>[1-3])$").unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    // A contrived pattern over real ranges: layer ranges 0-3 become "steps".
    let d = digest_sample("h200_llama8_eager_1step", &opts);
    assert_eq!(d.llm.phases.format.as_deref(), Some("user, vllm"));
    let prefill = d.llm.phases.phase(Phase::Prefill).unwrap();
    // 1 vLLM prefill step plus layer ranges 1-3 of each of the 17 forward passes.
    assert_eq!(prefill.steps, 1 + 3 * 17);
}

/// The layer chart draws the layer report: one segment per (type, phase)
/// row with its GPU time, and per type a total of its segments.
#[test]
fn the_layer_chart_draws_the_layer_report() {
    for (sample, opts) in [
        ("h200_llama8_eager_3steps", by_phase()),
        ("h200_llama8_graphs_node_3steps", by_phase()),
        ("h200_llama8_graphs_node_1step", DigestOptions::default()),
    ] {
        let d = digest_sample(sample, &opts);
        let svg = nsight_digest::svg::layer_phase_chart(&d.llm.layers, sample);
        let doc = roxmltree::Document::parse(&svg).expect("SVG is XML");
        let segments: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        let mut want: Vec<String> = Vec::new();
        let mut type_totals: Vec<(String, i64)> = Vec::new();
        for t in &d.llm.layers.types {
            let phase = t.phase.map_or("all", |p| p.as_str());
            let ms = t.gpu_ns as f64 / 1e6;
            want.push(format!("{} {phase}: {ms:.3} ms", t.layer_type));
            match type_totals.iter_mut().find(|(ty, _)| *ty == t.layer_type) {
                Some((_, ns)) => *ns += t.gpu_ns,
                None => type_totals.push((t.layer_type.clone(), t.gpu_ns)),
            }
        }
        assert!(!want.is_empty(), "{sample}: no layers");
        let mut got: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{sample}");
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        for (ty, ns) in type_totals {
            let at = labels.iter().position(|l| *l == ty).expect("type label");
            let total = labels[at + 1..]
                .iter()
                .find(|l| l.ends_with(" ms"))
                .expect("total label");
            assert_eq!(
                *total,
                format!("{:.2} ms", ns as f64 / 1e6),
                "{sample} {ty}"
            );
        }
    }
}

/// Per category: (kernel time, instances), the ground-truth rows of
/// `name_col` classified with the built-in table.
fn category_sums<'a>(
    rows: impl Iterator<Item = &'a HashMap<String, String>>,
    name_col: &str,
    count_col: &str,
) -> HashMap<String, (i64, u64)> {
    let categories = nsight_digest::categories::Categories::default();
    let mut out: HashMap<String, (i64, u64)> = HashMap::new();
    for r in rows {
        let e = out
            .entry(categories.classify(&r[name_col]).to_string())
            .or_default();
        e.0 += int(r, "Total Time (ns)");
        e.1 += int(r, count_col) as u64;
    }
    out
}

/// The category rows of `phase`, or of every phase summed when `None`.
fn our_categories(
    d: &nsight_digest::nsys::Digest,
    phase: Option<&str>,
) -> HashMap<String, (i64, u64)> {
    let mut out: HashMap<String, (i64, u64)> = HashMap::new();
    for c in d
        .llm
        .categories
        .iter()
        .filter(|c| phase.is_none_or(|p| c.phase == p))
    {
        let e = out.entry(c.category.clone()).or_default();
        e.0 += c.gpu_ns;
        e.1 += c.instances;
    }
    out
}

#[test]
fn categories_over_all_phases_equal_cuda_gpu_kern_sum_by_category() {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        let gt = groundtruth(sample, "cuda_gpu_kern_sum");
        let expected = category_sums(gt.iter(), "Name", "Instances");
        assert_eq!(our_categories(&d, None), expected, "{sample}");
        let mut phase_share: HashMap<&str, f64> = HashMap::new();
        for c in &d.llm.categories {
            *phase_share.entry(&c.phase).or_default() += c.share_of_phase_pct;
        }
        for (phase, share) in phase_share {
            assert!((share - 100.0).abs() < 1e-6, "{sample} {phase}: {share}");
        }
    }
}

#[test]
fn eager_decode_categories_equal_nvtx_kern_sum_in_decode_steps() {
    let sample = "h200_llama8_eager_3steps";
    let d = digest_sample(sample, &DigestOptions::default());
    let decode = Regex::new(r"^:execute_context_0\(0\)_generation_[1-9]\d*\(\d+\)$").unwrap();
    let gt = groundtruth(sample, "nvtx_kern_sum");
    let in_decode = gt.iter().filter(|r| decode.is_match(&r["NVTX Range"]));
    let expected = category_sums(in_decode, "Kernel Name", "Kern Inst");
    assert!(expected.len() >= 4, "{expected:?}");
    assert_eq!(our_categories(&d, Some("decode")), expected);
}

/// Two GPUs exchanging activations with NCCL, from another project: the
/// communication row is the NCCL kernels' time in `gpukernsum`.
#[test]
fn nccl_kernels_make_the_communication_category() {
    let Some(shared) = shared() else {
        eprintln!("skipped: ../shared is absent");
        return;
    };
    let name = "GindaChen__nsys-ai__tests__fixtures__mfu_2gpu_after.sqlite";
    let file = shared.join("thirdparty/nsys").join(name);
    let d = nsight_digest::nsys::digest(&file, &DigestOptions::default()).unwrap();
    let gt = read_csv(&shared.join(format!("thirdparty/nsys/groundtruth/{name}.gpukernsum.csv")));
    let nccl: Vec<_> = gt
        .iter()
        .filter(|r| r["Name"].starts_with("nccl"))
        .collect();
    assert!(!nccl.is_empty());
    let expected = category_sums(nccl.into_iter(), "Name", "Instances");
    let ours = our_categories(&d, Some("all"));
    assert_eq!(ours["communication"], expected["communication"]);
    assert_eq!(ours, category_sums(gt.iter(), "Name", "Instances"));
}

/// A user's `--category` rule is tried first and gets its own rows.
#[test]
fn user_categories_get_their_own_rows() {
    let sample = "h200_llama8_eager_1step";
    let rule = "nvjet-gemm=^nvjet_".to_string();
    let opts = DigestOptions {
        llm: LlmOptions {
            categories: nsight_digest::categories::Categories::with_user_rules(&[rule]).unwrap(),
            ..Default::default()
        },
        ..Default::default()
    };
    let d = digest_sample(sample, &opts);
    let nvjet: Vec<_> = groundtruth(sample, "cuda_gpu_kern_sum")
        .into_iter()
        .filter(|r| r["Name"].starts_with("nvjet_"))
        .collect();
    assert!(!nvjet.is_empty());
    let want = (
        nvjet.iter().map(|r| int(r, "Total Time (ns)")).sum::<i64>(),
        nvjet
            .iter()
            .map(|r| int(r, "Instances") as u64)
            .sum::<u64>(),
    );
    assert_eq!(our_categories(&d, None)["nvjet-gemm"], want);
}

/// Per device: (kernels, summed ns, union ns, ns overlapped by other
/// kernels), swept from the kernel table with the built-in categories.
pub fn comm_from_sql(conn: &rusqlite::Connection) -> HashMap<i64, (u64, i64, i64, i64)> {
    let categories = nsight_digest::categories::Categories::default();
    let sql = "SELECT k.deviceId, k.start, k.end, s.value FROM CUPTI_ACTIVITY_KIND_KERNEL k \
               JOIN StringIds s ON s.id = k.demangledName";
    let mut stmt = conn.prepare(sql).unwrap();
    type Spans = (Vec<(i64, i64)>, Vec<(i64, i64)>);
    let mut devices: HashMap<i64, Spans> = HashMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
        })
        .unwrap();
    for row in rows {
        let (device, start, end, name): (i64, i64, i64, String) = row.unwrap();
        let d = devices.entry(device).or_default();
        if categories.classify(&name) == "communication" {
            d.0.push((start, end));
        } else {
            d.1.push((start, end));
        }
    }
    let union = |mut v: Vec<(i64, i64)>| {
        v.sort();
        let mut out: Vec<(i64, i64)> = Vec::new();
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    };
    let mut out = HashMap::new();
    for (device, (comm, compute)) in devices {
        if comm.is_empty() {
            continue;
        }
        let kernels = comm.len() as u64;
        let summed = comm.iter().map(|(s, e)| e - s).sum();
        let (comm, compute) = (union(comm), union(compute));
        let busy = comm.iter().map(|(s, e)| e - s).sum();
        // Both unions are sorted and disjoint: walk them together.
        let (mut i, mut j, mut both) = (0, 0, 0);
        while i < comm.len() && j < compute.len() {
            let (s, e) = (comm[i].0.max(compute[j].0), comm[i].1.min(compute[j].1));
            both += (e - s).max(0);
            if comm[i].1 < compute[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        out.insert(device, (kernels, summed, busy, both));
    }
    out
}

fn our_comm(d: &nsight_digest::nsys::Digest) -> HashMap<i64, (u64, i64, i64, i64)> {
    let c = &d.llm.communication;
    c.iter()
        .map(|r| {
            assert_eq!(r.exposed_ns, r.busy_ns - r.overlapped_ns);
            (r.device, (r.kernels, r.gpu_ns, r.busy_ns, r.overlapped_ns))
        })
        .collect()
}

#[test]
fn communication_overlap_equals_a_sweep_of_the_kernel_table() {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        let (_dir, conn) = sample_sql(sample);
        assert_eq!(our_comm(&d), comm_from_sql(&conn), "{sample}");
    }
    let Some(shared) = shared() else {
        eprintln!("skipped the third-party exports: ../shared is absent");
        return;
    };
    for name in ["mfu_2gpu_after", "mfu_2gpu_before"] {
        let file = shared.join(format!(
            "thirdparty/nsys/GindaChen__nsys-ai__tests__fixtures__{name}.sqlite"
        ));
        let d = nsight_digest::nsys::digest(&file, &DigestOptions::default()).unwrap();
        let uri = format!("file:{}?immutable=1", file.display());
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(uri, flags).unwrap();
        let ours = our_comm(&d);
        assert_eq!(ours.len(), 2, "{name}: NCCL on both GPUs");
        assert_eq!(ours, comm_from_sql(&conn), "{name}");
    }
}

/// The sample's all-reduce runs once a step on the GEMMs' stream, which
/// nothing can overlap, and once on a side stream beside eight GEMMs.
#[test]
fn an_all_reduce_beside_gemms_overlaps_and_one_between_them_does_not() {
    let sample = "h200_nccl_onerank_allreduce_overlap";
    let d = digest_sample(sample, &DigestOptions::default());
    let (_dir, conn) = sample_sql(sample);
    let per_stream = |gemm_stream: bool| {
        let sql = format!(
            "SELECT sum(k.end - k.start) FROM CUPTI_ACTIVITY_KIND_KERNEL k \
             JOIN StringIds s ON s.id = k.demangledName \
             WHERE s.value LIKE '%oneRankReduce%' AND k.streamId {} \
             (SELECT k2.streamId FROM CUPTI_ACTIVITY_KIND_KERNEL k2 \
              JOIN StringIds s2 ON s2.id = k2.demangledName WHERE s2.value LIKE 'nvjet%')",
            if gemm_stream { "IN" } else { "NOT IN" }
        );
        scalar(&conn, &sql)
    };
    let (inline, side) = (per_stream(true), per_stream(false));
    assert!(inline > 0 && side > 0);
    let [row] = &d.llm.communication[..] else {
        panic!("one GPU: {:?}", d.llm.communication)
    };
    assert_eq!(row.kernels, 12);
    assert!(row.exposed_ns >= inline, "{row:?}");
    assert!(
        row.overlapped_ns > 0 && row.overlapped_ns <= side,
        "{row:?}"
    );
}

/// One step's GPU time and kernels against `nvtx_kern_sum` with
/// `--filter-nvtx` on that very step (tests/data/filtered): its rows for
/// the step range are the kernels launched inside that one instance. Eager
/// steps only: a graph's kernels run after the step's CPU range has ended,
/// so the filter leaves most of them out, where the step row counts them.
#[test]
fn a_step_row_equals_nvtx_kern_sum_filtered_to_that_step() {
    const DECODE: &str = "execute_context_0(0)_generation_8(8)";
    let cases = [
        ("h200_llama8_eager_3steps", "dec_5", 5),
        ("h200_llama8_eager_3steps", "dec_all", 0),
    ];
    for (sample, case, index) in cases {
        let d = digest_sample(sample, &DigestOptions::default());
        let step = d
            .llm
            .steps
            .iter()
            .find(|s| s.range == DECODE && s.filter_index == Some(index))
            .unwrap_or_else(|| panic!("{sample}: no step {DECODE}/{index}"));
        let gt = groundtruth(&format!("filtered/{sample}__{case}"), "nvtx_kern_sum");
        let rows: Vec<_> = gt
            .iter()
            .filter(|r| r["NVTX Range"] == format!(":{DECODE}"))
            .collect();
        assert!(!rows.is_empty(), "{sample} {case}");
        let total: i64 = rows.iter().map(|r| int(r, "Total Time (ns)")).sum();
        let kernels: i64 = rows.iter().map(|r| int(r, "Kern Inst")).sum();
        assert_eq!(step.gpu_ns, total, "{sample} {case}: GPU time");
        assert_eq!(step.kernels as i64, kernels, "{sample} {case}: kernels");
    }
}

/// Every step's start, duration and `--filter-nvtx` index recomputed from
/// the NVTX table; their GPU time summed per phase is the phase's.
#[test]
fn step_rows_follow_the_step_ranges() {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        let steps = &d.llm.steps;
        let (_dir, conn) = sample_sql(sample);
        let mut stmt = conn
            .prepare(
                "SELECT start, end - start, rank FROM (
                   SELECT ne.start, ne.end, coalesce(ne.text, s.value) AS name,
                          ROW_NUMBER() OVER (PARTITION BY coalesce(ne.text, s.value)
                                             ORDER BY ne.start, ne.rowid) - 1 AS rank
                   FROM NVTX_EVENTS ne LEFT JOIN StringIds s ON s.id = ne.textId
                   WHERE ne.eventType IN (59, 60, 70, 71))
                 WHERE name LIKE 'execute_context%'
                 ORDER BY start",
            )
            .unwrap();
        let want: Vec<(i64, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let got: Vec<(i64, i64, i64)> = steps
            .iter()
            .map(|s| {
                (
                    s.start_ns,
                    s.duration_ns.unwrap(),
                    s.filter_index.unwrap() as i64,
                )
            })
            .collect();
        assert_eq!(got, want, "{sample}");
        assert!(steps.iter().enumerate().all(|(i, s)| s.step == i as u64));
        for phase in &d.llm.phases.phases {
            let sum: i64 = steps
                .iter()
                .filter(|s| s.phase == phase.phase)
                .map(|s| s.gpu_ns)
                .sum();
            assert_eq!(sum, phase.gpu_ns, "{sample} {:?}", phase.phase);
        }
    }
}

/// Each step's GPU window recomputed in SQL: the kernels (and, in graph
/// trace mode, whole-graph executions) whose launching call lies inside
/// the step range on the same thread; their first start, last end, and
/// the union of their intervals merged here. The phase's busy share is
/// summed from the same windows.
#[test]
fn step_gpu_windows_follow_the_work_each_step_launched() {
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        let (_dir, conn) = sample_sql(sample);
        // The test's own copy: an index keeps the join from scanning.
        conn.execute_batch("CREATE INDEX t_corr ON CUPTI_ACTIVITY_KIND_RUNTIME(correlationId)")
            .unwrap();
        let has_graph_trace = scalar(
            &conn,
            "SELECT count(*) FROM sqlite_master WHERE name = 'CUPTI_ACTIVITY_KIND_GRAPH_TRACE'",
        ) > 0;
        let graph_work = if has_graph_trace {
            "UNION ALL SELECT correlationId, globalPid, start, end FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
        } else {
            ""
        };
        let query = format!(
            "WITH steps AS MATERIALIZED (
               SELECT ne.start AS s, ne.end AS e, ne.globalTid AS tid
               FROM NVTX_EVENTS ne LEFT JOIN StringIds n ON n.id = ne.textId
               WHERE ne.eventType IN (59, 60, 70, 71)
                 AND coalesce(ne.text, n.value) LIKE 'execute_context%'),
             work AS (
               SELECT correlationId AS c, globalPid AS pid, start, end
               FROM CUPTI_ACTIVITY_KIND_KERNEL {graph_work})
             SELECT st.s, w.start, w.end
             FROM work w
             JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
               ON r.correlationId = w.c AND r.globalTid / 16777216 = w.pid / 16777216
             JOIN steps st ON st.tid = r.globalTid AND st.s <= r.start AND r.end <= st.e"
        );
        let mut per_step: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        let mut stmt = conn.prepare(&query).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        for row in rows {
            let (step, start, end): (i64, i64, i64) = row.unwrap();
            per_step.entry(step).or_default().push((start, end));
        }
        let mut phase_sums: HashMap<Phase, (i64, i64)> = HashMap::new();
        for s in &d.llm.steps {
            let want = per_step.remove(&s.start_ns).map(|mut spans| {
                spans.sort_unstable();
                let (mut busy, mut open) = (0, spans[0]);
                for &(start, end) in &spans[1..] {
                    if start > open.1 {
                        busy += open.1 - open.0;
                        open = (start, end);
                    } else {
                        open.1 = open.1.max(end);
                    }
                }
                let last = spans.iter().map(|&(_, e)| e).max().unwrap();
                (spans[0].0, last, busy + open.1 - open.0)
            });
            let got = s
                .gpu_start_ns
                .zip(s.gpu_end_ns)
                .map(|(a, b)| (a, b, s.gpu_busy_ns));
            assert_eq!(got, want, "{sample} step {}", s.step);
            if let Some((start, end, busy)) = want {
                let sums = phase_sums.entry(s.phase).or_default();
                sums.0 += busy;
                sums.1 += end - start;
            }
        }
        assert!(per_step.is_empty(), "{sample}: work in no step row");
        for p in &d.llm.phases.phases {
            let want = phase_sums
                .get(&p.phase)
                .filter(|&&(_, window)| window > 0)
                .map(|&(busy, window)| format!("{:.1}", 100.0 * busy as f64 / window as f64));
            assert_eq!(
                p.gpu_busy_pct.map(|v| format!("{v:.1}")),
                want,
                "{sample} {:?}",
                p.phase
            );
        }
    }
}

/// A kernel table out of start order (made here from a real sample by
/// rewriting its kernel rows newest first; no nsys export seen is written
/// so) takes the windows' second, sorting path, and gives every step the
/// window and busy time the ordered table gives.
#[test]
fn step_gpu_windows_do_not_depend_on_kernel_table_order() {
    for sample in ["h200_llama8_eager_1step", "h200_llama8_graphs_node_1step"] {
        let ordered = digest_sample(sample, &DigestOptions::default());
        let (dir, conn) = sample_sql(sample);
        conn.execute_batch(
            "CREATE TABLE k AS SELECT * FROM CUPTI_ACTIVITY_KIND_KERNEL ORDER BY start DESC;
             DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL;
             INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL SELECT * FROM k;
             DROP TABLE k;",
        )
        .unwrap();
        drop(conn);
        let path = dir.path().join("s.sqlite");
        let reversed = nsight_digest::nsys::digest(&path, &DigestOptions::default()).unwrap();
        let windows = |d: &nsight_digest::nsys::Digest| {
            d.llm
                .steps
                .iter()
                .map(|s| {
                    (
                        s.start_ns,
                        s.gpu_start_ns,
                        s.gpu_end_ns,
                        s.gpu_busy_ns,
                        s.gpu_ns,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(windows(&reversed), windows(&ordered), "{sample}");
        assert!(windows(&ordered).iter().all(|w| w.1.is_some()), "{sample}");
        let busy = |d: &nsight_digest::nsys::Digest| {
            d.llm
                .phases
                .phases
                .iter()
                .map(|p| p.gpu_busy_pct)
                .collect::<Vec<_>>()
        };
        assert_eq!(busy(&reversed), busy(&ordered), "{sample}");
    }
}

/// Every CUDA API call each step's thread made inside the step range,
/// from SQL: per step, the count and summed duration the digest gives the
/// step; per phase and API name (without its `_vNNNN` suffix, as the `api`
/// report names it), the count and total of the phase's API rows.
#[test]
fn api_calls_per_step_are_the_rows_inside_each_step_on_its_thread() {
    let mut phases_checked = 0;
    for sample in SAMPLES {
        let d = digest_sample(sample, &DigestOptions::default());
        let (_dir, conn) = sample_sql(sample);
        // The test's own copy: an index keeps the join from scanning.
        conn.execute_batch(
            "CREATE INDEX t_thread ON CUPTI_ACTIVITY_KIND_RUNTIME(globalTid, start)",
        )
        .unwrap();
        let query = "WITH steps AS MATERIALIZED (
               SELECT ne.start AS s, ne.end AS e, ne.globalTid AS tid
               FROM NVTX_EVENTS ne LEFT JOIN StringIds n ON n.id = ne.textId
               WHERE ne.eventType IN (59, 60, 70, 71)
                 AND coalesce(ne.text, n.value) LIKE 'execute_context%')
             SELECT st.s,
                    CASE WHEN substr(sn.value, -6, 2) = '_v'
                         THEN substr(sn.value, 1, length(sn.value) - 6)
                         ELSE sn.value END,
                    count(*), sum(r.end - r.start)
             FROM steps st
             JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
               ON r.globalTid = st.tid AND st.s <= r.start AND r.end <= st.e
             JOIN StringIds sn ON sn.id = r.nameId
             GROUP BY 1, 2";
        let mut per_step: HashMap<i64, Vec<(String, i64, i64)>> = HashMap::new();
        let mut stmt = conn.prepare(query).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        for row in rows {
            let (step, name, calls, ns): (i64, String, i64, i64) = row.unwrap();
            per_step.entry(step).or_default().push((name, calls, ns));
        }
        let mut per_phase: HashMap<Phase, HashMap<String, (i64, i64)>> = HashMap::new();
        for s in &d.llm.steps {
            let names = per_step.remove(&s.start_ns).unwrap_or_default();
            let want = names
                .iter()
                .fold((0, 0), |a, (_, c, ns)| (a.0 + c, a.1 + ns));
            assert_eq!(
                (s.api_calls as i64, s.api_ns),
                want,
                "{sample} step {}",
                s.step
            );
            let phase = per_phase.entry(s.phase).or_default();
            for (name, calls, ns) in names {
                let sum = phase.entry(name).or_default();
                sum.0 += calls;
                sum.1 += ns;
            }
        }
        assert!(per_step.is_empty(), "{sample}: calls in no step row");
        for p in &d.llm.phases.phases {
            let want = per_phase.remove(&p.phase).unwrap_or_default();
            let got: HashMap<String, (i64, i64)> = p
                .api
                .iter()
                .map(|a| (a.name.clone(), (a.calls as i64, a.total_ns)))
                .collect();
            assert_eq!(got, want, "{sample} {:?}", p.phase);
            let calls: i64 = want.values().map(|v| v.0).sum();
            let ns: i64 = want.values().map(|v| v.1).sum();
            let per_step = |v: i64| format!("{:.1}", v as f64 / p.steps as f64);
            assert_eq!(format!("{:.1}", p.api_calls_per_step), per_step(calls));
            assert_eq!(format!("{:.1}", p.api_ns_per_step), per_step(ns));
            assert!(p.api.windows(2).all(|w| w[0].total_ns >= w[1].total_ns));
            phases_checked += 1;
        }
    }
    assert!(phases_checked >= 10, "{phases_checked} phases");
}

/// Eager decode spends its API time launching each kernel; with full
/// graphs, a step launches one graph. The phases note names both.
#[test]
fn decode_api_time_goes_to_kernel_launches_eager_and_to_one_graph_launch_with_graphs() {
    let decode = |sample: &str| {
        let d = digest_sample(sample, &DigestOptions::default());
        d.llm.phases.phase(Phase::Decode).cloned().unwrap()
    };
    let (eager, graphs) = (
        decode("h200_llama8_eager_1step"),
        decode("h200_llama8_graphs_node_1step"),
    );
    assert_eq!(eager.api[0].name, "cudaLaunchKernel");
    assert!(graphs.api[0].name.starts_with("cudaGraphLaunch"));
    assert_eq!(format!("{:.1}", graphs.api[0].calls_per_step), "1.0");
    assert!(eager.api_calls_per_step > 100.0 * graphs.api_calls_per_step);
    let (code, out, err) = run(
        "nsys-digest",
        &[&sample("h200_llama8_eager_1step").display().to_string()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("decode steps' CUDA API, per step on the step's thread:"),
        "{out}"
    );
}
