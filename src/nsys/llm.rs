//! The LLM-inference view: CUDA graphs, engine steps (prefill/decode
//! phases), model layers, kernel time per (phase, category), communication
//! overlap (in `comm_overlap`) and the hotspot ranking per (phase, layer
//! type).
//!
//! Every kernel is placed once:
//! - its *step* is the step range around its launching API call (graph
//!   kernels: around the `cudaGraphLaunch`);
//! - its *layer* is the innermost enclosing range whose text parses as a
//!   module path with a layer index. Graph kernels have no layer ranges at
//!   replay, so in node trace mode they follow
//!   `graphNodeId → originalGraphNodeId → captured node creation time` to the
//!   ranges open on the capturing thread at capture.

use super::comm_overlap::{comm_overlap, CommOverlap};
use super::launch_index::LaunchIndex;
use super::nvtx_index::NvtxIndex;
use super::reports::largest_first;
use super::slots::{OptionalIds, RunIdGroups, RunSlots};
use super::step_calls::{CallSum, StepCalls, StepSpan};
use super::steps::{GpuWindow, StepFacts, StepRow};
use super::trace::{global_id, GraphNodeEvent, Trace};
use crate::categories::Categories;
use crate::stats::percent;
use regex::Regex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::Serialize;
use std::sync::OnceLock;

/// Options of the LLM view.
#[derive(Debug, Clone, Default)]
pub struct LlmOptions {
    /// A user step pattern with named groups `ctx`, `gen` and optionally
    /// `ctx_tokens`, `gen_tokens`.
    pub step_regex: Option<Regex>,
    pub categories: Categories,
    /// Split layer rows per phase.
    pub by_phase: bool,
}

/// Engine step kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prefill,
    Decode,
    Mixed,
    /// A step with no requests.
    Idle,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::Mixed => "mixed",
            Phase::Idle => "idle",
        }
    }

    fn classify(ctx: u64, gen: u64) -> Phase {
        match (ctx > 0, gen > 0) {
            (true, false) => Phase::Prefill,
            (false, true) => Phase::Decode,
            (true, true) => Phase::Mixed,
            (false, false) => Phase::Idle,
        }
    }
}

/// What a step range's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepName {
    pub format: &'static str,
    pub ctx_requests: u64,
    pub gen_requests: u64,
    pub ctx_tokens: Option<u64>,
    pub gen_tokens: Option<u64>,
}

fn step_patterns() -> &'static [(&'static str, Regex)] {
    static P: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    P.get_or_init(|| {
        vec![
            (
                "vllm",
                Regex::new(r"execute_context_(?P<ctx>\d+)\((?P<ctx_tokens>\d+)\)_generation_(?P<gen>\d+)\((?P<gen_tokens>\d+)\)").unwrap(),
            ),
            ("vllm-legacy", Regex::new(r"execute_new_(?P<ctx>\d+)_cached_(?P<gen>\d+)").unwrap()),
            (
                "tensorrt-llm",
                Regex::new(r"_forward_step(?: \d+)?: (?P<ctx>\d+) ctx reqs, (?P<gen>\d+) gen reqs").unwrap(),
            ),
        ]
    })
}

fn captures_to_step(format: &'static str, c: &regex::Captures<'_>) -> Option<StepName> {
    let num = |name: &str| c.name(name).and_then(|m| m.as_str().parse::<u64>().ok());
    // A user pattern may leave out one side: it counts as zero requests.
    let count = |name: &str| match c.name(name) {
        Some(m) if !m.as_str().is_empty() => m.as_str().parse::<u64>().ok(),
        _ => Some(0),
    };
    if c.name("ctx").is_none() && c.name("gen").is_none() {
        return None;
    }
    Some(StepName {
        format,
        ctx_requests: count("ctx")?,
        gen_requests: count("gen")?,
        ctx_tokens: num("ctx_tokens"),
        gen_tokens: num("gen_tokens"),
    })
}

/// Parse a step range name with the user pattern first, then the built-in ones.
pub fn parse_step(text: &str, user: Option<&Regex>) -> Option<StepName> {
    if let Some(re) = user {
        if let Some(c) = re.captures(text) {
            return captures_to_step("user", &c);
        }
    }
    step_patterns()
        .iter()
        .find_map(|(f, re)| re.captures(text).and_then(|c| captures_to_step(f, &c)))
}

/// A module path with a layer index, e.g. `model.layers.17.self_attn`
/// → (`model.layers.*.self_attn`, 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPath {
    pub layer_type: String,
    pub index: u32,
}

fn layer_patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        vec![
            (
                Regex::new(
                    r"^(?P<pre>.*?\b(?:layers|layer|h|blocks|block))\.(?P<idx>\d+)(?P<post>.*)$",
                )
                .unwrap(),
                ".",
            ),
            (
                Regex::new(
                    r"^(?P<pre>.*?\b(?:layers|layer|blocks|block))_(?P<idx>\d+)(?P<post>.*)$",
                )
                .unwrap(),
                "_",
            ),
            (
                Regex::new(r"^(?P<pre>.*?)\[(?P<idx>\d+)\](?P<post>.*)$").unwrap(),
                "[]",
            ),
        ]
    })
}

fn module_of(text: &str) -> &str {
    static DICT: OnceLock<Regex> = OnceLock::new();
    let dict =
        DICT.get_or_init(|| Regex::new(r#"['"]Module['"]\s*:\s*['"](?P<m>[^'"]+)['"]"#).unwrap());
    match dict.captures(text).and_then(|c| c.name("m")) {
        Some(m) => m.as_str(),
        None => text,
    }
}

/// Parse NVTX text as a module path with a layer index. Handles plain paths,
/// vLLM/SGLang layer-wise dict strings and SGLang's model-path prefix.
pub fn parse_layer(text: &str) -> Option<LayerPath> {
    let module = module_of(text).trim();
    if module.len() > 4096 {
        return None;
    }
    // The path is one token of the text: `FSDP::pre_forward (encoder.block.3), op_id = 9`.
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_.-/[]".contains(c);
    module
        .split(|c: char| !is_path_char(c))
        .filter(|t| !t.is_empty())
        .find_map(parse_layer_token)
}

fn parse_layer_token(module: &str) -> Option<LayerPath> {
    layer_patterns().iter().find_map(|(re, style)| {
        let c = re.captures(module)?;
        let index = c["idx"].parse().ok()?;
        let (pre, post) = (&c["pre"], &c["post"]);
        let layer_type = match *style {
            "." => format!("{pre}.*{post}"),
            "_" => format!("{pre}_*{post}"),
            _ => format!("{pre}[*]{post}"),
        };
        Some(LayerPath { layer_type, index })
    })
}

/// CUDA graph usage.
#[derive(Debug, Clone, Serialize)]
pub struct GraphReport {
    /// `node`, `graph` or `none`.
    pub trace_mode: String,
    /// `capture metadata` or `inferred from data`.
    pub trace_mode_source: String,
    pub graphs_captured: u64,
    pub graphs_instantiated: u64,
    pub launches: u64,
    /// Kernels recorded inside graphs (node trace mode).
    pub kernels: u64,
    pub kernels_per_launch: Option<f64>,
    /// GPU time inside graphs: node kernels, or whole-graph executions in
    /// graph trace mode (which are absent from the kernel table).
    pub gpu_ns: i64,
    pub eager_gpu_ns: i64,
    pub graph_share_pct: f64,
    pub per_graph: Vec<GraphRow>,
    /// vLLM-style mode: none, piecewise, full, full-decode-only,
    /// full-and-piecewise, or mixed.
    pub mode: String,
    pub evidence: Vec<String>,
}

/// One graph (graphId, or the exec graph id held in a node id's high bits).
#[derive(Debug, Clone, Serialize)]
pub struct GraphRow {
    /// Set when graphs ran in several processes: each process numbers
    /// its graphs from the same start, so graph 2 of two ranks are two
    /// graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub graph: i64,
    pub launches: u64,
    pub kernels: u64,
    pub gpu_ns: i64,
}

/// Per-phase totals.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub phase: Phase,
    pub steps: u64,
    pub gpu_ns: i64,
    pub tokens: Option<u64>,
    pub gpu_ns_per_token: Option<f64>,
    /// CPU duration of the step ranges.
    pub step_median_ns: f64,
    pub step_p90_ns: i64,
    pub share_pct: f64,
    /// Of the time from each step's first GPU work to its last, summed over
    /// the phase's steps, the share in which some of that work ran. Low in
    /// a phase whose steps the CPU's launches hold back.
    pub gpu_busy_pct: Option<f64>,
    /// CUDA API calls each step's thread made inside the step, per step of
    /// the phase, and their time per step (as `cuda_api_sum` sums it).
    pub api_calls_per_step: f64,
    pub api_ns_per_step: f64,
    /// The same per API name, the most time first.
    pub api: Vec<PhaseApi>,
}

/// One API name's calls inside a phase's steps.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseApi {
    /// Without a `_vNNNN` suffix, as the `api` report names it.
    pub name: String,
    pub calls: u64,
    pub total_ns: i64,
    pub calls_per_step: f64,
    pub ns_per_step: f64,
}

