//! `--filter-nvtx` and `--filter-time`: the reports over one window of the
//! capture, with the rows `nsys stats` keeps for the same options (2025.3).
//!
//! `nsys stats` replaces each table that has `start` and `end` columns by
//! a view of the rows that overlap the window, and every report reads the
//! views. So a kernel counts when it overlaps the window, and its
//! launching call only when that overlaps it too: launch, NVTX and
//! projection reports lose the work whose call fell outside. An NVTX
//! filter also keeps only the rows of the range's thread (a push/pop range)
//! or process (a start/end range; GPU work always by process). The trace is
//! cut down once, after loading; every report then runs unchanged.

use super::rows::retain_marked;
use super::trace::{global_id, process_bits, NvtxRange, Trace};
use regex::Regex;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::OnceLock;

/// What the user asked to filter by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceFilter {
    /// `[START]/[END]` in ns; an omitted end is open.
    Time {
        start: Option<i64>,
        end: Option<i64>,
    },
    /// `NAME[@DOMAIN][/INDEX]`: the INDEX-th range of that name by start
    /// time, from 0.
    Nvtx { range: String, index: usize },
}

/// The largest timestamp `nsys stats` filters up to.
const OPEN_END: i64 = i64::MAX;

impl TraceFilter {
    /// `--filter-time`: `START/END`, either one omitted, each a sum of
    /// numbers with units (`1s2ms`, `1.5e9`, `-3us`), nanoseconds without one.
    pub fn parse_time(spec: &str) -> Result<TraceFilter, String> {
        let (start, end) = spec
            .split_once('/')
            .ok_or_else(|| format!("'{spec}' is not START/END (either may be left out)"))?;
        let start = parse_time_value(start)?;
        let end = parse_time_value(end)?;
        if start.is_none() && end.is_none() {
            return Err("at least one time value is required".to_string());
        }
        if start.unwrap_or(0) > end.unwrap_or(OPEN_END) {
            return Err("the start time is later than the end time".to_string());
        }
        Ok(TraceFilter::Time { start, end })
    }

    /// `--filter-nvtx`: a trailing `/N` is an index when N is a whole
    /// number; anything else after the last slash is part of the name.
    pub fn parse_nvtx(spec: &str) -> Result<TraceFilter, String> {
        if spec.is_empty() {
            return Err("the range name is empty".to_string());
        }
        let indexed = spec
            .rsplit_once('/')
            .and_then(|(name, n)| Some((name, n.parse::<usize>().ok()?)));
        let (range, index) = indexed.unwrap_or((spec, 0));
        Ok(TraceFilter::Nvtx {
            range: range.to_string(),
            index,
        })
    }

    /// How the filter is shown: the option and its value.
    fn label(&self) -> String {
        match self {
            TraceFilter::Time { start, end } => {
                let show = |v: &Option<i64>| v.map(|t| t.to_string()).unwrap_or_default();
                format!("--filter-time {}/{}", show(start), show(end))
            }
            TraceFilter::Nvtx { range, index } => format!("--filter-nvtx {range}/{index}"),
        }
    }
}

/// One time value: numbers each followed by an optional unit, summed.
fn parse_time_value(text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    static TERM: OnceLock<Regex> = OnceLock::new();
    // Longer unit names first: the regex takes the first alternative that
    // matches, and `ms` must not be read as `m` then `s`.
    let term = TERM.get_or_init(|| {
        Regex::new(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(nsec|ns|usec|us|msec|ms|min|m|sec|s|hour|h)?")
            .expect("valid regex")
    });
    let mut total: i64 = 0;
    let mut at = 0;
    for m in term.captures_iter(text) {
        let whole = m.get(0).expect("group 0");
        if whole.start() != at {
            break;
        }
        at = whole.end();
        let unit_ns = unit_ns(m.get(2).map_or("ns", |u| u.as_str()));
        total = total
            .checked_add(term_ns(&m[1], unit_ns).ok_or_else(|| out_of_range(text))?)
            .ok_or_else(|| out_of_range(text))?;
    }
    if at != text.len() {
        return Err(format!(
            "'{text}' is not a time (numbers with units ns, us, ms, s, m, h)"
        ));
    }
    Ok(Some(total))
}

fn out_of_range(text: &str) -> String {
    format!("'{text}' is out of range")
}

fn unit_ns(unit: &str) -> i64 {
    match unit {
        "us" | "usec" => 1_000,
        "ms" | "msec" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        _ => 1,
    }
}

/// A whole number exactly; one with a fraction or exponent as a double,
/// truncated to whole nanoseconds.
fn term_ns(number: &str, unit_ns: i64) -> Option<i64> {
    if let Ok(n) = number.parse::<i64>() {
        return n.checked_mul(unit_ns);
    }
    let ns = number.parse::<f64>().ok()? * unit_ns as f64;
    (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
}

/// Whose rows a window keeps besides its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Everyone,
    /// A push/pop range: calls and ranges of its thread, GPU work of its process.
    Thread(i64),
    /// A start/end range: everything of its process.
    Process(i64),
}

/// The window the reports were filtered to, as the JSON shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FilterWindow {
    /// The option as given, with the index an NVTX filter used.
    pub filter: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// The range's process, for an NVTX filter.
    pub pid: Option<u32>,
    /// The range's thread, for a push/pop range.
    pub tid: Option<u32>,
    #[serde(skip)]
    scope: Scope,
}

