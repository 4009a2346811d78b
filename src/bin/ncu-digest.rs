//! `ncu-digest`: DRAM traffic, bandwidth, % of peak, load/store efficiency
//! and a bound-ness verdict per kernel from Nsight Compute CSV. A thin layer
//! over the library: parse arguments, digest each file (in parallel), render.

use anyhow::{anyhow, bail, Result};
use clap::{Args as ClapArgs, Parser, Subcommand};
use nsight_digest::batch::{self, NcuRow};
use nsight_digest::categories::Categories;
use nsight_digest::cli::{
    exit_code, expand_inputs, pair_by_name, print_diffs, print_output, report_errors,
    start_process, DiffOutput, TopRows,
};
use nsight_digest::diff::{parse_threshold, DiffReport, DEFAULT_DIFF_TOP};
use nsight_digest::ncu::compare::compare;
use nsight_digest::ncu::derive::{table_peak, PeakOptions, GPU_PEAKS};
use nsight_digest::ncu::reader::ReadOptions;
use nsight_digest::ncu::report_import::{is_ncu_file, scan_choice, ScanChoice};
use nsight_digest::ncu::units::{parse_number, to_base, DecimalStyle};
use nsight_digest::ncu::{digest, view, Group, NameFilter, NcuDigest, NcuOptions};
use nsight_digest::render::{self, Format};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Per-kernel DRAM bytes, bandwidth, % of peak, load/store efficiency and
/// a memory/compute/latency verdict from `ncu --csv` output (details or raw
/// page, plain or gzipped), grouped by kernel or NVTX range.
#[derive(Debug, Parser)]
#[command(name = "ncu-digest", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// ncu CSV files (.csv, .csv.gz), reports (.ncu-rep, read through ncu) or
    /// folders holding them; a folder's reports are read where it holds no CSV.
    inputs: Vec<PathBuf>,

    /// One row per launch instead of the aggregated view.
    #[arg(long)]
    per_launch: bool,

    /// With several files: print every full digest, not the combined table.
    #[arg(long)]
    per_file: bool,

    #[command(flatten)]
    args: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two ncu CSVs or reports (or two folders, matching files by
    /// their path inside each folder).
    Diff {
        /// The run before the change: an ncu CSV (.csv, .csv.gz), a report
        /// (.ncu-rep) or a folder of them.
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
        args: Args,
    },
}

#[derive(Debug, ClapArgs)]
struct Args {
    /// Kernels to keep: a case-insensitive substring, `regex:RE`, or a
    /// category (attention, gemm, norm, elementwise, reduction, copy,
    /// communication, other).
    #[arg(short, long, value_name = "PATTERN")]
    kernel: Option<String>,

    /// Keep launches inside a matching NVTX range: substring or `regex:RE`.
    #[arg(long, value_name = "PATTERN")]
    nvtx: Option<String>,

    /// Aggregate per kernel, per NVTX range stack, or per both.
    #[arg(short, long, value_enum, default_value = "kernel")]
    group: Group,

    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,

    /// Read `1.234,5` as one thousand two hundred thirty-four and a half.
    #[arg(long)]
    decimal_comma: bool,

    /// Peak DRAM bandwidth, e.g. `4.8TB/s`, `3350GB/s` or `4.8e12` (byte/s).
    #[arg(long, value_name = "RATE")]
    peak_bandwidth: Option<String>,

    /// GPU name for the datasheet peak table when the file names none (e.g. H100 PCIe).
    #[arg(long, value_name = "NAME")]
    gpu: Option<String>,

    /// Extra kernel category, tried before the built-in ones (repeatable).
    #[arg(long, value_name = "NAME=REGEX")]
    category: Vec<String>,

    /// Write an SVG chart of the largest changes (diff only).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,

    /// Rows of the aggregated table (by total duration), or `all` (the
    /// default); a diff's sections keep their 15 largest changes and every
    /// regression. JSON keeps every row.
    #[arg(long, value_name = "N|all")]
    top: Option<TopRows>,

    /// Hide the progress bar (it only shows on a terminal anyway).
    #[arg(short, long)]
    quiet: bool,

    /// Refuse .gz inputs that inflate to more than this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8192)]
    max_decompressed_mb: u64,
}