/// Engine steps found in NVTX.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// `detected` or `unknown`.
    pub status: String,
    pub format: Option<String>,
    pub reason: Option<String>,
    pub phases: Vec<PhaseSummary>,
    /// GPU time of kernels launched outside every step range.
    pub outside_steps_gpu_ns: i64,
}

impl PhaseReport {
    /// The summary of one phase, if the profile has steps of it.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseSummary> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// GPU time per layer type (optionally per phase).
#[derive(Debug, Clone, Serialize)]
pub struct LayerTypeSummary {
    pub layer_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Distinct layer indices of this type.
    pub layers: u64,
    pub kernels: u64,
    pub gpu_ns: i64,
    pub share_pct: f64,
}

/// GPU time of one layer index of one type.
#[derive(Debug, Clone, Serialize)]
pub struct LayerIndexSummary {
    pub layer_type: String,
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub kernels: u64,
    pub gpu_ns: i64,
    /// This index's time over the median of its siblings.
    pub ratio_to_median: f64,
    /// Costs at least [`OUTLIER_RATIO`] × the median of its siblings.
    pub outlier: bool,
}

/// A layer index is flagged when it costs this many times its siblings' median.
pub const OUTLIER_RATIO: f64 = 1.5;

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// `detected` or `unknown`.
    pub status: String,
    pub reason: Option<String>,
    /// Kernel time that landed in a layer, over all kernel time.
    pub coverage_pct: f64,
    pub graph_kernels: u64,
    pub graph_kernels_with_layer: u64,
    /// Why graph kernels have no layer, when they have none.
    pub graph_note: Option<String>,
    pub types: Vec<LayerTypeSummary>,
    pub indices: Vec<LayerIndexSummary>,
}

/// One hotspot: a kernel inside a (phase, layer type).
#[derive(Debug, Clone, Serialize)]
pub struct Hotspot {
    /// `all` when no phases were detected, `outside steps` for the rest.
    pub phase: String,
    /// `(no layer)` for kernels outside every layer range.
    pub layer_type: String,
    pub kernel: String,
    pub category: String,
    pub gpu_ns: i64,
    pub share_of_phase_pct: f64,
    pub instances: u64,
    pub median_ns: f64,
}

/// GPU time of one kernel name within one phase, for comparing runs.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseKernel {
    /// As in [`Hotspot::phase`].
    pub phase: String,
    pub kernel: String,
    pub gpu_ns: i64,
    pub instances: u64,
}

/// GPU time of one kernel category (gemm, attention, communication, ...)
/// within one phase: how a phase's kernel time splits by kind of work.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseCategory {
    /// As in [`Hotspot::phase`].
    pub phase: String,
    pub category: String,
    pub gpu_ns: i64,
    pub share_of_phase_pct: f64,
    pub instances: u64,
    /// Distinct kernel names in the category.
    pub kernel_names: u64,
}

/// GPU time of one layer type within one phase, for comparing runs.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseLayer {
    /// As in [`Hotspot::phase`].
    pub phase: String,
    pub layer_type: String,
    pub gpu_ns: i64,
}

/// The whole LLM view.
#[derive(Debug, Clone, Serialize)]
pub struct LlmDigest {
    pub graphs: GraphReport,
    pub phases: PhaseReport,
    /// Every engine step, by start time.
    pub steps: Vec<StepRow>,
    pub layers: LayerReport,
    pub hotspots: Vec<Hotspot>,
    /// Kernel time per (phase, category), phases in step order.
    pub categories: Vec<PhaseCategory>,
    /// Per device, communication kernels and their overlap with compute;
    /// empty when no kernel is in the communication category.
    pub communication: Vec<CommOverlap>,
    pub phase_kernels: Vec<PhaseKernel>,
    pub phase_layers: Vec<PhaseLayer>,
}

/// How many kernels per (phase, layer type) the hotspot list keeps.
pub const HOTSPOTS_PER_GROUP: usize = 5;

/// Where each kernel (and graph execution) falls, 8 bytes per kernel: at
/// 1 GB, `Option`s took 20 and were read by every view below.
struct Placement {
    /// Step index per kernel.
    kernel_step: OptionalIds,
    /// Layer per kernel, as a slot in `layers`.
    kernel_layer: OptionalIds,
    /// The layers kernels fall in: (interned type, index).
    layers: Vec<(u32, u32)>,
    exec_step: OptionalIds,
    steps: Vec<Step>,
    layer_types: Vec<String>,
    graph_kernels_with_layer: u64,
}

struct Step {
    range: u32,
    name: StepName,
    phase: Phase,
}

pub fn analyse(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &NvtxIndex,
    names: super::trace::NameStyle,
    opts: &LlmOptions,
) -> LlmDigest {
    let placement = place(trace, launches, index, opts);
    let graph_api = GraphApiCalls::count(trace, launches);
    // Two passes, over the kernels and over the calls: a core the other
    // reports have left idle can take the second.
    let (sums, calls) = rayon::join(
        || KernelSums::gather(trace, &placement, names, opts.by_phase),
        || calls_in_steps(trace, &placement, &graph_api.launch_names),
    );
    let per_step = with_graph_executions(trace, &placement, sums.steps);
    let phases = phase_report(trace, &placement, &per_step, &calls);
    let steps = step_rows(trace, &placement, &per_step, &calls, &phases);
    let graphs = graph_report(
        trace,
        launches,
        &placement,
        &opts.categories,
        names,
        (sums.graphs, graph_api, &calls.graph_launches),
    );
    let layers = layer_report(trace, &placement, sums.layers);
    let groups = sums.groups;
    let phase_kernels = phase_kernels(trace, &groups);
    let name_categories = name_categories(trace, &groups, &opts.categories);
    let categories = phase_categories(&groups, &name_categories);
    let communication = comm_overlap(trace, names, &comm_name_ids(&name_categories));
    let phase_layers = phase_layers(&placement, &groups);
    let hotspots = hotspots(trace, &placement, &opts.categories, groups);
    LlmDigest {
        graphs,
        phases,
        steps,
        layers,
        hotspots,
        categories,
        communication,
        phase_kernels,
        phase_layers,
    }
}

/// A call's innermost step range (as a step) and layer range (as type and
/// index).
type StepAndLayer = (Option<u32>, Option<(u32, u32)>);

/// Each kernel's step and layer, and each graph launch's step.
fn place(trace: &Trace, launches: &LaunchIndex, index: &NvtxIndex, opts: &LlmOptions) -> Placement {
    let roles = RangeRoles::classify(trace, opts);
    let exec_step: OptionalIds = launches
        .graph_exec_call
        .iter()
        .map(|c| roles.around(trace, index.around_call(c)).0)
        .collect();
    let kernels = place_kernels(trace, launches, index, &roles);
    Placement {
        kernel_step: kernels.step,
        kernel_layer: kernels.layer,
        layers: kernels.layers,
        exec_step,
        steps: roles.steps,
        layer_types: roles.layer_types,
        graph_kernels_with_layer: kernels.graph_kernels_with_layer,
    }
}

/// What each NVTX range is to the LLM view: a step, a layer, or neither.
struct RangeRoles {
    steps: Vec<Step>,
    /// Index in `steps`, per range.
    range_step: Vec<Option<u32>>,
    /// (interned layer type, layer index), per range.
    range_layer: Vec<Option<(u32, u32)>>,
    layer_types: Vec<String>,
}

