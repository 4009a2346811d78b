//! Before/after comparison shared by both tools: rows of (section, name,
//! metric, base, new), absolute and % deltas, a regression threshold, and a
//! one-line summary fit to open a pull-request comment. Verdicts that are
//! words, not numbers (a kernel's bound-ness, its load paths), are listed
//! where they changed.

use crate::render::{Cell, Column, Document, Table};
use serde::Serialize;

/// Which way is worse for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Worse {
    /// Time, bytes: an increase is a regression.
    Higher,
    /// Bandwidth, efficiency: a decrease is a regression.
    Lower,
}

/// One compared quantity.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRow {
    pub section: String,
    pub name: String,
    pub metric: String,
    pub base: Option<f64>,
    pub new: Option<f64>,
    pub delta: Option<f64>,
    pub delta_pct: Option<f64>,
    pub worse: Worse,
    /// Whether this row can fail `--fail-on-regression`.
    pub gated: bool,
    pub regression: bool,
}

impl DiffRow {
    pub fn new(
        section: &str,
        name: &str,
        metric: &str,
        base: Option<f64>,
        new: Option<f64>,
        worse: Worse,
        gated: bool,
    ) -> DiffRow {
        let delta = base.zip(new).map(|(b, n)| n - b);
        let delta_pct = base
            .zip(delta)
            .filter(|(b, _)| *b != 0.0)
            .map(|(b, d)| 100.0 * d / b.abs());
        DiffRow {
            section: section.into(),
            name: name.into(),
            metric: metric.into(),
            base,
            new,
            delta,
            delta_pct,
            worse,
            gated,
            regression: false,
        }
    }

    /// For a metric that is itself a percentage: its change is the Δ in
    /// points, and a relative change of it (3 % → 85 % is +2,733 %) would
    /// only mislead.
    pub fn in_points(mut self) -> DiffRow {
        self.delta_pct = None;
        self
    }
}

/// A verdict that changed between the two sides, e.g. a kernel that was
/// memory-bound and is now latency-bound. It has no size, so it never gates.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictChange {
    pub name: String,
    pub verdict: String,
    pub base: String,
    pub new: String,
}

/// The section the verdict changes render as.
pub const VERDICT_SECTION: &str = "verdict changes";

/// A whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub base: String,
    pub new: String,
    /// How values were made comparable (per token, per step, per launch).
    pub normalisation: String,
    pub threshold_pct: f64,
    pub summary: String,
    pub regressions: usize,
    pub rows: Vec<DiffRow>,
    /// Only where the tool compares verdicts, and one changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdict_changes: Vec<VerdictChange>,
}

impl DiffReport {
    /// Attach the changed verdicts. The summary counts them, because the
    /// table that lists them comes last.
    pub fn with_verdict_changes(mut self, changes: Vec<VerdictChange>) -> DiffReport {
        if !changes.is_empty() {
            let n = changes.len();
            self.summary.push_str(&format!("; {n} verdict change(s)"));
        }
        self.verdict_changes = changes;
        self
    }
}

/// Mark regressions, sort each section by absolute change, and summarise.
pub fn finish(
    base: &str,
    new: &str,
    normalisation: String,
    threshold_pct: f64,
    mut rows: Vec<DiffRow>,
    headline: &[usize],
) -> DiffReport {
    mark_regressions(&mut rows, threshold_pct);
    let summary = summary_line(&rows, headline, threshold_pct);
    let regressions = rows.iter().filter(|r| r.regression).count();
    sort_within_sections(&mut rows);
    DiffReport {
        base: base.into(),
        new: new.into(),
        normalisation,
        threshold_pct,
        summary,
        regressions,
        rows,
        verdict_changes: Vec::new(),
    }
}

fn mark_regressions(rows: &mut [DiffRow], threshold_pct: f64) {
    for r in rows {
        r.regression = r.gated
            && match (r.delta_pct, r.worse) {
                (Some(p), Worse::Higher) => p > threshold_pct,
                (Some(p), Worse::Lower) => p < -threshold_pct,
                (None, _) => false,
            };
    }
}