impl FilterWindow {
    /// Find the window in the loaded trace; the error says what is wrong
    /// with the filter for this profile.
    pub fn resolve(filter: &TraceFilter, trace: &Trace) -> Result<FilterWindow, String> {
        let (start_ns, end_ns, scope) = match filter {
            TraceFilter::Time { start, end } => {
                (start.unwrap_or(0), end.unwrap_or(OPEN_END), Scope::Everyone)
            }
            TraceFilter::Nvtx { range, index } => nvtx_window(trace, range, *index)?,
        };
        let (pid, tid) = match scope {
            Scope::Everyone => (None, None),
            Scope::Thread(t) => (Some(global_id::pid(t)), Some(global_id::tid(t))),
            Scope::Process(t) => (Some(global_id::pid(t)), None),
        };
        Ok(FilterWindow {
            filter: filter.label(),
            start_ns,
            end_ns,
            pid,
            tid,
            scope,
        })
    }

    /// The overlap test of `nsys stats`' filtered views, clause for clause:
    /// a row that ends before it starts is judged as that SQL judges it.
    fn overlaps(&self, start: i64, end: i64) -> bool {
        let (s, e) = (self.start_ns, self.end_ns);
        (start >= s && start < e) || (end >= s && end < e) || (start < s && end >= e)
    }

    /// The same test for a row whose end may be NULL, which SQL's
    /// comparisons with NULL leave to its start alone.
    fn overlaps_open(&self, start: i64, end: Option<i64>) -> bool {
        match end {
            Some(end) => self.overlaps(start, end),
            None => start >= self.start_ns && start < self.end_ns,
        }
    }

    /// Rows with a `globalTid`: API calls and NVTX events.
    fn keeps_thread(&self, global_tid: i64) -> bool {
        match self.scope {
            Scope::Everyone => true,
            Scope::Thread(t) => global_tid == t,
            Scope::Process(t) => global_id::process(global_tid) == global_id::process(t),
        }
    }

    /// Rows with a `globalPid`: GPU work. NULL fails any comparison.
    fn keeps_process(&self, global_pid: Option<i64>) -> bool {
        match self.scope {
            Scope::Everyone => true,
            Scope::Thread(t) | Scope::Process(t) => {
                global_pid.is_some_and(|p| global_id::process(p) == global_id::process(t))
            }
        }
    }

    /// Cut the trace down to the rows this window keeps.
    pub fn apply(&self, trace: &mut Trace) {
        let span = trace.span();
        self.keep_kernels(trace);
        let calls = &trace.api_calls;
        let keep: Vec<bool> = calls
            .iter()
            .map(|c| self.overlaps(c.start, calls.end(c)) && self.keeps_thread(calls.global_tid(c)))
            .collect();
        trace.api_calls.retain_marked(&keep);
        trace.memops.retain(|m| {
            self.overlaps(m.gpu.start, m.gpu.end) && self.keeps_process(m.gpu.global_pid)
        });
        trace.graph_executions.retain(|g| {
            self.overlaps(g.gpu.start, g.gpu.end) && self.keeps_process(g.gpu.global_pid)
        });
        self.keep_nvtx(trace);
        // Busy and idle time, and the span shown, are of the window. A
        // span from rows that end before they start may run backwards.
        trace.capture_window = span.map(|(lo, hi)| {
            let hi = hi.max(lo);
            let start = self.start_ns.clamp(lo, hi);
            (start, self.end_ns.clamp(start, hi))
        });
        trace.filter = Some(self.clone());
    }