impl RangeRoles {
    fn classify(trace: &Trace, opts: &LlmOptions) -> RangeRoles {
        // Parse each distinct range text once.
        let mut text_step: HashMap<u32, Option<StepName>> = HashMap::default();
        let mut text_layer: HashMap<u32, Option<LayerPath>> = HashMap::default();
        let mut type_ids: HashMap<String, u32> = HashMap::default();
        let mut roles = RangeRoles {
            steps: Vec::new(),
            range_step: vec![None; trace.nvtx.len()],
            range_layer: vec![None; trace.nvtx.len()],
            layer_types: Vec::new(),
        };
        for (i, r) in trace.nvtx.iter().enumerate() {
            let text = &trace.nvtx_names[r.text as usize];
            let step = text_step
                .entry(r.text)
                .or_insert_with(|| parse_step(text, opts.step_regex.as_ref()))
                .clone();
            if let Some(name) = step {
                roles.range_step[i] = Some(roles.steps.len() as u32);
                roles.steps.push(Step {
                    range: i as u32,
                    phase: Phase::classify(name.ctx_requests, name.gen_requests),
                    name,
                });
                continue;
            }
            let layer = text_layer
                .entry(r.text)
                .or_insert_with(|| parse_layer(text));
            if let Some(l) = layer {
                let id = *type_ids.entry(l.layer_type.clone()).or_insert_with(|| {
                    roles.layer_types.push(l.layer_type.clone());
                    roles.layer_types.len() as u32 - 1
                });
                roles.range_layer[i] = Some((id, l.index));
            }
        }
        roles
    }

    /// The innermost (last-started) step range and layer range around a
    /// call, found in one walk over its enclosing ranges.
    fn around(&self, trace: &Trace, enclosing: &[u32]) -> StepAndLayer {
        // (start, range) of the innermost candidate so far.
        let mut step: Option<(i64, u32)> = None;
        let mut layer: Option<(i64, u32)> = None;
        for &r in enclosing {
            let key = (trace.nvtx[r as usize].start, r);
            if self.range_step[r as usize].is_some() && step.is_none_or(|s| key > s) {
                step = Some(key);
            }
            if self.range_layer[r as usize].is_some() && layer.is_none_or(|l| key > l) {
                layer = Some(key);
            }
        }
        (
            step.and_then(|(_, r)| self.range_step[r as usize]),
            layer.and_then(|(_, r)| self.range_layer[r as usize]),
        )
    }
}

/// Step and layer of every kernel.
struct KernelPlaces {
    step: OptionalIds,
    /// A slot in `layers`.
    layer: OptionalIds,
    layers: Vec<(u32, u32)>,
    graph_kernels_with_layer: u64,
}

/// One pass over the kernels for both placements. A kernel replayed in a
/// graph takes the layer its node was captured in.
fn place_kernels(
    trace: &Trace,
    launches: &LaunchIndex,
    index: &NvtxIndex,
    roles: &RangeRoles,
) -> KernelPlaces {
    let capture_layers = graph_node_layers(trace, index, &roles.range_layer);
    let mut places = KernelPlaces {
        step: OptionalIds::with_capacity(trace.kernels.len()),
        layer: OptionalIds::with_capacity(trace.kernels.len()),
        layers: Vec::new(),
        graph_kernels_with_layer: 0,
    };
    let mut layer_slots = RunSlots::default();
    // Kernels come in runs launched inside the same ranges, which the
    // index stores once: walking each kernel's ranges again was about a
    // fifth of this pass at 1 GB.
    let mut last: (&[u32], StepAndLayer) = (&[], (None, None));
    for (i, c) in launches.kernel_call.iter().enumerate() {
        let enclosing = index.around_call(c);
        if !std::ptr::eq(enclosing, last.0) {
            last = (enclosing, roles.around(trace, enclosing));
        }
        let (step, mut layer) = last.1;
        if let Some(node) = trace.kernels.graph_node(i) {
            let pid = trace.kernels.global_pid(&trace.kernels[i]);
            layer = capture_layers.get(&(pid, node)).copied().flatten();
            places.graph_kernels_with_layer += layer.is_some() as u64;
        }
        places.step.push(step);
        places.layer.push(layer.map(|l| {
            let (slot, new) = layer_slots.slot(l);
            if new {
                places.layers.push(l);
            }
            slot as u32
        }));
    }
    places
}

/// A graph node in its process: each process numbers its nodes from the
/// same start, so two ranks of one model hold the same node ids.
type ProcessNode = (Option<i64>, i64);

/// Layer of each instantiated graph node, from the ranges open on the
/// capturing thread when the original node was created.
fn graph_node_layers(
    trace: &Trace,
    index: &NvtxIndex,
    range_layer: &[Option<(u32, u32)>],
) -> HashMap<ProcessNode, Option<(u32, u32)>> {
    let process_node = |e: &GraphNodeEvent, node| (e.global_tid.map(global_id::process), node);
    let created: HashMap<ProcessNode, (i64, Option<i64>)> = trace
        .graph_node_events
        .iter()
        .filter(|e| e.original.is_none())
        .map(|e| (process_node(e, e.node), (e.start, e.global_tid)))
        .collect();
    let mut exec_nodes = Vec::new();
    let mut points = Vec::new();
    for e in trace.graph_node_events.iter() {
        let Some(orig) = e.original else { continue };
        if let Some(&(t, Some(tid))) = created.get(&process_node(e, orig)) {
            exec_nodes.push(process_node(e, e.node));
            points.push((tid, t));
        }
    }
    let open = index.ranges_at(trace, &points);
    exec_nodes
        .into_iter()
        .zip(open)
        .map(|(node, ranges)| {
            let layer = ranges
                .iter()
                .copied()
                .filter(|&r| range_layer[r as usize].is_some())
                .max_by_key(|&r| (trace.nvtx[r as usize].start, r))
                .and_then(|r| range_layer[r as usize]);
            (node, layer)
        })
        .collect()
}

fn p90(sorted: &[i64]) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * 0.9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// GPU time per step: kernels (summed in [`KernelSums`]) plus whole-graph
/// executions, and each step's GPU window over both.
fn with_graph_executions(trace: &Trace, p: &Placement, kernels: StepSums) -> StepSums {
    let StepSums {
        mut per_step,
        mut outside,
        kernels,
        mut windows,
    } = kernels;
    let work = trace.graph_executions.iter().zip(p.exec_step.iter());
    for (g, s) in work {
        let d = g.gpu.end - g.gpu.start;
        match s {
            Some(s) => {
                per_step[s as usize] += d;
                // Executions are a second ordered sequence beside the kernels.
                windows[s as usize].set_unordered();
            }
            None => outside += d,
        }
    }
    measure_unordered_windows(trace, p, &mut windows);
    StepSums {
        per_step,
        outside,
        kernels,
        windows,
    }
}

/// The windows that saw GPU work out of start order, measured again from
/// all their steps' kernels and graph executions. One more pass over the
/// kernels, made only when such a window exists: nsys writes the kernel
/// table in start order, so it takes graph trace mode or an unusual file.
fn measure_unordered_windows(trace: &Trace, p: &Placement, windows: &mut [GpuWindow]) {
    let mut slot: Vec<Option<usize>> = vec![None; windows.len()];
    let mut intervals: Vec<Vec<(i64, i64)>> = Vec::new();
    for (s, w) in windows.iter().enumerate() {
        if w.needs_measuring() {
            slot[s] = Some(intervals.len());
            intervals.push(Vec::new());
        }
    }
    if intervals.is_empty() {
        return;
    }
    let mut push = |step: u32, start: i64, end: i64| {
        if let Some(k) = slot[step as usize] {
            intervals[k].push((start, end));
        }
    };
    for (i, k) in trace.kernels.iter().enumerate() {
        if let Some(s) = p.kernel_step.get(i) {
            push(
                s,
                k.start,
                k.start.saturating_add(trace.kernels.duration(k)),
            );
        }
    }
    let execs = trace.graph_executions.iter().zip(p.exec_step.iter());
    for (g, s) in execs {
        if let Some(s) = s {
            push(s, g.gpu.start, g.gpu.end);
        }
    }
    for (s, k) in slot.into_iter().enumerate() {
        if let Some(k) = k {
            windows[s] = GpuWindow::measured(&mut intervals[k]);
        }
    }
}

