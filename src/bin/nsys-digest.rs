//! `nsys-digest`: summarise Nsight Systems SQLite exports. A thin layer over
//! the library: parse arguments, digest each file (in parallel), render.

use anyhow::{anyhow, bail, Result};
use clap::{Args as ClapArgs, Parser, Subcommand};
use nsight_digest::batch::{self, NsysRow};
use nsight_digest::categories::Categories;
use nsight_digest::cli::{
    exit_code, expand_inputs, pair_by_name, print_diffs, print_output, report_errors,
    start_process, DiffOutput, TopRows,
};
use nsight_digest::diff::{parse_threshold, DiffReport, DEFAULT_DIFF_TOP};
use nsight_digest::export::{write_parquet, ExportTables};
use nsight_digest::input::{is_nsys_candidate, InputOptions};
use nsight_digest::nsys::compare::compare;
use nsight_digest::nsys::llm::LlmOptions;
use nsight_digest::nsys::time_filter::TraceFilter;
use nsight_digest::nsys::trace::NameStyle;
use nsight_digest::nsys::view::{self, ReportName, DEFAULT_TOP};
use nsight_digest::nsys::{digest, Digest, DigestOptions};
use nsight_digest::render::{self, Format};
use nsight_digest::svg;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Answers from `nsys export --type sqlite` files: top kernels, NVTX ranges
/// and their GPU time, launch latency, memory traffic, GPU idle time, CUDA
/// graphs, prefill/decode phases and layers — the numbers `nsys stats`
/// prints, in a fraction of the time.
#[derive(Debug, Parser)]
#[command(name = "nsys-digest", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Profiles (.sqlite, .sqlite.gz, .nsys-rep or the older .qdrep) or folders holding them.
    inputs: Vec<PathBuf>,

    /// Print one full report instead of the one-screen digest.
    #[arg(short, long, value_enum)]
    report: Option<ReportName>,

    /// With several profiles: print every full digest, not the combined table.
    #[arg(long)]
    per_file: bool,

    /// Write kernels, nvtx, phases, steps, layers, categories and communication
    /// tables (one row per profile and item) as Parquet files into DIR.
    /// Needs the `parquet` feature.
    #[arg(long, value_name = "DIR")]
    export_parquet: Option<PathBuf>,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two profiles (or two folders, matching files by their path
    /// inside each folder).
    Diff {
        /// The run before the change: a profile (.sqlite, .sqlite.gz,
        /// .nsys-rep) or a folder of them.
        base: PathBuf,
        /// The run after the change, of the same kind as BASE.
        new: PathBuf,
        /// A change worse than this marks a regression, e.g. `5%`.
        #[arg(long, default_value = "5%")]
        threshold: String,
        /// Exit 1 when any gated metric regresses past the threshold.
        #[arg(long)]
        fail_on_regression: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, ClapArgs)]
struct Common {
    /// Output format; csv needs --report for a single profile.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,

    /// Kernel names: short (base), demangled (nsys default) or mangled.
    #[arg(long, value_enum, default_value = "demangled")]
    names: NameStyle,

    /// nvtx-kernels: count each kernel once, in its innermost range.
    #[arg(long)]
    innermost: bool,

    /// kernels: one row per process and GPU, in a profile with several
    /// (nsys stats sums them per name).
    #[arg(long)]
    by_process: bool,

    /// Step ranges: a regex with named groups `ctx` and `gen` (request
    /// counts), optionally `ctx_tokens` and `gen_tokens`.
    #[arg(long, value_name = "REGEX")]
    step_regex: Option<String>,

    /// Split the layers report per phase.
    #[arg(long)]
    by_phase: bool,

    /// Extra kernel category, tried before the built-in ones (repeatable).
    #[arg(long, value_name = "NAME=REGEX")]
    category: Vec<String>,

