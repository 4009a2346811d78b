//! Small hand-written SVG bar charts for PR comments: GPU time by layer
//! type (× phase), and the largest changes of a diff. Plain SVG with a
//! generic font family, so any renderer draws them without extra fonts.

use crate::diff::DiffReport;
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
    let mut types: Vec<String> = Vec::new();
    let mut phases: Vec<String> = Vec::new();
    for t in &layers.types {
        if !types.contains(&t.layer_type) {
            types.push(t.layer_type.clone());
        }
        let p = t
            .phase
            .map_or("all".to_string(), |p| p.as_str().to_string());
        if !phases.contains(&p) {
            phases.push(p);
        }
    }
    let total = |ty: &str| -> i64 {
        layers
            .types
            .iter()
            .filter(|t| t.layer_type == ty)
            .map(|t| t.gpu_ns)
            .sum()
    };
    let max = types.iter().map(|t| total(t)).max().unwrap_or(1).max(1) as f64;
    let height = 48.0 + ROW * (types.len() as f64 + 1.0);
    let mut out = String::new();
    open(
        &mut out,
        height,
        &format!("GPU time by layer type × phase — {title}"),
    );
    for (i, ty) in types.iter().enumerate() {
        let y = 32.0 + ROW * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="8" y="{}">{}</text>"#,
            y + 14.0,
            escape(&short(ty, 48))
        );
        let mut x = LABEL;
        for (pi, ph) in phases.iter().enumerate() {
            let ns: i64 = layers
                .types
                .iter()
                .filter(|t| {
                    t.layer_type == *ty
                        && t.phase
                            .map_or("all".to_string(), |p| p.as_str().to_string())
                            == *ph
                })
                .map(|t| t.gpu_ns)
                .sum();
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
            total(ty) as f64 / 1e6
        );
    }
    let y = 32.0 + ROW * types.len() as f64 + 14.0;
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
    out.push_str("</svg>\n");
    out
}

/// Diverging bars for the largest % changes: red worse, green better.
pub fn diff_chart(report: &DiffReport) -> String {
    let mut rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.delta_pct.is_some() && r.gated)
        .collect();
    rows.sort_by(|a, b| {
        b.delta_pct
            .unwrap()
            .abs()
            .total_cmp(&a.delta_pct.unwrap().abs())
    });
    rows.truncate(12);
    let max = rows
        .iter()
        .map(|r| r.delta_pct.unwrap().abs())
        .fold(1.0, f64::max);
    let height = 40.0 + ROW * rows.len().max(1) as f64;
    let mut out = String::new();
    open(
        &mut out,
        height,
        &format!("Largest changes (threshold {} %)", report.threshold_pct),
    );
    let mid = LABEL + (WIDTH - LABEL) / 2.0;
    let half = (WIDTH - LABEL) / 2.0 - 60.0;
    let _ = writeln!(
        out,
        r##"<line x1="{mid}" y1="26" x2="{mid}" y2="{height}" stroke="#999"/>"##
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 28.0 + ROW * i as f64;
        let p = r.delta_pct.unwrap();
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
    out.push_str("</svg>\n");
    out
}

/// Write a chart, naming the file in any error.
pub fn write(path: &Path, svg: &str) -> anyhow::Result<()> {
    std::fs::write(path, svg).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