/// The headline rows' changes, then the count of regressions and the
/// largest of them.
fn summary_line(rows: &[DiffRow], headline: &[usize], threshold_pct: f64) -> String {
    let headline_text: Vec<String> = headline
        .iter()
        .filter_map(|&i| rows.get(i))
        .filter_map(|r| {
            r.delta_pct
                .map(|p| format!("{} {} {}", r.name, signed_pct(p), r.metric))
        })
        .collect();
    let regressions: Vec<&DiffRow> = rows.iter().filter(|r| r.regression).collect();
    let top = regressions.iter().max_by(|a, b| {
        a.delta_pct
            .unwrap_or(0.0)
            .abs()
            .total_cmp(&b.delta_pct.unwrap_or(0.0).abs())
    });
    let mut summary = headline_text.join(", ");
    if !summary.is_empty() {
        summary.push_str("; ");
    }
    summary.push_str(&match top {
        Some(t) => format!(
            "{} regression(s) past {threshold_pct} %, top: `{}` {} {}",
            regressions.len(),
            t.name.replace('`', "'"),
            signed_pct(t.delta_pct.unwrap_or(0.0)),
            t.metric
        ),
        None => format!("no regression past {threshold_pct} %"),
    });
    summary
}

/// Sections in the order they first appear; within one, the largest
/// absolute change first.
fn sort_within_sections(rows: &mut [DiffRow]) {
    let order = section_names(rows);
    rows.sort_by(|a, b| {
        let sa = order.iter().position(|s| *s == a.section);
        let sb = order.iter().position(|s| *s == b.section);
        sa.cmp(&sb).then(change_size(b).total_cmp(&change_size(a)))
    });
}

/// How far a row moved, for ranking: its Δ; or, for a time or size found
/// on one side only, its whole value, since it is spent where it was not
/// (a new kernel) or no longer spent (a gone one). A rate or share on one
/// side only did not move anywhere and ranks last.
fn change_size(r: &DiffRow) -> f64 {
    match (r.delta, one_side(r)) {
        (Some(d), _) => d.abs(),
        (None, Some((_, v))) if r.worse == Worse::Higher => v.abs(),
        _ => 0.0,
    }
}

/// The side a row has its only value on, and that value.
fn one_side(r: &DiffRow) -> Option<(&'static str, f64)> {
    match (r.base, r.new) {
        (Some(b), None) => Some(("gone", b)),
        (None, Some(n)) => Some(("new", n)),
        _ => None,
    }
}

/// A change as a reviewer reads it, signed like the % beside it:
/// `+3,261,144.0`, `−18,257,248.5`.
pub fn signed_delta(d: f64) -> String {
    with_sign(d, Cell::Float(d.abs(), 1).pretty())
}

/// `+7.2 %` / `−3.0 %`.
pub fn signed_pct(p: f64) -> String {
    format!("{} %", with_sign(p, format!("{:.1}", p.abs())))
}

/// A magnitude behind the sign of `v`, with a true minus sign.
fn with_sign(v: f64, magnitude: String) -> String {
    let sign = if v >= 0.0 { '+' } else { '−' };
    format!("{sign}{magnitude}")
}

/// Parse `5%` or `5` as 5.
pub fn parse_threshold(text: &str) -> Option<f64> {
    text.trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
}

/// Rows each section of a rendered diff shows by default, besides its
/// regressions.
pub const DEFAULT_DIFF_TOP: usize = 15;

/// The report as tables, one per section, regressions marked. A section
/// shows its `top` largest changes and every regression (`None`: all rows).
pub fn document(d: &DiffReport, top: Option<usize>) -> Document {
    let mut tables: Vec<Table> = section_names(&d.rows)
        .into_iter()
        .map(|s| section_table(d, s, top))
        .collect();
    tables.extend((!d.verdict_changes.is_empty()).then(|| verdict_table(d)));
    Document {
        title: format!("diff: {} → {}", d.base, d.new),
        summary: Some(d.summary.clone()),
        facts: vec![
            ("compared".into(), d.normalisation.clone()),
            ("threshold".into(), format!("{} %", d.threshold_pct)),
        ],
        tables,
        chart: None,
    }
}

/// The sections, in the order their first rows come.
fn section_names(rows: &[DiffRow]) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    for r in rows {
        if !sections.contains(&r.section) {
            sections.push(r.section.clone());
        }
    }
    sections
}

