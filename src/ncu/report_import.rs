//! An `.ncu-rep` read through `ncu --import FILE --csv --page raw
//! --print-units base`, whose output is streamed into the CSV reader as it
//! is printed: nothing is written to disk. The raw page is asked for
//! because it carries the device attributes the peak bandwidth comes from,
//! and base units because on import ncu otherwise scales each column to a
//! unit of its own and rounds (`0.067113 Gbyte` for 67,115,264 bytes). In
//! base units bytes and durations are whole numbers; percentages then come
//! with two decimals, as ncu's own pages print them. ncu 2020.1 spelled
//! the option `--units`; where ncu refuses `--print-units`, the import is
//! run again with the old spelling.
//! Folder scans pick up a report only where no CSV sits beside it.

use crate::error::DigestError;
use crate::input::lower_file_name;
use crate::nvidia_tools::{locate, NvidiaTool};
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// The first bytes of every `.ncu-rep` seen, from ncu 2020 to 2025.
pub const MAGIC: &[u8] = b"NVR\0";

/// What ncu is asked for, before the report's path.
pub const IMPORT_ARGS: &[&str] = &[
    "--csv",
    "--page",
    "raw",
    "--print-units",
    "base",
    "--import",
];

/// The same, as ncu 2020.1 spells it.
pub const LEGACY_IMPORT_ARGS: &[&str] = &["--csv", "--page", "raw", "--units", "base", "--import"];

/// What a folder scan does with a file it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanChoice {
    /// Every CSV, and a report with no CSV in its folder.
    Read,
    /// Not a profile, or a report whose export sits beside it, named after
    /// it (`run.csv`, `run.details.csv`, `run_raw.csv.gz` for
    /// `run.ncu-rep`).
    Skip,
    /// A report beside CSVs none of which is named after it: the one case
    /// where the CSV may be another profile's export, so the scan says what
    /// it left.
    SkipAndWarn,
}

/// A folder scan reads a report only where no CSV sits in its folder: ncu
/// prints its export to stdout, so the file beside a report may have any
/// name, and a report read next to its export would count every launch
/// twice.
pub fn scan_choice(path: &Path) -> ScanChoice {
    if is_csv(path) {
        return ScanChoice::Read;
    }
    // Every file of a scanned folder comes here; only a report lists its
    // folder.
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return ScanChoice::Skip;
    };
    if !is_report(path) {
        return ScanChoice::Skip;
    }
    let beside = csv_beside(path);
    if beside.is_empty() {
        ScanChoice::Read
    } else if beside.iter().any(|n| n.starts_with(stem)) {
        ScanChoice::Skip
    } else {
        ScanChoice::SkipAndWarn
    }
}

/// A CSV or a report, before the choice of which to read.
pub fn is_ncu_file(path: &Path) -> bool {
    is_csv(path) || is_report(path)
}

fn is_report(path: &Path) -> bool {
    lower_file_name(path).ends_with(".ncu-rep")
}

fn is_csv(path: &Path) -> bool {
    let name = lower_file_name(path);
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

/// The names of the CSV files in a file's folder.
fn csv_beside(path: &Path) -> Vec<String> {
    let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_csv(p) && p.is_file())
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect()
}

/// ncu's CSV text for one report. ncu prints why it failed on stdout, as
/// `==ERROR==` lines before any CSV, so the text is read ahead until its
/// first line that is not one of ncu's own: a report ncu cannot load, or
/// an option it refuses, is known before the CSV reader starts. At the end
/// of the text the exit status is checked too, for a failure part way.
pub struct ImportedReport {
    child: Child,
    stdout: ChildStdout,
    /// ncu's stderr, gathered on a thread; taken once ncu has been waited
    /// for, so `Some` also means that ncu may still be running.
    stderr: Option<JoinHandle<String>>,
    /// What was read ahead, handed to the reader before the rest.
    ahead: std::io::Cursor<Vec<u8>>,
}

/// ncu ended with an error: its status, and what it said.
struct NcuFailure {
    status: ExitStatus,
    said: String,
}