/// The per-step rows of [`super::steps`], each against its phase's median
/// as the phase report has it.
fn step_rows(
    trace: &Trace,
    p: &Placement,
    sums: &StepSums,
    calls: &StepCalls,
    phases: &PhaseReport,
) -> Vec<StepRow> {
    let facts: Vec<StepFacts> = p
        .steps
        .iter()
        .zip(&sums.per_step)
        .zip(&sums.kernels)
        .zip(&sums.windows)
        .zip(&calls.per_step)
        .map(|((((step, &gpu_ns), &kernels), &window), &api)| StepFacts {
            range: step.range,
            phase: step.phase,
            tokens: step_tokens(step),
            gpu_ns,
            kernels,
            window,
            api,
        })
        .collect();
    let medians: Vec<(Phase, f64)> = phases
        .phases
        .iter()
        .map(|s| (s.phase, s.step_median_ns))
        .collect();
    super::steps::step_rows(trace, &facts, &medians)
}

fn phase_report(trace: &Trace, p: &Placement, sums: &StepSums, calls: &StepCalls) -> PhaseReport {
    let StepSums {
        per_step,
        outside,
        windows,
        ..
    } = sums;
    let outside = *outside;
    if p.steps.is_empty() {
        return PhaseReport {
            status: "unknown".into(),
            format: None,
            reason: Some(
                "no NVTX range names an engine step (vLLM execute_context_N(T)_generation_M(T) or execute_new_N_cached_M, TensorRT-LLM _forward_step: N ctx reqs, M gen reqs); pass --step-regex with named groups ctx and gen".into(),
            ),
            phases: Vec::new(),
            outside_steps_gpu_ns: outside,
        };
    }
    let mut groups: HashMap<Phase, PhaseSteps> = HashMap::default();
    let steps = p
        .steps
        .iter()
        .zip(per_step)
        .zip(windows)
        .zip(&calls.per_step);
    for (((step, &gpu_ns), w), &(api_calls, api_ns)) in steps {
        let r = &trace.nvtx[step.range as usize];
        let g = groups.entry(step.phase).or_default();
        g.api_calls += api_calls;
        g.api_ns += api_ns;
        g.durations.push(r.end.map_or(0, |e| e - r.start));
        g.gpu_ns += gpu_ns;
        if let Some((start, end)) = w.bounds() {
            g.gpu_window_ns += end - start;
            g.gpu_busy_ns += w.busy_ns();
        }
        g.tokens = g.tokens.zip(step_tokens(step)).map(|(a, b)| a + b);
    }
    let grand: i64 = per_step.iter().sum();
    let mut phases: Vec<PhaseSummary> = groups
        .into_iter()
        .map(|(phase, steps)| {
            let mut summary = steps.summary(phase, grand);
            summary.api = phase_api(trace, &calls.per_group[phase as usize], summary.steps);
            summary
        })
        .collect();
    phases.sort_by_key(|s| s.phase);
    let mut formats: Vec<&str> = p.steps.iter().map(|s| s.name.format).collect();
    formats.sort_unstable();
    formats.dedup();
    PhaseReport {
        status: "detected".into(),
        format: Some(formats.join(", ")),
        reason: None,
        phases,
        outside_steps_gpu_ns: outside,
    }
}

/// The API calls inside each step, summed per step and per phase; none
/// without steps, where the pass over the calls is skipped.
fn calls_in_steps(trace: &Trace, p: &Placement, launch_names: &[i64]) -> StepCalls {
    if p.steps.is_empty() {
        return StepCalls::default();
    }
    let spans: Vec<StepSpan> = p
        .steps
        .iter()
        .map(|s| {
            let r = &trace.nvtx[s.range as usize];
            StepSpan {
                tid: r.global_tid,
                start: r.start,
                end: r.end.unwrap_or(i64::MAX),
                group: s.phase as usize,
            }
        })
        .collect();
    super::step_calls::gather(&trace.api_calls, &spans, launch_names)
}

/// One phase's calls per API name as the `api` report names them, the
/// most time first.
fn phase_api(trace: &Trace, sums: &[(i64, CallSum)], steps: u64) -> Vec<PhaseApi> {
    let mut by_name: HashMap<&str, CallSum> = HashMap::default();
    for &(id, (calls, ns)) in sums {
        let name = super::trace::strip_version_suffix(trace.strings.get(id));
        let sum = by_name.entry(name).or_default();
        sum.0 += calls;
        sum.1 += ns;
    }
    let per_step = |v: f64| v / steps.max(1) as f64;
    let mut rows: Vec<PhaseApi> = by_name
        .into_iter()
        .map(|(name, (calls, total_ns))| PhaseApi {
            name: name.to_string(),
            calls,
            total_ns,
            calls_per_step: per_step(calls as f64),
            ns_per_step: per_step(total_ns as f64),
        })
        .collect();
    largest_first(&mut rows, |r| (r.total_ns, &r.name));
    rows
}

/// The tokens a step processed, where its name counts them.
fn step_tokens(step: &Step) -> Option<u64> {
    let name = &step.name;
    match step.phase {
        Phase::Prefill => name.ctx_tokens,
        // One token per decoding request and step when the name has no count.
        Phase::Decode => name.gen_tokens.or(Some(name.gen_requests)),
        Phase::Mixed => name.ctx_tokens.zip(name.gen_tokens).map(|(a, b)| a + b),
        Phase::Idle => Some(0),
    }
}

/// One phase's steps: their durations, GPU time and tokens (`None` once a
/// step does not count its tokens).
struct PhaseSteps {
    durations: Vec<i64>,
    gpu_ns: i64,
    tokens: Option<u64>,
    /// The steps' GPU windows, and the time their work ran in them.
    gpu_window_ns: i64,
    gpu_busy_ns: i64,
    api_calls: u64,
    api_ns: i64,
}

impl Default for PhaseSteps {
    fn default() -> Self {
        PhaseSteps {
            durations: Vec::new(),
            gpu_ns: 0,
            tokens: Some(0),
            gpu_window_ns: 0,
            gpu_busy_ns: 0,
            api_calls: 0,
            api_ns: 0,
        }
    }
}

impl PhaseSteps {
    fn summary(mut self, phase: Phase, grand_gpu_ns: i64) -> PhaseSummary {
        self.durations.sort_unstable();
        let median = crate::stats::DurationStats::from_values(&mut self.durations.clone())
            .map_or(0.0, |s| s.median_ns);
        let (gpu_ns, tokens) = (self.gpu_ns, self.tokens);
        let steps = self.durations.len() as f64;
        PhaseSummary {
            phase,
            steps: self.durations.len() as u64,
            gpu_ns,
            tokens,
            gpu_ns_per_token: tokens.filter(|&t| t > 0).map(|t| gpu_ns as f64 / t as f64),
            step_median_ns: median,
            step_p90_ns: p90(&self.durations),
            share_pct: percent(gpu_ns as f64, grand_gpu_ns as f64),
            gpu_busy_pct: (self.gpu_window_ns > 0)
                .then(|| percent(self.gpu_busy_ns as f64, self.gpu_window_ns as f64)),
            api_calls_per_step: self.api_calls as f64 / steps,
            api_ns_per_step: self.api_ns as f64 / steps,
            api: Vec::new(),
        }
    }
}

/// An API name without any `_vN` version suffix. (The reports keep NVIDIA's
/// display rule, which strips only four-digit versions.)
fn api_base_name(name: &str) -> &str {
    match name.rfind("_v") {
        Some(i) if i + 2 < name.len() && name[i + 2..].bytes().all(|b| b.is_ascii_digit()) => {
            &name[..i]
        }
        _ => name,
    }
}

fn is_graph_launch(name: &str) -> bool {
    name.starts_with("cudaGraphLaunch") || name.starts_with("cuGraphLaunch")
}

/// Per graph: its launches as distinct (process, correlation id), its
/// kernel count and their total time.
type GraphTally = (GraphLaunches, u64, i64);

/// The distinct (process, correlation id) launches of one graph. A
/// launch's kernels come one after another, so a repeat of the last
/// launch skips the set.
#[derive(Default)]
struct GraphLaunches {
    seen: rustc_hash::FxHashSet<(Option<i64>, i64)>,
    last: Option<(Option<i64>, i64)>,
}

impl GraphLaunches {
    fn insert(&mut self, launch: (Option<i64>, i64)) {
        if self.last != Some(launch) {
            self.seen.insert(launch);
            self.last = Some(launch);
        }
    }

    fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The graph API calls: launches, captures and instantiations, and the
/// names graphs were launched under.
struct GraphApiCalls {
    launches: u64,
    captured: u64,
    instantiated: u64,
    launch_names: Vec<i64>,
}

impl GraphApiCalls {
    /// Each count sums the launch index's calls per name id.
    fn count(trace: &Trace, launches: &LaunchIndex) -> GraphApiCalls {
        let calls_per_name = &launches.calls_per_name;
        let base_name = |id: i64| api_base_name(trace.strings.get(id));
        let count_api = |pred: &dyn Fn(&str) -> bool| -> u64 {
            calls_per_name
                .iter()
                .filter(|(id, _)| pred(base_name(*id)))
                .map(|(_, n)| n)
                .sum()
        };
        GraphApiCalls {
            launches: count_api(&is_graph_launch),
            captured: count_api(&|n| n == "cudaStreamEndCapture" || n == "cuStreamEndCapture"),
            instantiated: count_api(&|n| {
                n.starts_with("cudaGraphInstantiate") || n.starts_with("cuGraphInstantiate")
            }),
            launch_names: calls_per_name
                .iter()
                .map(|&(id, _)| id)
                .filter(|&id| is_graph_launch(base_name(id)))
                .collect(),
        }
    }
}

/// How CUDA graphs ran: trace mode, API counts, GPU time per graph, and the
/// vLLM-style mode inferred from them.
fn graph_report(
    trace: &Trace,
    launches: &LaunchIndex,
    p: &Placement,
    categories: &Categories,
    names: super::trace::NameStyle,
    (kernels, api, launches_in): (GraphSums, GraphApiCalls, &[u64]),
) -> GraphReport {
    let GraphSums {
        node_kernels,
        eager_gpu_ns,
    } = kernels;
    let (trace_mode, source) = graph_trace_mode(trace, &node_kernels);
    let rows = per_graph_rows(trace, &node_kernels);
    let gpu_ns: i64 = rows.iter().map(|r| r.gpu_ns).sum();
    let graph_launch_ids: usize = rows.iter().map(|r| r.launches as usize).sum();
    let graph_calls = GraphCalls {
        launches_in,
        total: api.launches,
    };
    let (mode, evidence) = infer_mode(trace, launches, p, categories, names, graph_calls);
    GraphReport {
        trace_mode,
        trace_mode_source: source.into(),
        graphs_captured: api.captured,
        graphs_instantiated: api.instantiated,
        launches: api.launches,
        kernels: node_kernels.len() as u64,
        kernels_per_launch: (graph_launch_ids > 0 && !node_kernels.is_empty())
            .then(|| node_kernels.len() as f64 / graph_launch_ids as f64),
        gpu_ns,
        eager_gpu_ns,
        graph_share_pct: percent(gpu_ns as f64, (gpu_ns + eager_gpu_ns) as f64),
        per_graph: rows,
        mode,
        evidence,
    }
}

/// The CUDA-graph trace mode, and whether the capture said so or the
/// data did.
fn graph_trace_mode(trace: &Trace, node_kernels: &[usize]) -> (String, &'static str) {
    match trace.schema.graph_trace_mode() {
        Some(m) => (m.to_ascii_lowercase(), "capture metadata"),
        None if !trace.graph_executions.is_empty() => ("graph".to_string(), "inferred from data"),
        None if !node_kernels.is_empty() => ("node".to_string(), "inferred from data"),
        None => ("none".to_string(), "inferred from data"),
    }
}

/// Per graph: distinct launches, kernels and GPU time, from the kernels
/// replayed in graphs (node trace) and whole graph executions (graph
/// trace), by graph id.
fn per_graph_rows(trace: &Trace, node_kernels: &[usize]) -> Vec<GraphRow> {
    let graph_of_kernel = |i: usize| -> i64 {
        trace
            .kernel_graph_ids
            .as_ref()
            .and_then(|g| g[i])
            .unwrap_or_else(|| trace.kernels.graph_node(i).unwrap_or(0) >> 32)
    };
    let mut per_graph: HashMap<(Option<i64>, i64), GraphTally> = HashMap::default();
    for &i in node_kernels {
        let k = &trace.kernels[i];
        let pid = trace.kernels.global_pid(k);
        let g = per_graph.entry((pid, graph_of_kernel(i))).or_default();
        g.0.insert((pid, k.correlation()));
        g.1 += 1;
        g.2 += trace.kernels.duration(k);
    }
    for ge in &trace.graph_executions {
        let graph = ge.graph_exec_id.or(ge.graph_id).unwrap_or(0);
        let g = per_graph.entry((ge.gpu.global_pid, graph)).or_default();
        g.0.insert((ge.gpu.global_pid, ge.gpu.correlation));
        g.2 += ge.gpu.end - ge.gpu.start;
    }
    let processes: HashSet<Option<i64>> = per_graph.keys().map(|&(p, _)| p).collect();
    let split = processes.len() > 1;
    let mut rows: Vec<GraphRow> = per_graph
        .into_iter()
        .map(|((global_pid, graph), (l, kernels, gpu_ns))| GraphRow {
            pid: global_pid.filter(|_| split).map(global_id::pid),
            graph,
            launches: l.len() as u64,
            kernels,
            gpu_ns,
        })
        .collect();
    rows.sort_by_key(|r| (r.pid, r.graph));
    rows
}

/// The API name ids of graph launches, and how many calls they made.
struct GraphCalls<'a> {
    /// Graph launches per step.
    launches_in: &'a [u64],
    total: u64,
}

/// vLLM-style graph mode from what each step does: a step is `eager` (no
/// graph launch), `full` (graph launches and no eager attention kernel) or
/// `piecewise` (graph launches with eager attention between them).
fn infer_mode(
    trace: &Trace,
    launches: &LaunchIndex,
    p: &Placement,
    categories: &Categories,
    names: super::trace::NameStyle,
    graph_calls: GraphCalls<'_>,
) -> (String, Vec<String>) {
    let total_launches = graph_calls.total;
    if total_launches == 0 {
        return (
            "none".into(),
            vec!["no cudaGraphLaunch/cuGraphLaunch call in the profile".into()],
        );
    }
    if p.steps.is_empty() {
        return (
            "unknown".into(),
            vec![format!("{total_launches} graph launches, but no step ranges to tell which steps use graphs")],
        );
    }
    let launches_in = graph_calls.launches_in;
    let attention_in = eager_attention_per_step(trace, launches, p, categories, names);
    let mut per_phase: HashMap<Phase, StepKinds> = HashMap::default();
    for (i, s) in p.steps.iter().enumerate() {
        let kind = match (launches_in[i] > 0, attention_in[i] > 0) {
            (false, _) => EAGER,
            (true, false) => FULL,
            (true, true) => PIECEWISE,
        };
        per_phase.entry(s.phase).or_default()[kind] += 1;
    }
    (mode_name(&per_phase).to_string(), mode_evidence(&per_phase))
}

/// Steps per kind, indexed by [`EAGER`], [`FULL`] and [`PIECEWISE`].
type StepKinds = [u64; 3];
const EAGER: usize = 0;
const FULL: usize = 1;
const PIECEWISE: usize = 2;

/// Eager (launched, not replayed) attention kernels per step.
fn eager_attention_per_step(
    trace: &Trace,
    launches: &LaunchIndex,
    p: &Placement,
    categories: &Categories,
    names: super::trace::NameStyle,
) -> Vec<u64> {
    let mut attention_in = vec![0; p.steps.len()];
    let mut is_attention: HashMap<i64, bool> = HashMap::default();
    for i in 0..trace.kernels.len() {
        if trace.kernels.graph_node(i).is_some() || launches.kernel_call.get(i).is_none() {
            continue;
        }
        if let Some(s) = p.kernel_step.get(i) {
            // Each name is classified once: the patterns cost microseconds
            // on a long demangled name, and there are millions of kernels.
            let name = trace.kernel_name_id(i, names);
            let attention = *is_attention
                .entry(name)
                .or_insert_with(|| categories.classify(trace.strings.get(name)) == "attention");
            attention_in[s as usize] += u64::from(attention);
        }
    }
    attention_in
}