    /// Write an SVG bar chart: time by layer type × phase, or the top
    /// changes of a diff. The Markdown output references it.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// Only the rows that overlap one instance of an NVTX range (INDEX from
    /// 0, by start time; default 0): calls and ranges of its thread (its
    /// process for a start/end range), GPU work of its process. The rows
    /// `nsys stats --filter-nvtx` keeps.
    #[arg(
        long,
        value_name = "NAME[@DOMAIN][/INDEX]",
        conflicts_with = "filter_time"
    )]
    filter_nvtx: Option<String>,

    /// Only the rows that overlap START/END: nanoseconds, or numbers with
    /// units (`8s/9.5s`, `1s200ms/`); either end may be left out. The rows
    /// `nsys stats --filter-time` keeps.
    #[arg(long, value_name = "START/END", allow_hyphen_values = true)]
    filter_time: Option<String>,

    /// Rows per table ranked by time, or `all`: the digest's tables keep 10,
    /// a diff's sections their 15 largest changes (and every regression), a
    /// --report every row; --report steps keeps the N steps furthest above
    /// their phase's median. JSON keeps every row.
    #[arg(long, value_name = "N|all")]
    top: Option<TopRows>,

    /// Hide the progress bar (it only shows on a terminal anyway).
    #[arg(short, long)]
    quiet: bool,

    /// Folder for temporary files (inflated .gz, exported .nsys-rep).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,

    /// Refuse .gz inputs that inflate to more than this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8192)]
    max_decompressed_mb: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let one_profile = cli.command.is_none() && cli.inputs.len() == 1 && !cli.inputs[0].is_dir();
    start_process(one_profile);
    let result = match &cli.command {
        Some(Command::Diff {
            base,
            new,
            threshold,
            fail_on_regression,
            common,
        }) => run_diff(base, new, threshold, *fail_on_regression, common),
        None => run(&cli),
    };
    exit_code("nsys-digest", result)
}

fn options(c: &Common) -> Result<DigestOptions> {
    let step_regex = match &c.step_regex {
        Some(re) => Some(
            regex::RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| anyhow!("--step-regex: {e}"))?,
        ),
        None => None,
    };
    Ok(DigestOptions {
        llm: LlmOptions {
            step_regex,
            categories: Categories::with_user_rules(&c.category)?,
            by_phase: c.by_phase,
        },
        names: c.names,
        innermost: c.innermost,
        kernels_by_process: c.by_process,
        input: InputOptions {
            temp_dir: c.temp_dir.clone(),
            max_decompressed_bytes: c.max_decompressed_mb.saturating_mul(1 << 20),
        },
        filter: trace_filter(c)?,
    })
}

/// `--filter-nvtx` or `--filter-time`, checked here for a one-line error.
fn trace_filter(c: &Common) -> Result<Option<TraceFilter>> {
    if let Some(spec) = &c.filter_nvtx {
        let filter = TraceFilter::parse_nvtx(spec).map_err(|e| anyhow!("--filter-nvtx: {e}"))?;
        return Ok(Some(filter));
    }
    c.filter_time
        .as_deref()
        .map(|spec| TraceFilter::parse_time(spec).map_err(|e| anyhow!("--filter-time: {e}")))
        .transpose()
}

fn digest_one(file: &Path, opts: &DigestOptions) -> Result<Digest> {
    if file.is_dir() {
        bail!(
            "{}: no .sqlite, .sqlite.gz or .nsys-rep files in this folder",
            file.display()
        );
    }
    let d = digest(file, opts)?;
    for w in &d.source.warnings {
        eprintln!("nsys-digest: warning: {}: {w}", file.display());
    }
    Ok(d)
}

/// Digest every input: one full digest, or a combined table for several.
fn run(cli: &Cli) -> Result<u8> {
    if cli.inputs.is_empty() {
        bail!("no input: give .sqlite, .sqlite.gz or .nsys-rep files, or folders");
    }
    let c = &cli.common;
    let opts = options(c)?;
    let files = expand_inputs(&cli.inputs, is_nsys_candidate);
    let full = files.len() == 1 || cli.per_file || cli.report.is_some();
    if c.format == Format::Csv && full && cli.report.is_none() {
        bail!("--format csv needs a single --report (kernels, nvtx, nvtx-kernels, launch, busy, memory, api, graphs, phases, layers, categories, communication, hotspots)");
    }
    if full {
        run_full(cli, &files, &opts)
    } else {
        run_summary(cli, &files, &opts)
    }
}

/// Every profile's full digest (or one report of it).
fn run_full(cli: &Cli, files: &[PathBuf], opts: &DigestOptions) -> Result<u8> {
    let c = &cli.common;
    let bar = batch::progress(files.len(), c.quiet);
    // One profile runs on this thread, keeping its own parallel reads.
    let results: Vec<Result<Digest>> = if files.len() == 1 {
        vec![digest_one(&files[0], opts)]
    } else {
        batch::largest_first(files, |f| {
            let r = digest_one(f, opts);
            bar.inc(1);
            r
        })
    };
    bar.finish_and_clear();
    let Some((digests, ok)) = report_errors("nsys-digest", results) else {
        return Ok(2);
    };
    if let Some(dir) = &cli.export_parquet {
        let mut tables = ExportTables::default();
        for d in &digests {
            tables.extend(ExportTables::from_digest(d));
        }
        write_parquet(dir, &tables)?;
    }
    if let (Some(path), Some(d)) = (&c.svg, digests.first()) {
        svg::write(path, &svg::layer_phase_chart(&d.llm.layers, &d.source.file))?;
    }
    print_output(&render_digests(&digests, cli, files.len() > 1))?;
    Ok(if ok { 0 } else { 2 })
}