impl NcuFailure {
    /// Whether ncu refused the option that ncu 2020.1 spelled `--units`.
    fn refuses_print_units(&self) -> bool {
        self.said.contains("print-units")
    }

    /// The error, with ncu's last `==ERROR==` line as its reason, or else
    /// its last line.
    fn into_io(self) -> std::io::Error {
        let lines = || self.said.lines().map(str::trim).filter(|l| !l.is_empty());
        let reason = lines()
            .rev()
            .find_map(|l| l.strip_prefix("==ERROR=="))
            .or_else(|| lines().next_back())
            .unwrap_or("no message")
            .trim();
        let status = self.status;
        std::io::Error::other(format!("`ncu --import` failed ({status}): {reason}"))
    }
}

impl ImportedReport {
    pub fn start(path: &Path) -> Result<ImportedReport, DigestError> {
        let ncu = locate(NvidiaTool::Ncu).map_err(|looked| DigestError::NcuMissing {
            path: path.to_path_buf(),
            csv: path.with_extension("csv"),
            looked,
        })?;
        let failed = |e| DigestError::io(path, e);
        match ImportedReport::spawn(&ncu, IMPORT_ARGS, path).map_err(failed)? {
            Ok(report) => Ok(report),
            Err(f) if f.refuses_print_units() => {
                ImportedReport::spawn(&ncu, LEGACY_IMPORT_ARGS, path)
                    .map_err(failed)?
                    .map_err(|f| failed(f.into_io()))
            }
            Err(f) => Err(failed(f.into_io())),
        }
    }

    /// ncu started on a report and read up to its first line of CSV; how
    /// it failed where it ended without one.
    fn spawn(
        ncu: &Path,
        args: &[&str],
        report: &Path,
    ) -> std::io::Result<Result<ImportedReport, NcuFailure>> {
        let mut child = Command::new(ncu)
            .args(args)
            .arg(report)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        // Drained on its own thread: a child blocked on a full stderr pipe
        // would never finish its stdout.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let mut report = ImportedReport {
            child,
            stdout,
            stderr: Some(stderr),
            ahead: std::io::Cursor::new(Vec::new()),
        };
        if report.read_ahead()? {
            return Ok(Ok(report));
        }
        match report.finish()? {
            Some(failure) => Ok(Err(failure)),
            None => Ok(Ok(report)),
        }
    }

    /// Reads until a line that is not one of ncu's own; false when the
    /// text ended first.
    fn read_ahead(&mut self) -> std::io::Result<bool> {
        let ahead = self.ahead.get_mut();
        let mut chunk = [0u8; 1 << 16];
        while !starts_csv(ahead) {
            let n = self.stdout.read(&mut chunk)?;
            if n == 0 {
                return Ok(false);
            }
            ahead.extend_from_slice(&chunk[..n]);
        }
        Ok(true)
    }

    /// Waits for ncu once its output has ended: how it failed, if it did,
    /// with its own lines read ahead, where it says why.
    fn finish(&mut self) -> std::io::Result<Option<NcuFailure>> {
        let status = self.child.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(None);
        }
        let ahead = String::from_utf8_lossy(self.ahead.get_ref());
        let own = ahead.lines().filter(|l| l.starts_with("=="));
        let said = own.chain(stderr.lines()).collect::<Vec<_>>().join("\n");
        Ok(Some(NcuFailure { status, said }))
    }
}

/// Whether some line of `text` has begun with something other than the
/// `==` of ncu's own lines (`==ERROR==`, `==WARNING==`, `==PROF==`).
fn starts_csv(text: &[u8]) -> bool {
    let line_starts = std::iter::once(0).chain(
        text.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    line_starts
        .map(|at| &text[at..(at + 2).min(text.len())])
        .any(|start| !start.is_empty() && !b"==".starts_with(start))
}

impl Read for ImportedReport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.ahead.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() && self.stderr.is_some() {
            if let Some(failure) = self.finish()? {
                return Err(failure.into_io());
            }
        }
        Ok(n)
    }
}

impl Drop for ImportedReport {
    /// A read ended early (a bad row, a closed output) leaves ncu printing
    /// into a pipe nobody reads; it is stopped rather than left behind.
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