fn mode_evidence(per_phase: &HashMap<Phase, StepKinds>) -> Vec<String> {
    let mut phases: Vec<Phase> = per_phase.keys().copied().collect();
    phases.sort();
    phases
        .iter()
        .map(|ph| {
            let [eager, full, piecewise] = per_phase[ph];
            format!(
                "{}: {} steps eager, {} full-graph (graph launch, no eager attention), {} piecewise (graph launches + eager attention)",
                ph.as_str(),
                eager,
                full,
                piecewise
            )
        })
        .collect()
}

/// The mode the step kinds add up to, named after vLLM's `cudagraph_mode`.
/// In every mode vLLM runs a batch it captured no graph for (a prefill
/// past the largest capture size) eagerly, so eager steps outside decode
/// leave the mode as decode shows it.
fn mode_name(per_phase: &HashMap<Phase, StepKinds>) -> &'static str {
    let all = |c: &StepKinds, kinds: &[usize]| {
        kinds.iter().map(|&k| c[k]).sum::<u64>() == c.iter().sum::<u64>()
    };
    let all_kind = |kind: usize| per_phase.values().all(|c| all(c, &[kind]));
    let decode_all = |kind: usize| {
        per_phase
            .get(&Phase::Decode)
            .is_some_and(|c| all(c, &[kind]))
    };
    let others_within = |kinds: &[usize]| {
        per_phase
            .iter()
            .filter(|(ph, _)| **ph != Phase::Decode)
            .all(|(_, c)| all(c, kinds))
    };
    if all_kind(EAGER) {
        "none (graph launches outside step ranges only)"
    } else if all_kind(FULL) {
        "full"
    } else if decode_all(FULL) && others_within(&[EAGER]) {
        "full-decode-only"
    } else if decode_all(FULL) && others_within(&[EAGER, PIECEWISE]) {
        "full-and-piecewise"
    } else if decode_all(PIECEWISE) && others_within(&[EAGER, PIECEWISE]) || all_kind(PIECEWISE) {
        "piecewise"
    } else {
        "mixed"
    }
}

/// (layer type, layer index, phase).
type LayerIndexKey = (u32, u32, Option<Phase>);

fn layer_report(trace: &Trace, p: &Placement, kernels: LayerSums) -> LayerReport {
    let LayerSums {
        total,
        covered,
        graph_kernels,
        per_index,
        ..
    } = kernels;
    let graph_note = layer_graph_note(trace, p, graph_kernels);
    if per_index.is_empty() {
        let reason = if p.layer_types.is_empty() {
            "no NVTX range names a module with a layer index (model.layers.N..., layers.N, layer_N, h.N, [N])"
        } else {
            "ranges name layers, but no kernel was launched inside one"
        };
        return LayerReport {
            status: "unknown".into(),
            reason: Some(reason.into()),
            coverage_pct: 0.0,
            graph_kernels,
            graph_kernels_with_layer: 0,
            graph_note,
            types: Vec::new(),
            indices: Vec::new(),
        };
    }
    LayerReport {
        status: "detected".into(),
        reason: None,
        coverage_pct: percent(covered as f64, total as f64),
        graph_kernels,
        graph_kernels_with_layer: p.graph_kernels_with_layer,
        graph_note,
        types: layer_type_rows(p, &per_index, total),
        indices: layer_index_rows(p, per_index),
    }
}

/// Why graph work has no layer, where some has none.
fn layer_graph_note(trace: &Trace, p: &Placement, graph_kernels: u64) -> Option<String> {
    if !trace.graph_executions.is_empty() {
        let ns: i64 = trace
            .graph_executions
            .iter()
            .map(|g| g.gpu.end - g.gpu.start)
            .sum();
        return Some(format!(
            "graph trace mode: {:.3} ms of graph work has no per-kernel rows, so it has no layer (profile with --cuda-graph-trace=node)",
            ns as f64 / 1e6
        ));
    }
    (graph_kernels > 0 && p.graph_kernels_with_layer == 0).then(|| {
        if trace.graph_node_events.is_empty() {
            "graph kernels have no layer: the export has no CUDA_GRAPH_NODE_EVENTS (profile with --cuda-graph-trace=node)".to_string()
        } else {
            "graph kernels have no layer: their graphs were captured outside the profile, or no layer range was open at capture".to_string()
        }
    })
}

/// Per layer type (and phase): layers, kernels and GPU time.
fn layer_type_rows(
    p: &Placement,
    per_index: &[(LayerIndexKey, (u64, i64))],
    total: i64,
) -> Vec<LayerTypeSummary> {
    let mut types: HashMap<(u32, Option<Phase>), (u64, u64, i64)> = HashMap::default();
    for &((t, _, ph), (n, ns)) in per_index {
        let e = types.entry((t, ph)).or_default();
        e.0 += 1;
        e.1 += n;
        e.2 += ns;
    }
    let mut rows: Vec<LayerTypeSummary> = types
        .into_iter()
        .map(|((t, phase), (layers, kernels, gpu_ns))| LayerTypeSummary {
            layer_type: p.layer_types[t as usize].clone(),
            phase,
            layers,
            kernels,
            gpu_ns,
            share_pct: percent(gpu_ns as f64, total as f64),
        })
        .collect();
    rows.sort_by(|a, b| {
        a.phase
            .cmp(&b.phase)
            .then(b.gpu_ns.cmp(&a.gpu_ns))
            .then_with(|| a.layer_type.cmp(&b.layer_type))
    });
    rows
}

/// Per layer: its GPU time against the median of its siblings (same type
/// and phase), which flags the outliers.
fn layer_index_rows(
    p: &Placement,
    per_index: Vec<(LayerIndexKey, (u64, i64))>,
) -> Vec<LayerIndexSummary> {
    let medians = sibling_medians(&per_index);
    let mut rows: Vec<LayerIndexSummary> = per_index
        .into_iter()
        .map(|((t, index, phase), (kernels, gpu_ns))| {
            let median = medians[&(t, phase)];
            let ratio = if median > 0.0 {
                gpu_ns as f64 / median
            } else {
                1.0
            };
            LayerIndexSummary {
                layer_type: p.layer_types[t as usize].clone(),
                index,
                phase,
                kernels,
                gpu_ns,
                ratio_to_median: ratio,
                outlier: ratio >= OUTLIER_RATIO,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        a.phase
            .cmp(&b.phase)
            .then_with(|| a.layer_type.cmp(&b.layer_type))
            .then(a.index.cmp(&b.index))
    });
    rows
}

/// Per (layer type, phase): the median GPU time of its layer indexes.
fn sibling_medians(
    per_index: &[(LayerIndexKey, (u64, i64))],
) -> HashMap<(u32, Option<Phase>), f64> {
    let mut siblings: HashMap<(u32, Option<Phase>), Vec<i64>> = HashMap::default();
    for &((t, _, ph), (_, ns)) in per_index {
        siblings.entry((t, ph)).or_default().push(ns);
    }
    siblings
        .into_iter()
        .map(|(k, mut v)| {
            let median =
                crate::stats::DurationStats::from_values(&mut v).map_or(0.0, |s| s.median_ns);
            (k, median)
        })
        .collect()
}

/// Where kernel `i` falls, as a small key for grouping: no phases, outside
/// every step, or a phase. [`slot_label`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PhaseSlot {
    All,
    OutsideSteps,
    In(Phase),
}

impl PhaseSlot {
    /// The slot of a kernel in `phase` (none: outside every step), in a
    /// profile whose steps are `phased` or not.
    fn of(phase: Option<Phase>, phased: bool) -> PhaseSlot {
        match (phased, phase) {
            (false, _) => PhaseSlot::All,
            (true, Some(phase)) => PhaseSlot::In(phase),
            (true, None) => PhaseSlot::OutsideSteps,
        }
    }
}

/// The label: `all` without phases, `outside steps` for kernels launched
/// outside every step, else the phase.
fn slot_label(slot: PhaseSlot) -> String {
    match slot {
        PhaseSlot::All => "all".into(),
        PhaseSlot::OutsideSteps => "outside steps".into(),
        PhaseSlot::In(phase) => phase.as_str().into(),
    }
}

/// Kernel durations by (phase, layer type, kernel name), the finest
/// grouping the phase tables and hotspots use, gathered in one pass. The
/// phase-kernel and phase-layer tables are sums over these groups, so they
/// need no pass of their own over the kernels: at 1 GB each such pass
/// took 90–100 ms, mostly reading memory.
/// (phase, layer type, kernel name id).
type GroupKey = (PhaseSlot, Option<u32>, i64);