/// Several profiles, one summary row each: each worker keeps only its row
/// (and its Parquet rows), so memory does not grow with the folder.
fn run_summary(cli: &Cli, files: &[PathBuf], opts: &DigestOptions) -> Result<u8> {
    let c = &cli.common;
    let bar = batch::progress(files.len(), c.quiet);
    let export = cli.export_parquet.is_some();
    let results: Vec<Result<(NsysRow, Option<ExportTables>)>> = batch::largest_first(files, |f| {
        let r = digest_one(f, opts).map(|d| {
            (
                NsysRow::from_digest(&d),
                export.then(|| ExportTables::from_digest(&d)),
            )
        });
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    let Some((pairs, ok)) = report_errors("nsys-digest", results) else {
        return Ok(2);
    };
    let mut tables = ExportTables::default();
    let mut rows = Vec::new();
    for (row, t) in pairs {
        rows.push(row);
        if let Some(t) = t {
            tables.extend(t);
        }
    }
    if let Some(dir) = &cli.export_parquet {
        write_parquet(dir, &tables)?;
    }
    let table = batch::nsys_table(&rows);
    print_output(&render::folder_summary(
        "nsys-digest",
        &rows,
        table,
        c.format,
    ))?;
    Ok(if ok { 0 } else { 2 })
}

/// `several`: more than one profile was asked for, so JSON is an array and
/// CSV has a file column even when only one of them could be read.
fn render_digests(digests: &[Digest], cli: &Cli, several: bool) -> String {
    let c = &cli.common;
    let top = TopRows::or(c.top, None);
    match c.format {
        Format::Json if !several => render::json(&digests[0]) + "\n",
        Format::Json => render::json(&digests) + "\n",
        Format::Csv => {
            let report = cli.report.expect("checked above");
            let tables: Vec<(String, _)> = digests
                .iter()
                .filter_map(|d| {
                    let table = view::report_tables(d, report, top).into_iter().next()?;
                    Some((d.source.file.clone(), table))
                })
                .collect();
            render::csv_per_file(&tables, several)
        }
        Format::Table | Format::Markdown => {
            let docs = digests.iter().map(|d| {
                let mut doc = match cli.report {
                    Some(r) => view::report_document(d, r, top),
                    None => view::default_document(
                        d,
                        TopRows::or(c.top, Some(DEFAULT_TOP)).unwrap_or(usize::MAX),
                    ),
                };
                doc.chart = c.svg.as_ref().map(|p| p.display().to_string());
                doc
            });
            let render_doc = if c.format == Format::Table {
                render::terminal
            } else {
                render::markdown
            };
            docs.map(|doc| render_doc(&doc))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Compare two profiles or two folders; exit 1 on a gated regression when asked.
fn run_diff(base: &Path, new: &Path, threshold: &str, fail: bool, c: &Common) -> Result<u8> {
    let threshold = parse_threshold(threshold)
        .ok_or_else(|| anyhow!("--threshold {threshold:?}: expected a percentage like 5%"))?;
    let opts = options(c)?;
    let pairs = pair_by_name("nsys-digest", base, new, is_nsys_candidate)?;
    let results: Vec<Result<DiffReport>> = pairs
        .par_iter()
        .map(|(b, n)| {
            let (db, dn) = rayon::join(|| digest_one(b, &opts), || digest_one(n, &opts));
            Ok(compare(&db?, &dn?, threshold))
        })
        .collect();
    print_diffs(
        "nsys-digest",
        results,
        &DiffOutput {
            format: c.format,
            svg: c.svg.as_deref(),
            top: TopRows::or(c.top, Some(DEFAULT_DIFF_TOP)),
            fail_on_regression: fail,
        },
    )
}

#[test]
fn every_argument_says_what_it_is() {
    use clap::CommandFactory;
    assert_eq!(
        nsight_digest::cli::arguments_without_help(Cli::command()),
        [""; 0]
    );
}
