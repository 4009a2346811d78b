//! `ncu-digest`: DRAM traffic, bandwidth, % of peak, load/store efficiency
//! and a bound-ness verdict per kernel from Nsight Compute CSV. A thin layer
//! over the library: parse arguments, digest each file (in parallel), render.

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use nsight_digest::categories::Categories;
use nsight_digest::cli::{expand_inputs, one_line};
use nsight_digest::ncu::derive::PeakOptions;
use nsight_digest::ncu::reader::ReadOptions;
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
#[command(name = "ncu-digest", version)]
struct Args {
    /// ncu CSV files (.csv, .csv.gz) or folders holding them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

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

    /// One row per launch instead of the aggregated view.
    #[arg(long)]
    per_launch: bool,

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

    /// Refuse .gz inputs that inflate to more than this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8192)]
    max_decompressed_mb: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ncu-digest: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// `4.8TB/s` → 4.8e12; a bare number is byte/s.
fn parse_rate(text: &str) -> Result<f64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value = parse_number(num, DecimalStyle::Auto)
        .ok_or_else(|| anyhow!("--peak-bandwidth: {text:?} is not a number"))?;
    if unit.is_empty() {
        return Ok(value);
    }
    let unit = unit.replace("B/", "byte/").replace("b/", "byte/");
    let (factor, base) = to_base(&unit);
    if base != "byte/s" {
        bail!("--peak-bandwidth: unit {unit:?} is not a byte rate (use e.g. TB/s, GB/s)");
    }
    Ok(value * factor)
}

fn options(args: &Args) -> Result<NcuOptions> {
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
        },
        peak: PeakOptions {
            bandwidth: args.peak_bandwidth.as_deref().map(parse_rate).transpose()?,
            gpu: args.gpu.clone(),
        },
        kernel,
        nvtx,
        group: args.group,
        categories,
    })
}

fn is_csv(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

/// Digest every input; `Ok(false)` when some file failed.
fn run(args: &Args) -> Result<bool> {
    let opts = options(args)?;
    let files = expand_inputs(&args.inputs, is_csv);
    let results: Vec<Result<NcuDigest>> = files
        .par_iter()
        .map(|f| {
            if f.is_dir() {
                bail!("{}: no .csv or .csv.gz files in this folder", f.display());
            }
            Ok(digest(f, &opts)?)
        })
        .collect();
    let mut ok = true;
    let mut digests = Vec::new();
    for result in results {
        match result {
            Ok(d) => {
                if d.source.skipped_rows > 0 {
                    eprintln!(
                        "ncu-digest: warning: {}: {} rows did not fit the header and were skipped",
                        d.source.file, d.source.skipped_rows
                    );
                }
                digests.push(d)
            }
            Err(e) => {
                ok = false;
                eprintln!("ncu-digest: error: {}", one_line(&format!("{e:#}")));
            }
        }
    }
    print!("{}", render_all(&digests, args));
    Ok(ok)
}

fn render_all(digests: &[NcuDigest], args: &Args) -> String {
    let table = |d: &NcuDigest| {
        if args.per_launch {
            view::launch_table(d)
        } else {
            view::aggregate_table(d, None)
        }
    };
    match args.format {
        Format::Json if digests.len() == 1 => render::json(&digests[0]) + "\n",
        Format::Json => render::json(&digests) + "\n",
        Format::Csv => digests.iter().map(|d| render::csv(&table(d))).collect(),
        Format::Table => digests
            .iter()
            .map(|d| render::terminal(&view::document(d, args.per_launch)))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Markdown => digests
            .iter()
            .map(|d| render::markdown(&view::document(d, args.per_launch)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}
