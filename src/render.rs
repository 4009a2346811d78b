//! One table model, rendered four ways: terminal (tabled), GitHub Markdown,
//! CSV and — for whole digests — JSON through serde. Reports build a
//! [`Table`]; nothing else formats numbers.

use serde::Serialize;
use std::fmt::Write as _;

/// Output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Markdown,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A column: `key` is the snake_case CSV header with its unit, `title` the
/// human header for terminal and Markdown.
#[derive(Debug, Clone)]
pub struct Column {
    pub key: &'static str,
    pub title: &'static str,
    pub align: Align,
    /// Shorten to this many characters in the terminal and Markdown.
    pub max_width: Option<usize>,
}

impl Column {
    pub const fn text(key: &'static str, title: &'static str) -> Column {
        Column {
            key,
            title,
            align: Align::Left,
            max_width: None,
        }
    }
    pub const fn name(key: &'static str, title: &'static str) -> Column {
        Column {
            key,
            title,
            align: Align::Left,
            max_width: Some(80),
        }
    }
    pub const fn num(key: &'static str, title: &'static str) -> Column {
        Column {
            key,
            title,
            align: Align::Right,
            max_width: None,
        }
    }
}

/// One cell; numbers keep their type so each format can print them its way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// Code-like text (kernel and range names): backticked in Markdown.
    Name(String),
    Int(i64),
    /// A float and the decimals to print.
    Float(f64, usize),
    /// A base-unit value shown divided by a scale (e.g. byte/s as GB/s) in
    /// the terminal and Markdown, and unscaled in CSV.
    Scaled(f64, f64, usize),
    Missing,
}

impl Cell {
    /// A float, or a blank where there is none.
    pub fn opt_float(v: Option<f64>, decimals: usize) -> Cell {
        v.map_or(Cell::Missing, |x| Cell::Float(x, decimals))
    }

    /// A scaled base-unit value, or a blank where there is none.
    pub fn opt_scaled(v: Option<f64>, scale: f64, decimals: usize) -> Cell {
        v.map_or(Cell::Missing, |x| Cell::Scaled(x, scale, decimals))
    }

    /// An integer, or a blank where there is none.
    pub fn opt_int(v: Option<i64>) -> Cell {
        v.map_or(Cell::Missing, Cell::Int)
    }

    fn plain(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Name(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f, d) => format!("{:.*}", d, crate::stats::round_to(*f, *d)),
            Cell::Scaled(f, _, _) => format!("{f}"),
            Cell::Missing => String::new(),
        }
    }

    /// As the terminal and Markdown print it: thousands grouped, scaled.
    pub fn pretty(&self) -> String {
        match self {
            Cell::Scaled(f, scale, d) => Cell::Float(f / scale, *d).pretty(),
            Cell::Int(i) => group_thousands(&i.to_string()),
            Cell::Float(f, d) => {
                let s = format!("{:.*}", d, crate::stats::round_to(*f, *d));
                match s.split_once('.') {
                    Some((int, frac)) => format!("{}.{frac}", group_thousands(int)),
                    None => group_thousands(&s),
                }
            }
            Cell::Missing => "—".to_string(),
            other => other.plain(),
        }
    }
}

fn group_thousands(digits: &str) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{sign}{out}")
}

fn shorten(s: &str, max: Option<usize>) -> String {
    match max {
        Some(max) if s.chars().count() > max => {
            let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
            out.push('…');
            out
        }
        _ => s.to_string(),
    }
}

/// A titled table of cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: &'static str,
    pub title: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    /// Text under the table (what it means, what was left out); one
    /// line per line of it.
    pub note: Option<String>,
}

impl Table {
    /// Keep the first `top` rows (`None`: all); the note then says how many
    /// were left out, and `more` how to see them.
    pub fn keep_first(mut self, top: Option<usize>, more: &str) -> Table {
        let total = self.rows.len();
        let Some(n) = top.filter(|&n| n < total) else {
            return self;
        };
        self.rows.truncate(n);
        self.add_note(format!("{n} of {total} rows; {more}"));
        self
    }

    /// Append a line to the note.
    pub fn add_note(&mut self, line: String) {
        self.note = Some(match self.note.take() {
            Some(note) => format!("{note}\n{line}"),
            None => line,
        });
    }
}

/// Facts and tables, in the order they print.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    /// A one-line summary printed first (the PR-comment opener).
    pub summary: Option<String>,
    pub facts: Vec<(String, String)>,
    pub tables: Vec<Table>,
    /// An SVG chart file the Markdown references.
    pub chart: Option<String>,
}

/// A folder run's summary, one row per profile: the rows themselves as
/// JSON, otherwise `table` under the tool's name.
pub fn folder_summary<T: Serialize>(tool: &str, rows: &T, table: Table, format: Format) -> String {
    let doc = || Document {
        title: tool.into(),
        tables: vec![table.clone()],
        ..Default::default()
    };
    match format {
        Format::Json => json(rows) + "\n",
        Format::Csv => csv(&table),
        Format::Markdown => markdown(&doc()),
        Format::Table => terminal(&doc()),
    }
}