/// One section's largest `top` changes, and its regressions wherever they
/// rank: a reviewer must see every row the summary counts.
fn section_table(d: &DiffReport, section: String, top: Option<usize>) -> Table {
    let all: Vec<&DiffRow> = d.rows.iter().filter(|r| r.section == section).collect();
    let keep = top.unwrap_or(usize::MAX);
    let rows: Vec<Vec<Cell>> = all
        .iter()
        .enumerate()
        .filter(|(i, r)| *i < keep || r.regression)
        .map(|(_, r)| row_cells(r))
        .collect();
    let note = (rows.len() < all.len()).then(|| {
        let extra = rows.len() - keep.min(all.len());
        let which = if extra > 0 {
            format!("the {keep} largest changes and {extra} more regression(s)")
        } else {
            "the largest changes".into()
        };
        format!(
            "{} of {} rows: {which} (--top N for more, --format csv for all)",
            rows.len(),
            all.len()
        )
    });
    Table {
        name: "diff",
        title: section,
        columns: vec![
            Column::name("name", "Name"),
            Column::text("metric", "Metric"),
            Column::num("base", "Base"),
            Column::num("new", "New"),
            Column::num("delta", "Δ"),
            Column::num("delta_pct", "Δ %"),
            Column::text("flag", "Flag"),
        ],
        rows,
        note,
    }
}

/// Every changed verdict: there are few, and each may explain a row above.
fn verdict_table(d: &DiffReport) -> Table {
    Table {
        name: "diff",
        title: VERDICT_SECTION.into(),
        columns: vec![
            Column::name("name", "Name"),
            Column::text("verdict", "Verdict"),
            Column::text("base", "Base"),
            Column::text("new", "New"),
        ],
        rows: d.verdict_changes.iter().map(|v| v.cells().into()).collect(),
        note: None,
    }
}

impl VerdictChange {
    /// Name, verdict, base and new, as both tables show them.
    fn cells(&self) -> [Cell; 4] {
        [
            Cell::Name(self.name.clone()),
            Cell::Text(self.verdict.clone()),
            Cell::Text(self.base.clone()),
            Cell::Text(self.new.clone()),
        ]
    }
}

fn row_cells(r: &DiffRow) -> Vec<Cell> {
    let f = |v: Option<f64>| Cell::opt_float(v, 1);
    vec![
        Cell::Name(r.name.clone()),
        Cell::Text(r.metric.clone()),
        f(r.base),
        f(r.new),
        r.delta
            .map_or(Cell::Missing, |d| Cell::Text(signed_delta(d))),
        r.delta_pct
            .map_or(Cell::Missing, |p| Cell::Text(signed_pct(p))),
        Cell::Text(match (r.regression, one_side(r)) {
            (true, _) => "REGRESSION".into(),
            (false, Some((side, _))) => side.into(),
            (false, None) => String::new(),
        }),
    ]
}

/// Render diff reports in the chosen format; the Markdown references `chart`.
pub fn render(
    reports: &[DiffReport],
    format: crate::render::Format,
    chart: Option<&std::path::Path>,
    top: Option<usize>,
) -> String {
    use crate::render::{self, Format};
    match format {
        Format::Json if reports.len() == 1 => render::json(&reports[0]) + "\n",
        Format::Json => render::json(&reports) + "\n",
        Format::Csv => reports.iter().map(|r| render::csv(&csv_table(r))).collect(),
        Format::Markdown | Format::Table => reports
            .iter()
            .map(|r| {
                let mut doc = document(r, top);
                doc.chart = chart.map(|p| p.display().to_string());
                if format == Format::Markdown {
                    render::markdown(&doc)
                } else {
                    render::terminal(&doc)
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// All rows as one CSV table.
pub fn csv_table(d: &DiffReport) -> Table {
    Table {
        name: "diff",
        title: "diff".into(),
        columns: vec![
            Column::text("section", "Section"),
            Column::name("name", "Name"),
            Column::text("metric", "Metric"),
            Column::num("base", "Base"),
            Column::num("new", "New"),
            Column::num("delta", "Delta"),
            Column::num("delta_pct", "Delta %"),
            Column::text("regression", "Regression"),
        ],
        rows: d
            .rows
            .iter()
            .map(|r| {
                let f = |v: Option<f64>| Cell::opt_float(v, 3);
                vec![
                    Cell::Text(r.section.clone()),
                    Cell::Name(r.name.clone()),
                    Cell::Text(r.metric.clone()),
                    f(r.base),
                    f(r.new),
                    f(r.delta),
                    f(r.delta_pct),
                    Cell::Text(r.regression.to_string()),
                ]
            })
            .chain(d.verdict_changes.iter().map(verdict_csv_cells))
            .collect(),
        note: None,
    }
}

/// A changed verdict in the CSV's one table: its words where the numbers
/// go, no delta, never a regression.
fn verdict_csv_cells(v: &VerdictChange) -> Vec<Cell> {
    let section = Cell::Text(VERDICT_SECTION.into());
    let no_delta = [Cell::Missing, Cell::Missing, Cell::Text(false.to_string())];
    std::iter::once(section)
        .chain(v.cells())
        .chain(no_delta)
        .collect()
}