type KernelGroups = HashMap<GroupKey, GroupDurations>;

#[derive(Default)]
struct GroupDurations {
    values: crate::stats::DurationList,
    /// Kept while collecting, so the roll-ups need not widen the values.
    total: i64,
}

/// What the phase, graph, layer and hotspot reports take from every
/// kernel, gathered in one pass: at 1 GB each pass over the kernel rows
/// reads 330 MB from memory, and four passes had done this.
struct KernelSums {
    steps: StepSums,
    graphs: GraphSums,
    layers: LayerSums,
    groups: KernelGroups,
}

/// Kernel time per step, and outside every step; kernels and the GPU
/// window per step.
struct StepSums {
    per_step: Vec<i64>,
    outside: i64,
    kernels: Vec<u64>,
    windows: Vec<GpuWindow>,
}

/// The kernels that ran as graph nodes, and the time of the others.
#[derive(Default)]
struct GraphSums {
    node_kernels: Vec<usize>,
    eager_gpu_ns: i64,
}

/// Kernel time in all and inside layers, and per (layer, phase).
#[derive(Default)]
struct LayerSums {
    total: i64,
    covered: i64,
    graph_kernels: u64,
    per_index: Vec<(LayerIndexKey, (u64, i64))>,
    /// Per (layer, phase): a kernel's is nearly always the last kernel's,
    /// so the slot is found without hashing.
    index_slots: RunSlots<(u32, Option<Phase>)>,
}

impl LayerSums {
    fn add(&mut self, p: &Placement, layer: Option<u32>, phase: Option<Phase>, d: i64) {
        self.total += d;
        let Some(layer) = layer else { return };
        let (slot, new) = self.index_slots.slot((layer, phase));
        if new {
            let (t, idx) = p.layers[layer as usize];
            self.per_index.push(((t, idx, phase), (0, 0)));
        }
        let e = &mut self.per_index[slot].1;
        e.0 += 1;
        e.1 += d;
        self.covered += d;
    }
}

impl KernelSums {
    /// The kernel groups take one hash lookup per run of kernels in the
    /// same phase and layer type (they come in runs), and a table lookup
    /// by kernel name inside it, as `nvtx-kernels` does: at 1 GB, hashing
    /// every kernel's full key was a quarter of this view's time. The map
    /// is then filled in the order the groups first appeared, which is the
    /// order the per-kernel `entry` calls made, so it iterates as before.
    fn gather(
        trace: &Trace,
        p: &Placement,
        names: super::trace::NameStyle,
        by_phase: bool,
    ) -> KernelSums {
        let mut sums = SumsInProgress::new(p, by_phase);
        for (i, k) in trace.kernels.iter().enumerate() {
            let d = trace.kernels.duration(k);
            let is_node = trace.kernels.graph_node(i).is_some();
            sums.add(p, i, (k.start, d), is_node, trace.kernel_name_id(i, names));
        }
        sums.finish()
    }
}

/// `KernelSums` while the kernels are read, with the hotspot groups still
/// per (phase, layer type).
struct SumsInProgress {
    steps: StepSums,
    graphs: GraphSums,
    layers: LayerSums,
    groups: RunIdGroups<(PhaseSlot, Option<u32>), GroupDurations>,
    /// `phase_report` calls the phases detected exactly when there are
    /// steps.
    phased: bool,
    /// The layer sums split by phase (`--by-phase`).
    by_phase: bool,
}

impl SumsInProgress {
    fn new(p: &Placement, by_phase: bool) -> SumsInProgress {
        SumsInProgress {
            steps: StepSums {
                per_step: vec![0; p.steps.len()],
                outside: 0,
                kernels: vec![0; p.steps.len()],
                windows: vec![GpuWindow::default(); p.steps.len()],
            },
            graphs: GraphSums::default(),
            layers: LayerSums::default(),
            groups: RunIdGroups::default(),
            phased: !p.steps.is_empty(),
            by_phase,
        }
    }

    /// Kernel `i`, starting at `start` for `d` ns, of name id `name`.
    #[inline]
    fn add(&mut self, p: &Placement, i: usize, (start, d): (i64, i64), is_node: bool, name: i64) {
        let step = p.kernel_step.get(i);
        let phase = step.map(|s| p.steps[s as usize].phase);
        match step {
            Some(s) => {
                self.steps.per_step[s as usize] += d;
                self.steps.kernels[s as usize] += 1;
                self.steps.windows[s as usize].add(start, start.saturating_add(d));
            }
            None => self.steps.outside += d,
        }
        if is_node {
            self.graphs.node_kernels.push(i);
            self.layers.graph_kernels += 1;
        } else {
            self.graphs.eager_gpu_ns += d;
        }
        let layer = p.kernel_layer.get(i);
        self.layers
            .add(p, layer, phase.filter(|_| self.by_phase), d);
        let place = (
            PhaseSlot::of(phase, self.phased),
            layer.map(|l| p.layers[l as usize].0),
        );
        let g = self.groups.get(place, name);
        g.values.push(d);
        g.total += d;
    }

    fn finish(self) -> KernelSums {
        let mut groups = KernelGroups::default();
        for ((phase, layer), name, g) in self.groups.into_groups() {
            groups.insert((phase, layer, name), g);
        }
        KernelSums {
            steps: self.steps,
            graphs: self.graphs,
            layers: self.layers,
            groups,
        }
    }
}

fn phase_kernels(trace: &Trace, groups: &KernelGroups) -> Vec<PhaseKernel> {
    let mut sums: HashMap<(PhaseSlot, i64), (i64, u64)> = HashMap::default();
    for (&(phase, _, name), g) in groups {
        let s = sums.entry((phase, name)).or_default();
        s.0 += g.total;
        s.1 += g.values.len() as u64;
    }
    let mut rows: Vec<PhaseKernel> = sums
        .into_iter()
        .map(|((phase, name), (gpu_ns, instances))| PhaseKernel {
            phase: slot_label(phase),
            kernel: trace.strings.get(name).to_string(),
            gpu_ns,
            instances,
        })
        .collect();
    largest_first(&mut rows, |r| (r.gpu_ns, &r.kernel));
    rows
}

/// Each kernel name's category, by string id: every name is classified
/// once, for the category rows and the communication overlap alike.
fn name_categories<'c>(
    trace: &Trace,
    groups: &KernelGroups,
    categories: &'c Categories,
) -> HashMap<i64, &'c str> {
    let mut out = HashMap::default();
    for &(_, _, name) in groups.keys() {
        out.entry(name)
            .or_insert_with(|| categories.classify(trace.strings.get(name)));
    }
    out
}

/// Kernel time per (phase, category): sums over the kernel groups.
fn phase_categories(groups: &KernelGroups, class: &HashMap<i64, &str>) -> Vec<PhaseCategory> {
    let mut phase_total: HashMap<PhaseSlot, i64> = HashMap::default();
    // Per (phase, category): GPU time, instances, kernel names.
    let mut sums: HashMap<(PhaseSlot, &str), (i64, u64, u64)> = HashMap::default();
    let mut names_seen: HashSet<(PhaseSlot, i64)> = HashSet::default();
    for (&(phase, _, name), g) in groups {
        *phase_total.entry(phase).or_default() += g.total;
        let s = sums.entry((phase, class[&name])).or_default();
        s.0 += g.total;
        s.1 += g.values.len() as u64;
        // A name spans several layer types of a phase: count it once.
        s.2 += u64::from(names_seen.insert((phase, name)));
    }
    let mut rows: Vec<_> = sums.into_iter().collect();
    rows.sort_by(|((pa, ca), a), ((pb, cb), b)| {
        step_order(*pa)
            .cmp(&step_order(*pb))
            .then(b.0.cmp(&a.0))
            .then_with(|| ca.cmp(cb))
    });
    rows.into_iter()
        .map(
            |((phase, category), (gpu_ns, instances, kernel_names))| PhaseCategory {
                phase: slot_label(phase),
                category: category.to_string(),
                gpu_ns,
                share_of_phase_pct: percent(gpu_ns as f64, phase_total[&phase] as f64),
                instances,
                kernel_names,
            },
        )
        .collect()
}