    fn keep_kernels(&self, trace: &mut Trace) {
        let kernels = &trace.kernels;
        let keep: Vec<bool> = kernels
            .iter()
            .map(|k| {
                self.overlaps(k.start, kernels.end(k)) && self.keeps_process(kernels.global_pid(k))
            })
            .collect();
        trace.kernels.retain_marked(&keep);
        if let Some(names) = &mut trace.mangled_names {
            retain_marked(names, &keep);
        }
        if let Some(graphs) = &mut trace.kernel_graph_ids {
            retain_marked(graphs, &keep);
        }
    }

    /// NVTX ranges, and the domain creations that name them: a range whose
    /// domain was created outside the window is shown without the domain,
    /// as `nsys stats` shows it.
    fn keep_nvtx(&self, trace: &mut Trace) {
        trace
            .nvtx
            .retain(|r| self.overlaps_open(r.start, r.end) && self.keeps_thread(r.global_tid));
        let named: HashSet<(i64, i64)> = trace
            .nvtx_domains
            .iter()
            .filter(|d| self.overlaps_open(d.start, None) && self.keeps_thread(d.global_tid))
            .map(|d| (d.domain, process_bits(d.global_tid)))
            .collect();
        let Trace {
            nvtx, nvtx_names, ..
        } = trace;
        let mut undomained = Undomained::default();
        for r in nvtx.iter_mut() {
            let Some(domain) = r.domain else { continue };
            if !named.contains(&(domain, process_bits(r.global_tid))) {
                r.name = undomained.name_id(nvtx_names, r.text);
                r.domain = None;
            }
        }
    }
}

/// The `:text` names of ranges that lose their domain, added to the range
/// names once per text.
#[derive(Default)]
struct Undomained {
    /// Every range name's id, built when the first range loses its domain.
    ids: Option<FxHashMap<String, u32>>,
    by_text: FxHashMap<u32, u32>,
}

impl Undomained {
    fn name_id(&mut self, names: &mut Vec<String>, text: u32) -> u32 {
        if let Some(&id) = self.by_text.get(&text) {
            return id;
        }
        let ids = self.ids.get_or_insert_with(|| {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i as u32))
                .collect()
        });
        let name = format!(":{}", names[text as usize]);
        let id = *ids.entry(name).or_insert_with_key(|name| {
            names.push(name.clone());
            (names.len() - 1) as u32
        });
        self.by_text.insert(text, id);
        id
    }
}

/// The `index`-th range, by start time, whose text (with `@domain` when
/// it has one) is `wanted`: its start, end and whose rows it keeps.
fn nvtx_window(trace: &Trace, wanted: &str, index: usize) -> Result<(i64, i64, Scope), String> {
    let mut matches: Vec<&NvtxRange> = trace
        .nvtx
        .iter()
        .filter(|r| matches_name(trace, r, wanted))
        .collect();
    // Stable: ranges that start together stay in table order.
    matches.sort_by_key(|r| r.start);
    let found = matches.get(index).ok_or_else(|| match matches.len() {
        0 => format!(
            "NVTX range '{wanted}' could not be found{}",
            spelling_hint(trace, wanted)
        ),
        n => format!("NVTX range '{wanted}' has {n} instance(s); index {index} is past the last"),
    })?;
    let end = found
        .end
        .ok_or_else(|| format!("NVTX range '{wanted}' (index {index}) never ends"))?;
    // NVIDIA's rule: a thread id equal to its process id marks a start/end
    // range, whose rows are kept by process.
    let t = found.global_tid;
    let scope = if global_id::pid(t) != global_id::tid(t) {
        Scope::Thread(t)
    } else {
        Scope::Process(t)
    };
    Ok((found.start, end, scope))
}

