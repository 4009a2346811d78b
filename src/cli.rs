//! Pieces both binaries share: expanding folders into profile files and
//! printing one error line per failed file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Expand each argument: files stay as given, folders are walked
/// recursively for names `accept` recognises, in name order (`walk`'s)
/// for stable output.
/// Links to files are followed; links to folders are not, so a link
/// cannot make the walk loop.
pub fn expand_inputs(args: &[PathBuf], accept: fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = Vec::new();
            walk(arg, accept, &mut found);
            if found.is_empty() {
                // Keep the folder so the caller reports "nothing usable" for it.
                out.push(arg.clone());
            }
            out.extend(found);
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// Entries are visited in name order, not the file system's: `found`
/// comes out sorted path by path, and an `accept` that prints (ncu's
/// unread-report warning) prints in that order.
fn walk(dir: &Path, accept: fn(&Path) -> bool, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, accept, found),
            Ok(t) if t.is_file() && accept(&path) => found.push(path),
            Ok(t) if t.is_symlink() && path.is_file() && accept(&path) => found.push(path),
            _ => {}
        }
    }
}

/// The arguments of `cmd` and its subcommands that `--help` would list
/// with no words beside them, as `subcommand argument`, after clap's own
/// checks of the definition. Clap's built-in `--help` and `--version` are
/// left out: they describe themselves.
pub fn arguments_without_help(cmd: clap::Command) -> Vec<String> {
    cmd.clone().debug_assert();
    std::iter::once(&cmd)
        .chain(cmd.get_subcommands())
        .flat_map(|c| {
            c.get_arguments()
                .filter(|a| {
                    a.get_help().is_none() && !["help", "version"].contains(&a.get_id().as_str())
                })
                .map(move |a| format!("{} {}", c.get_name(), a.get_id()))
        })
        .collect()
}

/// What both tools do first, before any other thread exists: keep freed
/// memory for reuse (in one heap for a single profile), and on Ctrl-C
/// remove inflated temp copies before leaving with exit code 130.
pub fn start_process(one_profile: bool) {
    crate::memory::reuse_freed_memory();
    if one_profile {
        crate::memory::share_one_heap();
    }
    let _ = ctrlc::set_handler(|| {
        crate::input::remove_temp_dirs();
        std::process::exit(130);
    });
}

/// The exit code of a finished command: its own on success; on error, one
/// line on stderr naming the tool, and 2.
pub fn exit_code(tool: &str, result: anyhow::Result<u8>) -> std::process::ExitCode {
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("{tool}: error: {}", one_line(&format!("{e:#}")));
            std::process::ExitCode::from(2)
        }
    }
}

/// Write the rendered output to stdout. A reader that stops early
/// (`| head`) closes the pipe; that is not an error, so the rest is dropped
/// instead of panicking as `print!` would.
pub fn print_output(text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to standard output"),
    }
}

/// Print each failed file's error on its own line, naming the tool; the
/// values of the others, and whether every one succeeded. `None` when there
/// were inputs and every one failed: then there is nothing to print, not
/// even an empty list or table, and the caller exits with 2.
pub fn report_errors<T>(tool: &str, results: Vec<anyhow::Result<T>>) -> Option<(Vec<T>, bool)> {
    let tried = results.len();
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => eprintln!("{tool}: error: {}", one_line(&format!("{e:#}"))),
        }
    }
    let ok = out.len() == tried;
    (ok || !out.is_empty()).then_some((out, ok))
}