/// Render for the terminal.
pub fn terminal(doc: &Document) -> String {
    use tabled::settings::{object::Columns, Alignment, Style};
    let mut out = String::new();
    let _ = writeln!(out, "{}", doc.title);
    if let Some(s) = &doc.summary {
        let _ = writeln!(out, "  {s}");
    }
    for (k, v) in &doc.facts {
        let _ = writeln!(out, "  {k:<14} {v}");
    }
    for table in &doc.tables {
        let _ = writeln!(out, "\n{}", table.title);
        if table.rows.is_empty() {
            // The note of an empty table is often the reason it is empty.
            let _ = writeln!(out, "  (no data)");
            terminal_note(&mut out, table);
            continue;
        }
        let mut builder = tabled::builder::Builder::default();
        builder.push_record(table.columns.iter().map(|c| c.title.to_string()));
        for row in &table.rows {
            builder.push_record(
                row.iter()
                    .zip(&table.columns)
                    .map(|(cell, col)| shorten(&cell.pretty(), col.max_width)),
            );
        }
        let mut t = builder.build();
        t.with(Style::psql());
        for (i, col) in table.columns.iter().enumerate() {
            if col.align == Align::Right {
                t.modify(Columns::single(i), Alignment::right());
            }
        }
        let _ = writeln!(out, "{t}");
        terminal_note(&mut out, table);
    }
    out
}

/// A table's note under it, each of its lines indented.
fn terminal_note(out: &mut String, table: &Table) {
    for line in table.note.iter().flat_map(|n| n.lines()) {
        let _ = writeln!(out, "  {line}");
    }
}

/// A code span that survives any content: the fence is longer than any
/// run of backticks inside, and padded when the text touches a backtick.
fn code_span(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Escape text for a GFM table cell; names go in code spans so template
/// arguments like `<float, 128>` are never taken for HTML. A shortened
/// name gets a number pointing into the full-name list under the tables.
fn markdown_cell(cell: &Cell, col: &Column, full_names: &mut Vec<String>) -> String {
    match cell {
        Cell::Name(s) if !s.is_empty() => {
            let short = shorten(s, col.max_width);
            let mut out = code_span(&short).replace('|', "\\|");
            if short != *s {
                let n = match full_names.iter().position(|f| f == s) {
                    Some(i) => i + 1,
                    None => {
                        full_names.push(s.clone());
                        full_names.len()
                    }
                };
                out.push_str(&format!(" [{n}]"));
            }
            out
        }
        Cell::Text(s) => html_escape(&shorten(s, col.max_width)).replace('|', "\\|"),
        other => other.pretty(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Render as GitHub-flavoured Markdown.
pub fn markdown(doc: &Document) -> String {
    let mut out = String::new();
    let mut full_names = Vec::new();
    if let Some(s) = &doc.summary {
        // Our own words plus names already in code spans: no escaping needed.
        let _ = writeln!(out, "**{s}**\n");
    }
    let _ = writeln!(out, "### {}\n", html_escape(&doc.title));
    for (k, v) in &doc.facts {
        let _ = writeln!(out, "- **{}**: {}", html_escape(k), html_escape(v));
    }
    for table in &doc.tables {
        markdown_table(&mut out, table, &mut full_names);
    }
    if let Some(chart) = &doc.chart {
        let _ = writeln!(out, "\n![chart]({})", chart.replace(' ', "%20"));
    }
    if !full_names.is_empty() {
        let _ = writeln!(out, "\n<details><summary>Full names</summary>\n");
        for (i, name) in full_names.iter().enumerate() {
            let _ = writeln!(out, "{}. {}", i + 1, code_span(name));
        }
        let _ = writeln!(out, "\n</details>");
    }
    out
}

/// One table with its title and note; names too long for a cell go to
/// `full_names`, numbered across the document.
fn markdown_table(out: &mut String, table: &Table, full_names: &mut Vec<String>) {
    let _ = writeln!(out, "\n#### {}\n", html_escape(&table.title));
    if table.rows.is_empty() {
        let _ = writeln!(out, "_no data_");
        markdown_note(out, table);
        return;
    }
    let header: Vec<&str> = table.columns.iter().map(|c| c.title).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let rule: Vec<&str> = table
        .columns
        .iter()
        .map(|c| match c.align {
            Align::Left => ":---",
            Align::Right => "---:",
        })
        .collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in &table.rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&table.columns)
            .map(|(c, col)| markdown_cell(c, col, full_names))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    markdown_note(out, table);
}

/// A table's note as one emphasised paragraph; its lines stay lines.
fn markdown_note(out: &mut String, table: &Table) {
    if let Some(note) = &table.note {
        let _ = writeln!(out, "\n_{}_", html_escape(note));
    }
}

/// Render one table as CSV with snake_case, unit-bearing headers.
pub fn csv(table: &Table) -> String {
    let rows = table
        .rows
        .iter()
        .map(|row| row.iter().map(Cell::plain).collect());
    csv_text(table.columns.iter().map(|c| c.key), rows)
}

/// One CSV for the same table of several files: a leading `file` column
/// and one header, so the rows can be told apart and the text still parses
/// as one table. A single file's table is rendered as [`csv()`] renders it.
pub fn csv_per_file(tables: &[(String, Table)], several: bool) -> String {
    if let (false, [(_, table)]) = (several, tables) {
        return csv(table);
    }
    let Some((_, first)) = tables.first() else {
        return String::new();
    };
    let header = std::iter::once("file").chain(first.columns.iter().map(|c| c.key));
    let rows = tables.iter().flat_map(|(file, table)| {
        table.rows.iter().map(move |row| {
            std::iter::once(file.clone())
                .chain(row.iter().map(Cell::plain))
                .collect()
        })
    });
    csv_text(header, rows)
}

fn csv_text<'a>(
    header: impl IntoIterator<Item = &'a str>,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(&row);
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Render any serialisable digest as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