fn main() -> ExitCode {
    start_process(false);
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Diff {
            base,
            new,
            threshold,
            fail_on_regression,
            args,
        }) => run_diff(base, new, threshold, *fail_on_regression, args),
        None => run(&cli),
    };
    exit_code("ncu-digest", result)
}

/// `4.8TB/s` → 4.8e12; a bare number is byte/s.
fn parse_rate(text: &str) -> Result<f64> {
    let t = text.trim();
    let (num, unit) = t.split_at(unit_start(t));
    let value = parse_number(num, DecimalStyle::Auto)
        .ok_or_else(|| anyhow!("--peak-bandwidth: {text:?} is not a number"))?;
    let rate = if unit.is_empty() {
        value
    } else {
        let unit = unit.replace("B/", "byte/").replace("b/", "byte/");
        let (factor, base) = to_base(&unit);
        if base != "byte/s" {
            bail!("--peak-bandwidth: unit {unit:?} is not a byte rate (use e.g. TB/s, GB/s)");
        }
        value * factor
    };
    // Zero would read as "no peak given" further on, and a negative or
    // infinite peak gives meaningless percentages.
    if !(rate.is_finite() && rate > 0.0) {
        bail!("--peak-bandwidth: {text:?} is not a positive rate");
    }
    Ok(rate)
}

/// Where the unit begins: the first letter that is not the `e` of an
/// exponent, so that `4.8e12` is a number and `5EB/s` a number and a unit.
fn unit_start(text: &str) -> usize {
    let b = text.as_bytes();
    (0..b.len())
        .find(|&i| {
            let exponent = matches!(b[i], b'e' | b'E')
                && i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1)
                    .is_some_and(|n| n.is_ascii_digit() || matches!(n, b'+' | b'-'));
            b[i].is_ascii_alphabetic() && !exponent
        })
        .unwrap_or(b.len())
}

/// `--gpu` only picks a row of the datasheet table, so a name it lacks
/// would be ignored without a word.
fn known_gpu(name: &str) -> Result<String> {
    if table_peak(name).is_none() {
        let known: Vec<&str> = GPU_PEAKS.iter().map(|(n, _)| *n).collect();
        bail!(
            "--gpu {name:?}: not in the datasheet table ({}); pass --peak-bandwidth instead",
            known.join(", ")
        );
    }
    Ok(name.to_string())
}

fn options(args: &Args, keep_launches: bool) -> Result<NcuOptions> {
    let categories = Categories::with_user_rules(&args.category)?;
    let kernel = match &args.kernel {
        Some(p) => {
            Some(NameFilter::parse(p, Some(&categories)).map_err(|e| anyhow!("--kernel: {e}"))?)
        }
        None => None,
    };
    let nvtx = match &args.nvtx {
        Some(p) => Some(NameFilter::parse(p, None).map_err(|e| anyhow!("--nvtx: {e}"))?),
        None => None,
    };
    Ok(NcuOptions {
        read: ReadOptions {
            decimal: if args.decimal_comma {
                DecimalStyle::Comma
            } else {
                DecimalStyle::Auto
            },
            max_decompressed_bytes: args.max_decompressed_mb.saturating_mul(1 << 20),
            ..ReadOptions::default()
        },
        peak: PeakOptions {
            bandwidth: args.peak_bandwidth.as_deref().map(parse_rate).transpose()?,
            gpu: args.gpu.as_deref().map(known_gpu).transpose()?,
        },
        kernel,
        nvtx,
        group: args.group,
        categories,
        keep_launches,
    })
}

fn digest_one(f: &Path, opts: &NcuOptions) -> Result<NcuDigest> {
    if f.is_dir() {
        bail!(
            "{}: no .csv, .csv.gz or .ncu-rep files in this folder",
            f.display()
        );
    }
    let d = digest(f, opts)?;
    if d.source.skipped_rows > 0 {
        eprintln!(
            "ncu-digest: warning: {}: {} rows did not fit the header and were skipped",
            d.source.file, d.source.skipped_rows
        );
    }
    Ok(d)
}

/// The files to digest: a named file as given, and what a folder scan
/// chooses, with one warning per report it leaves to a CSV not named after
/// it, which may be another profile's export.
fn files_to_digest(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        let found = expand_inputs(std::slice::from_ref(input), is_ncu_file);
        if found.as_slice() == std::slice::from_ref(input) {
            // A file, or a folder with nothing in it: reported when read.
            files.extend(found);
            continue;
        }
        for file in found {
            match scan_choice(&file) {
                ScanChoice::Read => files.push(file),
                ScanChoice::Skip => {}
                ScanChoice::SkipAndWarn => warn_unread_report(&file),
            }
        }
    }
    files
}

