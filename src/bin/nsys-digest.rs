//! `nsys-digest`: summarise Nsight Systems SQLite exports. A thin layer over
//! the library: parse arguments, digest each file (in parallel), render.

use anyhow::{bail, Result};
use clap::Parser;
use nsight_digest::categories::Categories;
use nsight_digest::cli::{expand_inputs, one_line};
use nsight_digest::input::{is_nsys_candidate, InputOptions};
use nsight_digest::nsys::llm::LlmOptions;
use nsight_digest::nsys::trace::NameStyle;
use nsight_digest::nsys::view::{self, ReportName};
use nsight_digest::nsys::{digest, Digest, DigestOptions};
use nsight_digest::render::{self, Format};
use rayon::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;

/// Answers from `nsys export --type sqlite` files: top kernels, NVTX ranges
/// and their GPU time, launch latency, memory traffic and GPU idle time —
/// the numbers `nsys stats` prints, in a fraction of the time.
#[derive(Debug, Parser)]
#[command(name = "nsys-digest", version)]
struct Args {
    /// Profiles (.sqlite, .sqlite.gz, .nsys-rep) or folders holding them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,

    /// Print one full report instead of the one-screen digest.
    #[arg(short, long, value_enum)]
    report: Option<ReportName>,

    /// Output format; csv needs --report.
    #[arg(short, long, value_enum, default_value = "table")]
    format: Format,

    /// Kernel names: short (base), demangled (nsys default) or mangled.
    #[arg(long, value_enum, default_value = "demangled")]
    names: NameStyle,

    /// nvtx-kernels: count each kernel once, in its innermost range.
    #[arg(long)]
    innermost: bool,

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

    /// Folder for temporary files (inflated .gz, exported .nsys-rep).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,

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
            eprintln!("nsys-digest: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// Digest every input; `Ok(false)` when some file failed.
fn run(args: &Args) -> Result<bool> {
    if args.format == Format::Csv && args.report.is_none() {
        bail!("--format csv needs a single --report (kernels, nvtx, nvtx-kernels, launch, busy, memory, graphs, phases, layers, hotspots)");
    }
    let step_regex = match &args.step_regex {
        Some(re) => Some(
            regex::RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| anyhow::anyhow!("--step-regex: {e}"))?,
        ),
        None => None,
    };
    let opts = DigestOptions {
        llm: LlmOptions {
            step_regex,
            categories: Categories::with_user_rules(&args.category)?,
            by_phase: args.by_phase,
        },
        names: args.names,
        innermost: args.innermost,
        input: InputOptions {
            temp_dir: args.temp_dir.clone(),
            max_decompressed_bytes: args.max_decompressed_mb.saturating_mul(1 << 20),
        },
    };
    let files = expand_inputs(&args.inputs, is_nsys_candidate);
    let results: Vec<(PathBuf, Result<Digest>)> = files
        .par_iter()
        .map(|f| (f.clone(), digest_one(f, &opts)))
        .collect();
    let mut ok = true;
    let mut digests = Vec::new();
    for (file, result) in results {
        match result {
            Ok(d) => digests.push(d),
            Err(e) => {
                ok = false;
                eprintln!("nsys-digest: error: {}", one_line(&format!("{e:#}")));
                let _ = file;
            }
        }
    }
    print!("{}", render_all(&digests, args));
    Ok(ok)
}

fn digest_one(file: &std::path::Path, opts: &DigestOptions) -> Result<Digest> {
    if file.is_dir() {
        bail!(
            "{}: no .sqlite, .sqlite.gz or .nsys-rep files in this folder",
            file.display()
        );
    }
    Ok(digest(file, opts)?)
}

fn render_all(digests: &[Digest], args: &Args) -> String {
    match args.format {
        Format::Json if digests.len() == 1 => render::json(&digests[0]) + "\n",
        Format::Json => render::json(&digests) + "\n",
        Format::Csv => {
            let report = args.report.expect("checked above");
            let mut out = String::new();
            for d in digests {
                if let Some(table) = view::report_tables(d, report).first() {
                    out.push_str(&render::csv(table));
                }
            }
            out
        }
        Format::Table | Format::Markdown => {
            let docs = digests.iter().map(|d| match args.report {
                Some(r) => view::report_document(d, r),
                None => view::default_document(d),
            });
            let render_doc = if args.format == Format::Table {
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