/// Phases in the order a request meets them, outside every step last.
fn step_order(slot: PhaseSlot) -> (bool, Option<Phase>) {
    match slot {
        PhaseSlot::All => (false, None),
        PhaseSlot::In(phase) => (false, Some(phase)),
        PhaseSlot::OutsideSteps => (true, None),
    }
}

/// The category whose kernels [`comm_overlap`] measures.
pub const COMMUNICATION: &str = "communication";

/// The string ids of the kernel names in the communication category.
fn comm_name_ids(class: &HashMap<i64, &str>) -> Vec<i64> {
    let mut ids: Vec<i64> = class
        .iter()
        .filter(|&(_, &c)| c == COMMUNICATION)
        .map(|(&id, _)| id)
        .collect();
    ids.sort_unstable();
    ids
}

fn phase_layers(p: &Placement, groups: &KernelGroups) -> Vec<PhaseLayer> {
    let mut sums: HashMap<(PhaseSlot, u32), i64> = HashMap::default();
    for (&(phase, layer, _), g) in groups {
        if let Some(t) = layer {
            *sums.entry((phase, t)).or_default() += g.total;
        }
    }
    let mut rows: Vec<PhaseLayer> = sums
        .into_iter()
        .map(|((phase, t), gpu_ns)| PhaseLayer {
            phase: slot_label(phase),
            layer_type: p.layer_types[t as usize].clone(),
            gpu_ns,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.gpu_ns
            .cmp(&a.gpu_ns)
            .then_with(|| a.layer_type.cmp(&b.layer_type))
    });
    rows
}

/// The costliest kernels of each (phase, layer type), costliest first.
fn hotspots(
    trace: &Trace,
    p: &Placement,
    categories: &Categories,
    groups: KernelGroups,
) -> Vec<Hotspot> {
    let mut rows = hotspot_rows(trace, p, groups);
    rows.sort_by(|a, b| {
        a.phase
            .cmp(&b.phase)
            .then_with(|| a.layer_type.cmp(&b.layer_type))
            .then(b.gpu_ns.cmp(&a.gpu_ns))
    });
    let mut kept = top_per_layer_type(rows, categories);
    kept.sort_by_key(|k| std::cmp::Reverse(k.gpu_ns));
    kept
}

/// A row per (phase, layer type, kernel) group, its share taken of the
/// phase's kernel time; not yet classified.
fn hotspot_rows(trace: &Trace, p: &Placement, groups: KernelGroups) -> Vec<Hotspot> {
    let mut phase_total: HashMap<PhaseSlot, i64> = HashMap::default();
    for (&(phase, _, _), g) in &groups {
        *phase_total.entry(phase).or_default() += g.total;
    }
    let mut scratch = Vec::new();
    groups
        .into_iter()
        .filter_map(|((phase, layer, name), mut g)| {
            let s = g.values.stats(&mut scratch)?;
            Some(Hotspot {
                share_of_phase_pct: percent(s.total_ns as f64, phase_total[&phase] as f64),
                phase: slot_label(phase),
                layer_type: layer.map_or("(no layer)".to_string(), |t| {
                    p.layer_types[t as usize].clone()
                }),
                category: String::new(),
                kernel: trace.strings.get(name).to_string(),
                gpu_ns: s.total_ns,
                instances: s.count,
                median_ns: s.median_ns,
            })
        })
        .collect()
}

/// The first `HOTSPOTS_PER_GROUP` rows of each (phase, layer type), from
/// rows sorted costliest first within it. Only these are classified, so
/// the category patterns never see the many rows that are dropped.
fn top_per_layer_type(rows: Vec<Hotspot>, categories: &Categories) -> Vec<Hotspot> {
    let mut kept = Vec::new();
    let mut count: HashMap<(String, String), usize> = HashMap::default();
    for r in rows {
        let n = count
            .entry((r.phase.clone(), r.layer_type.clone()))
            .or_default();
        if *n < HOTSPOTS_PER_GROUP {
            *n += 1;
            kept.push(Hotspot {
                category: categories.classify(&r.kernel).to_string(),
                ..r
            });
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_step_formats() {
        let v = parse_step("execute_context_8(4096)_generation_0(0)", None).unwrap();
        assert_eq!(
            (v.ctx_requests, v.ctx_tokens, v.gen_requests),
            (8, Some(4096), 0)
        );
        let d = parse_step("execute_context_0(0)_generation_8(8)", None).unwrap();
        assert_eq!(
            Phase::classify(d.ctx_requests, d.gen_requests),
            Phase::Decode
        );
        let old = parse_step("execute_new_2_cached_6", None).unwrap();
        assert_eq!(
            Phase::classify(old.ctx_requests, old.gen_requests),
            Phase::Mixed
        );
        let trt = parse_step("[Executor] _forward_step 12: 0 ctx reqs, 32 gen reqs", None).unwrap();
        assert_eq!((trt.format, trt.gen_requests), ("tensorrt-llm", 32));
        let user = Regex::new(r"step p=(?P<ctx>\d+) d=(?P<gen>\d+)").unwrap();
        assert_eq!(
            parse_step("step p=1 d=0", Some(&user)).unwrap().format,
            "user"
        );
        assert!(parse_step("model.layers.0", None).is_none());
    }

    #[test]
    fn parses_layer_paths() {
        let cases = [
            ("model.layers.17.self_attn", "model.layers.*.self_attn", 17),
            ("layers.3.mlp", "layers.*.mlp", 3),
            ("layer_12", "layer_*", 12),
            ("transformer.h.5.attn", "transformer.h.*.attn", 5),
            ("blocks[7].ffn", "blocks[*].ffn", 7),
            (
                "{'Module': 'model.layers.0.self_attn', 'TrainableParams': 3}",
                "model.layers.*.self_attn",
                0,
            ),
            (
                "meta-llama/Meta-Llama-3.1-8B-Instruct.model.layers.0.self_attn.qkv_proj",
                "meta-llama/Meta-Llama-3.1-8B-Instruct.model.layers.*.self_attn.qkv_proj",
                0,
            ),
            ("model.layers.4", "model.layers.*", 4),
            (
                "FSDP::pre_forward (encoder.block.14.layer.1), op_id = 314311",
                "encoder.block.*.layer.1",
                14,
            ),
        ];
        for (text, ty, idx) in cases {
            let l = parse_layer(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!((l.layer_type.as_str(), l.index), (ty, idx), "{text}");
        }
        for text in [
            "model.embed_tokens",
            "execute_context_0(0)_generation_8(8)",
            "aten::mm, op_id = 12",
            "cuda_graph_capture decode",
        ] {
            assert!(parse_layer(text).is_none(), "{text}");
        }
    }

    /// Hand-made step counts: the real samples show `none`, `full`,
    /// `full-decode-only` and `piecewise` with an eager prefill; the other
    /// combinations are here. Counts are [eager, full, piecewise] steps.
    #[test]
    fn graph_modes_follow_vllm_cudagraph_mode() {
        let cases: [(&[(Phase, StepKinds)], &str); 8] = [
            (
                &[(Phase::Prefill, [1, 0, 0]), (Phase::Decode, [4, 0, 0])],
                "none (graph launches outside step ranges only)",
            ),
            (
                &[(Phase::Prefill, [0, 1, 0]), (Phase::Decode, [0, 4, 0])],
                "full",
            ),
            (
                &[(Phase::Prefill, [1, 0, 0]), (Phase::Decode, [0, 4, 0])],
                "full-decode-only",
            ),
            (
                &[(Phase::Prefill, [0, 0, 1]), (Phase::Decode, [0, 4, 0])],
                "full-and-piecewise",
            ),
            (
                &[
                    (Phase::Prefill, [1, 0, 1]),
                    (Phase::Mixed, [0, 0, 2]),
                    (Phase::Decode, [0, 4, 0]),
                ],
                "full-and-piecewise",
            ),
            (
                &[(Phase::Prefill, [1, 0, 1]), (Phase::Decode, [0, 0, 4])],
                "piecewise",
            ),
            (
                &[(Phase::Prefill, [0, 1, 0]), (Phase::Decode, [0, 0, 4])],
                "mixed",
            ),
            (
                &[(Phase::Prefill, [1, 0, 0]), (Phase::Decode, [1, 3, 0])],
                "mixed",
            ),
        ];
        for (steps, want) in cases {
            let per_phase = steps.iter().copied().collect();
            assert_eq!(mode_name(&per_phase), want, "{steps:?}");
        }
    }
}