/// The reports print a range as `domain:text` (`:text` without a domain);
/// a user who copies that, or gives a domain's range without its domain,
/// is told how the filter spells it.
fn spelling_hint(trace: &Trace, wanted: &str) -> String {
    let shown = |r: &&NvtxRange| {
        let name = &trace.nvtx_names[r.name as usize];
        let text = &trace.nvtx_names[r.text as usize];
        name == wanted || *text == wanted || name.strip_prefix(':') == Some(wanted)
    };
    match trace.nvtx.iter().find(shown) {
        Some(r) => format!(" (write '{}')", range_spec(trace, r)),
        None => String::new(),
    }
}

/// Whether `wanted` names the range: `text`, or `text@domain` for a range
/// in a named domain.
fn matches_name(trace: &Trace, r: &NvtxRange, wanted: &str) -> bool {
    let text = &trace.nvtx_names[r.text as usize];
    match domain_of(trace, r) {
        None => text == wanted,
        Some(domain) => {
            wanted
                .strip_prefix(text.as_str())
                .and_then(|rest| rest.strip_prefix('@'))
                == Some(domain)
        }
    }
}

/// The range as `--filter-nvtx` names it.
pub fn range_spec(trace: &Trace, r: &NvtxRange) -> String {
    let text = &trace.nvtx_names[r.text as usize];
    match domain_of(trace, r) {
        None => text.clone(),
        Some(domain) => format!("{text}@{domain}"),
    }
}

/// The name of the range's domain, when it has one: its name is
/// `domain:text`.
fn domain_of<'t>(trace: &'t Trace, r: &NvtxRange) -> Option<&'t str> {
    r.domain?;
    let name = &trace.nvtx_names[r.name as usize];
    let text = &trace.nvtx_names[r.text as usize];
    Some(&name[..name.len() - text.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(spec: &str) -> Result<TraceFilter, String> {
        TraceFilter::parse_time(spec)
    }

    #[test]
    fn time_values_take_units_in_any_order() {
        let both = |s, e| Ok(TraceFilter::Time { start: s, end: e });
        assert_eq!(
            time("8s/9s"),
            both(Some(8_000_000_000), Some(9_000_000_000))
        );
        assert_eq!(time("1s2ms3us4ns/"), both(Some(1_002_003_004), None));
        assert_eq!(time("/2ns5us2"), both(None, Some(5_004)));
        assert_eq!(time("1.5us/1e3us"), both(Some(1_500), Some(1_000_000)));
        assert_eq!(
            time("1m/1h"),
            both(Some(60_000_000_000), Some(3_600_000_000_000))
        );
        assert_eq!(time("-3us/2msec"), both(Some(-3_000), Some(2_000_000)));
        assert!(time("/").is_err());
        assert!(time("5").is_err());
        assert!(time("9s/8s").is_err());
        assert!(time("1x/2").is_err());
        assert!(time("1 s/2").is_err());
        assert!(time("99999999999h/").is_err());
    }

    #[test]
    fn a_trailing_whole_number_is_the_index() {
        let nvtx = |r: &str, i| {
            Ok(TraceFilter::Nvtx {
                range: r.to_string(),
                index: i,
            })
        };
        assert_eq!(TraceFilter::parse_nvtx("step/5"), nvtx("step", 5));
        assert_eq!(TraceFilter::parse_nvtx("a/b"), nvtx("a/b", 0));
        assert_eq!(TraceFilter::parse_nvtx("a/b/-1"), nvtx("a/b/-1", 0));
        assert_eq!(TraceFilter::parse_nvtx("x@dom/2/3"), nvtx("x@dom/2", 3));
        assert!(TraceFilter::parse_nvtx("").is_err());
    }

    #[test]
    fn overlap_follows_the_sql_clauses() {
        let w = FilterWindow {
            filter: String::new(),
            start_ns: 10,
            end_ns: 20,
            pid: None,
            tid: None,
            scope: Scope::Everyone,
        };
        assert!(w.overlaps(5, 10), "ends at the start");
        assert!(!w.overlaps(5, 9));
        assert!(w.overlaps(19, 30));
        assert!(!w.overlaps(20, 30), "starts at the end");
        assert!(w.overlaps(5, 25), "spans it");
        assert!(w.overlaps(25, 15), "backwards, its end inside");
        assert!(w.overlaps_open(10, None));
        assert!(!w.overlaps_open(5, None));
    }
}