/// What a folder diff pairs: what the folder scan reads. The warning for
/// a report the scan leaves is given as the pairing lists the folder.
fn read_in_diff(path: &Path) -> bool {
    match scan_choice(path) {
        ScanChoice::Read => true,
        ScanChoice::Skip => false,
        ScanChoice::SkipAndWarn => {
            warn_unread_report(path);
            false
        }
    }
}

fn warn_unread_report(report: &Path) {
    eprintln!(
        "ncu-digest: warning: {}: not read; the CSV files beside it are taken to hold its export (name the report to read it)",
        report.display()
    );
}

/// Digest every input: full digests, or a combined table for several files.
fn run(cli: &Cli) -> Result<u8> {
    if cli.inputs.is_empty() {
        bail!("no input: give .csv, .csv.gz or .ncu-rep files, or folders");
    }
    let args = &cli.args;
    let opts = options(args, cli.per_launch)?;
    let files = files_to_digest(&cli.inputs);
    let full = files.len() == 1 || cli.per_file || cli.per_launch;
    let bar = batch::progress(files.len(), args.quiet);
    if full {
        let results: Vec<Result<NcuDigest>> = batch::largest_first(&files, |f| {
            let r = digest_one(f, &opts);
            bar.inc(1);
            r
        });
        bar.finish_and_clear();
        let Some((digests, ok)) = report_errors("ncu-digest", results) else {
            return Ok(2);
        };
        print_output(&render_all(&digests, args, cli.per_launch, files.len() > 1))?;
        return Ok(if ok { 0 } else { 2 });
    }
    // Several files: each worker keeps only the summary row.
    let results: Vec<Result<NcuRow>> = batch::largest_first(&files, |f| {
        let r = digest_one(f, &opts).map(|d| NcuRow::from_digest(&d));
        bar.inc(1);
        r
    });
    bar.finish_and_clear();
    let Some((rows, ok)) = report_errors("ncu-digest", results) else {
        return Ok(2);
    };
    let table = batch::ncu_table(&rows);
    print_output(&render::folder_summary(
        "ncu-digest",
        &rows,
        table,
        args.format,
    ))?;
    Ok(if ok { 0 } else { 2 })
}

/// `several` as for nsys-digest: the output's shape follows what was asked
/// for, not how many files could be read.
fn render_all(digests: &[NcuDigest], args: &Args, per_launch: bool, several: bool) -> String {
    let top = TopRows::or(args.top, None);
    let table = |d: &NcuDigest| {
        if per_launch {
            view::launch_table(d)
        } else {
            view::aggregate_table(d).keep_first(top, "--top N to change")
        }
    };
    match args.format {
        Format::Json if !several => render::json(&digests[0]) + "\n",
        Format::Json => render::json(&digests) + "\n",
        Format::Csv => {
            let tables: Vec<(String, _)> = digests
                .iter()
                .map(|d| (d.source.file.clone(), table(d)))
                .collect();
            render::csv_per_file(&tables, several)
        }
        Format::Table => digests
            .iter()
            .map(|d| render::terminal(&view::document(d, per_launch, top)))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Markdown => digests
            .iter()
            .map(|d| render::markdown(&view::document(d, per_launch, top)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Compare two files or folders; exit 1 on a gated regression when asked.
fn run_diff(base: &Path, new: &Path, threshold: &str, fail: bool, args: &Args) -> Result<u8> {
    let threshold = parse_threshold(threshold)
        .ok_or_else(|| anyhow!("--threshold {threshold:?}: expected a percentage like 5%"))?;
    let opts = options(args, false)?;
    let pairs = pair_by_name("ncu-digest", base, new, read_in_diff)?;
    let results: Vec<Result<DiffReport>> = pairs
        .par_iter()
        .map(|(b, n)| {
            Ok(compare(
                &digest_one(b, &opts)?,
                &digest_one(n, &opts)?,
                threshold,
            ))
        })
        .collect();
    print_diffs(
        "ncu-digest",
        results,
        &DiffOutput {
            format: args.format,
            svg: args.svg.as_deref(),
            top: TopRows::or(args.top, Some(DEFAULT_DIFF_TOP)),
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
