//! An `.ncu-rep` read through `ncu --import FILE --csv --page raw
//! --print-units base`, whose output is streamed into the CSV reader as it
//! is printed: nothing is written to disk. The raw page is asked for
//! because it carries the device attributes the peak bandwidth comes from,
//! and base units because on import ncu otherwise scales each column to a
//! unit of its own and rounds (`0.067113 Gbyte` for 67,115,264 bytes). In
//! base units bytes and durations are whole numbers; percentages then come
//! with two decimals, as ncu's own pages print them.
//! Folder scans pick up a report only where no CSV sits beside it.

use crate::error::DigestError;
use crate::input::lower_file_name;
use crate::nvidia_tools::{locate, NvidiaTool};
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
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

/// ncu's CSV text for one report. At the end of the text the child's exit
/// status is checked, so that a report ncu cannot load ends the read with
/// ncu's own reason instead of reading as an empty export.
pub struct ImportedReport {
    child: Child,
    stdout: ChildStdout,
    /// ncu's stderr, gathered on a thread; taken once ncu has been waited
    /// for, so `Some` also means that ncu may still be running.
    stderr: Option<JoinHandle<String>>,
}

impl ImportedReport {
    pub fn start(path: &Path) -> Result<ImportedReport, DigestError> {
        let ncu = locate(NvidiaTool::Ncu).map_err(|looked| DigestError::NcuMissing {
            path: path.to_path_buf(),
            csv: path.with_extension("csv"),
            looked,
        })?;
        let mut child = Command::new(ncu)
            .args(IMPORT_ARGS)
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DigestError::io(path, e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err = child.stderr.take().expect("stderr is piped");
        // Drained on its own thread: a child blocked on a full stderr pipe
        // would never finish its stdout.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Ok(ImportedReport {
            child,
            stdout,
            stderr: Some(stderr),
        })
    }

    /// ncu's exit status, once its output has ended.
    fn finish(&mut self) -> std::io::Result<()> {
        let status = self.child.wait()?;
        let said = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let reason = said
            .lines()
            .map(|l| l.trim_start_matches("==ERROR==").trim())
            .rfind(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_string();
        Err(std::io::Error::other(format!(
            "`ncu --import` failed ({status}): {reason}"
        )))
    }
}

impl Read for ImportedReport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() && self.stderr.is_some() {
            self.finish()?;
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