/// Collapse an error chain onto one line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Pairs of files to compare: two files as given, or the files of two
/// folders matched by their path inside the folder. A profile found in only
/// one folder gets a warning line naming it: a case missing from the new
/// run must not pass unseen as "no regression".
pub fn pair_by_name(
    tool: &str,
    base: &Path,
    new: &Path,
    accept: fn(&Path) -> bool,
) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    match (base.is_dir(), new.is_dir()) {
        (false, false) => Ok(vec![(base.to_path_buf(), new.to_path_buf())]),
        (true, true) => {
            let (bases, news) = (
                profiles_by_name(base, accept),
                profiles_by_name(new, accept),
            );
            let pairs: Vec<(PathBuf, PathBuf)> = bases
                .iter()
                .filter_map(|(rel, b)| Some((b.clone(), news.get(rel)?.clone())))
                .collect();
            if pairs.is_empty() {
                anyhow::bail!(
                    "{} and {}: no profile name appears in both folders",
                    base.display(),
                    new.display()
                );
            }
            warn_unpaired(tool, &bases, &news, new);
            warn_unpaired(tool, &news, &bases, base);
            Ok(pairs)
        }
        _ => anyhow::bail!(
            "{} and {}: compare two files or two folders",
            base.display(),
            new.display()
        ),
    }
}

/// The profiles under `dir`, by their path inside it.
fn profiles_by_name(dir: &Path, accept: fn(&Path) -> bool) -> BTreeMap<PathBuf, PathBuf> {
    let mut found = Vec::new();
    walk(dir, accept, &mut found);
    found
        .into_iter()
        .filter_map(|p| Some((p.strip_prefix(dir).ok()?.to_path_buf(), p)))
        .collect()
}

/// A warning for each profile of `these` that `those`, found in
/// `other_dir`, has no profile of the same name for.
fn warn_unpaired(
    tool: &str,
    these: &BTreeMap<PathBuf, PathBuf>,
    those: &BTreeMap<PathBuf, PathBuf>,
    other_dir: &Path,
) {
    for (rel, file) in these {
        if !those.contains_key(rel) {
            eprintln!(
                "{tool}: warning: {}: nothing of that name in {}; not compared",
                file.display(),
                other_dir.display()
            );
        }
    }
}

/// How a diff is printed, and whether a regression fails the run.
pub struct DiffOutput<'a> {
    pub format: crate::render::Format,
    pub svg: Option<&'a Path>,
    /// Rows per section besides the regressions (`None`: all).
    pub top: Option<usize>,
    pub fail_on_regression: bool,
}

/// The end both tools' `diff` share: one line per pair that failed, the
/// chart of the first report, the reports, and the exit code (2 when a pair
/// failed, 1 on a regression when asked to fail, else 0).
pub fn print_diffs(
    tool: &str,
    results: Vec<anyhow::Result<crate::diff::DiffReport>>,
    out: &DiffOutput,
) -> anyhow::Result<u8> {
    let Some((reports, ok)) = report_errors(tool, results) else {
        return Ok(2);
    };
    if let (Some(path), Some(r)) = (out.svg, reports.first()) {
        crate::svg::write(path, &crate::svg::diff_chart(r))?;
    }
    print_output(&crate::diff::render(&reports, out.format, out.svg, out.top))?;
    let regressed = reports.iter().any(|r| r.regressions > 0);
    Ok(if !ok {
        2
    } else if out.fail_on_regression && regressed {
        1
    } else {
        0
    })
}

/// `--top`: how many rows a ranked table keeps, a number or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopRows(pub Option<usize>);

impl std::str::FromStr for TopRows {
    type Err = String;
    fn from_str(s: &str) -> Result<TopRows, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(TopRows(None));
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(TopRows(Some(n))),
            _ => Err(format!(
                "'{s}' is not a number of rows (1 or more) or 'all'"
            )),
        }
    }
}

impl TopRows {
    /// The rows asked for, else `default` (`None`: all).
    pub fn or(top: Option<TopRows>, default: Option<usize>) -> Option<usize> {
        top.map_or(default, |t| t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TopRows;

    #[test]
    fn top_rows_read_a_positive_count_or_all() {
        let parse = |s: &str| s.parse::<TopRows>().map(|t| t.0);
        assert_eq!(parse("7"), Ok(Some(7)));
        assert_eq!(parse("All"), Ok(None));
        for bad in ["0", "-3", "ten", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(TopRows::or(None, Some(10)), Some(10));
        assert_eq!(TopRows::or(Some(TopRows(None)), Some(10)), None);
    }
}
