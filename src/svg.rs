//! Small hand-written SVG bar charts for PR comments: GPU time by layer
//! type (× phase), and the largest changes of a diff. Plain SVG with a
//! generic font family, so any renderer draws them without extra fonts.

use crate::diff::{DiffReport, DiffRow};
use crate::nsys::llm::LayerReport;
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: f64 = 760.0;
const LABEL: f64 = 330.0;
const ROW: f64 = 22.0;
const COLORS: &[&str] = &["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    } else {
        s.to_string()
    }
}

fn open(out: &mut String, height: f64, title: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="8" y="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
}

/// Stacked bars: one per layer type, one segment per phase.
pub fn layer_phase_chart(layers: &LayerReport, title: &str) -> String {
    let grid = LayerPhaseGrid::from_report(layers);
    let max = grid
        .ns
        .iter()
        .map(|row| row.iter().sum())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let height = 48.0 + ROW * (grid.types.len() as f64 + 1.0);
    let mut out = String::new();
    open(
        &mut out,
        height,
        &format!("GPU time by layer type × phase — {title}"),
    );
    for (i, (ty, row)) in grid.types.iter().zip(&grid.ns).enumerate() {
        stacked_bar(&mut out, 32.0 + ROW * i as f64, ty, &grid.phases, row, max);
    }
    legend(
        &mut out,
        32.0 + ROW * grid.types.len() as f64 + 14.0,
        &grid.phases,
    );
    out.push_str("</svg>\n");
    out
}

/// GPU time per layer type and phase, both in the order first seen.
struct LayerPhaseGrid {
    types: Vec<String>,
    phases: Vec<String>,
    /// Per type, per phase.
    ns: Vec<Vec<i64>>,
}

impl LayerPhaseGrid {
    fn from_report(layers: &LayerReport) -> LayerPhaseGrid {
        let mut grid = LayerPhaseGrid {
            types: Vec::new(),
            phases: Vec::new(),
            ns: Vec::new(),
        };
        let cells: Vec<(usize, usize, i64)> = layers
            .types
            .iter()
            .map(|t| {
                let phase = t.phase.map_or("all", |p| p.as_str());
                (
                    position_or_push(&mut grid.types, &t.layer_type),
                    position_or_push(&mut grid.phases, phase),
                    t.gpu_ns,
                )
            })
            .collect();
        grid.ns = vec![vec![0; grid.phases.len()]; grid.types.len()];
        for (ty, phase, ns) in cells {
            grid.ns[ty][phase] += ns;
        }
        grid
    }
}

fn position_or_push(names: &mut Vec<String>, name: &str) -> usize {
    names.iter().position(|n| n == name).unwrap_or_else(|| {
        names.push(name.to_string());
        names.len() - 1
    })
}

/// One type's bar at height `y`: its label, a segment per phase, its total.
fn stacked_bar(out: &mut String, y: f64, ty: &str, phases: &[String], ns: &[i64], max: f64) {
    let _ = writeln!(
        out,
        r#"<text x="8" y="{}">{}</text>"#,
        y + 14.0,
        escape(&short(ty, 48))
    );
    let mut x = LABEL;
    for (pi, (ph, &ns)) in phases.iter().zip(ns).enumerate() {
        let w = (WIDTH - LABEL - 90.0) * ns as f64 / max;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} {}: {:.3} ms</title></rect>"#,
            y + 3.0,
            ROW - 6.0,
            COLORS[pi % COLORS.len()],
            escape(ty),
            escape(ph),
            ns as f64 / 1e6
        );
        x += w;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{}">{:.2} ms</text>"#,
        x + 4.0,
        y + 14.0,
        ns.iter().sum::<i64>() as f64 / 1e6
    );
}

/// A colour key for the phases, in a row at height `y`.
fn legend(out: &mut String, y: f64, phases: &[String]) {
    for (pi, ph) in phases.iter().enumerate() {
        let x = LABEL + 100.0 * pi as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/>"#,
            y - 9.0,
            COLORS[pi % COLORS.len()]
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{y}">{}</text>"#,
            x + 14.0,
            escape(ph)
        );
    }
}

/// Diverging bars for the largest % changes: red worse, green better.
pub fn diff_chart(report: &DiffReport) -> String {
    let rows = largest_changes(report, 12);
    let max = rows
        .iter()
        .map(|r| r.delta_pct.unwrap_or(0.0).abs())
        .fold(1.0, f64::max);
    let height = 40.0 + ROW * rows.len().max(1) as f64;
    let mut out = String::new();
    open(
        &mut out,
        height,
        &format!("Largest changes (threshold {} %)", report.threshold_pct),
    );
    let mid = LABEL + (WIDTH - LABEL) / 2.0;
    let _ = writeln!(
        out,
        r##"<line x1="{mid}" y1="26" x2="{mid}" y2="{height}" stroke="#999"/>"##
    );
    for (i, r) in rows.iter().enumerate() {
        change_bar(&mut out, 28.0 + ROW * i as f64, r, max);
    }
    out.push_str("</svg>\n");
    out
}

/// The `n` gated rows with the largest % change, largest first.
fn largest_changes(report: &DiffReport, n: usize) -> Vec<&DiffRow> {
    let mut rows: Vec<&DiffRow> = report
        .rows
        .iter()
        .filter(|r| r.delta_pct.is_some() && r.gated)
        .collect();
    let size = |r: &DiffRow| r.delta_pct.unwrap_or(0.0).abs();
    rows.sort_by(|a, b| size(b).total_cmp(&size(a)));
    rows.truncate(n);
    rows
}

/// One change at height `y`: its label, a bar from the middle line, scaled
/// to the largest change `max`, and its % beside the bar.
fn change_bar(out: &mut String, y: f64, r: &DiffRow, max: f64) {
    let mid = LABEL + (WIDTH - LABEL) / 2.0;
    let half = (WIDTH - LABEL) / 2.0 - 60.0;
    let p = r.delta_pct.unwrap_or(0.0);
    let worse = match r.worse {
        crate::diff::Worse::Higher => p > 0.0,
        crate::diff::Worse::Lower => p < 0.0,
    };
    let w = half * p.abs() / max;
    let x = if p >= 0.0 { mid } else { mid - w };
    let label = format!("{} ({})", r.name, r.metric);
    let _ = writeln!(
        out,
        r#"<text x="8" y="{}">{}</text>"#,
        y + 14.0,
        escape(&short(&label, 52))
    );
    let _ = writeln!(
        out,
        r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"/>"#,
        y + 3.0,
        ROW - 6.0,
        if worse { "#e15759" } else { "#59a14f" }
    );
    let tx = if p >= 0.0 {
        mid + w + 4.0
    } else {
        mid - w - 56.0
    };
    let _ = writeln!(
        out,
        r#"<text x="{tx:.1}" y="{}">{}</text>"#,
        y + 14.0,
        escape(&crate::diff::signed_pct(p))
    );
}

/// Write a chart, naming the file in any error.
pub fn write(path: &Path, svg: &str) -> anyhow::Result<()> {
    std::fs::write(path, svg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
