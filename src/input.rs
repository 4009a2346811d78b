//! Turns a path on the command line into an SQLite file that can be opened
//! read-only: plain `.sqlite` is used in place, `.sqlite.gz` is inflated into
//! a private temp folder, `.nsys-rep` is exported with `nsys` when present,
//! and a pipe (`<(zcat …)`, `/dev/stdin`) is copied there, inflated if gzip.
//! Temp folders are removed when the [`OpenedProfile`] is dropped.

use crate::error::{DigestError, Result};
use crate::nvidia_tools::{locate, NvidiaTool};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where temp files go and how large an inflated profile may grow.
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// Folder for temp files; the system temp folder when `None`.
    pub temp_dir: Option<PathBuf>,
    /// Upper bound on the inflated size of a `.gz` input, in bytes. Guards
    /// against gzip bombs filling the disk.
    pub max_decompressed_bytes: u64,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            temp_dir: None,
            max_decompressed_bytes: 8 << 30,
        }
    }
}

/// An SQLite file ready to open, plus the temp folder that holds it (if any).
#[derive(Debug)]
pub struct OpenedProfile {
    /// The path the user gave; used in every message.
    pub source: PathBuf,
    /// The SQLite file to read.
    pub sqlite: PathBuf,
    _temp: Option<TrackedTempDir>,
}

/// Temp folders alive right now, so an interrupt can remove them.
static LIVE_TEMP_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A temp folder that is removed when dropped, and registered so that
/// [`remove_temp_dirs`] can remove it when the process is interrupted.
#[derive(Debug)]
struct TrackedTempDir(Option<tempfile::TempDir>);

impl TrackedTempDir {
    /// Make the folder with `create` while holding the list's lock, so
    /// that an interrupt between its making and its registering still
    /// finds it: the handler waits for the lock.
    fn create(
        create: impl FnOnce() -> std::io::Result<tempfile::TempDir>,
    ) -> std::io::Result<TrackedTempDir> {
        let mut live = LIVE_TEMP_DIRS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = create()?;
        live.push(dir.path().to_path_buf());
        Ok(TrackedTempDir(Some(dir)))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }
}

impl Drop for TrackedTempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if let Ok(mut live) = LIVE_TEMP_DIRS.lock() {
                live.retain(|p| p != dir.path());
            }
            let _ = dir.close();
        }
    }
}

/// Remove every temp folder still alive; for a Ctrl-C handler.
pub fn remove_temp_dirs() {
    if let Ok(live) = LIVE_TEMP_DIRS.lock() {
        for dir in live.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What the first bytes of a file say it is.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    Sqlite,
    Gzip,
    NsysRep,
    /// A pipe or other non-seekable file (`<(zcat …)`, `/dev/stdin`): its
    /// bytes can be read once only, so sniffing must not consume them.
    Stream,
    Other,
}

fn sniff(path: &Path) -> Result<Sniffed> {
    let meta = std::fs::metadata(path).map_err(|e| DigestError::io(path, e))?;
    if meta.is_dir() {
        return Err(DigestError::UnknownKind {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Ok(Sniffed::Stream);
    }
    if meta.len() == 0 {
        return Err(DigestError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut head = [0u8; 16];
    let mut file = File::open(path).map_err(|e| DigestError::io(path, e))?;
    let n = read_up_to(&mut file, &mut head).map_err(|e| DigestError::io(path, e))?;
    Ok(kind_of(&head[..n], path))
}

/// What a file's first bytes (up to 16) say it is, the name deciding only
/// for an `.nsys-rep`, whose format has no magic number checked here.
fn kind_of(head: &[u8], path: &Path) -> Sniffed {
    if head == SQLITE_MAGIC {
        Sniffed::Sqlite
    } else if head.starts_with(&GZIP_MAGIC) {
        Sniffed::Gzip
    } else if has_extension(path, "nsys-rep") || has_extension(path, "qdrep") {
        Sniffed::NsysRep
    } else {
        Sniffed::Other
    }
}

/// Fill `buf` as far as the reader goes: a pipe may hand over its first
/// bytes in more than one read.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// A file's name in lower case, for matching extensions; empty for a path
/// without a file name or one that is not UTF-8.
pub(crate) fn lower_file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Is this a file name nsys-digest would pick up when scanning a folder?
/// An `.nsys-rep` whose export sits beside it is not: the capture recipe
/// (`nsys export` next to the report) leaves both, and they are one profile.
pub fn is_nsys_candidate(path: &Path) -> bool {
    let name = lower_file_name(path);
    // `.qdrep` is what nsys called its reports before 2021.4.
    if name.ends_with(".nsys-rep") || name.ends_with(".qdrep") {
        return !has_export_beside(path);
    }
    name.ends_with(".sqlite") || name.ends_with(".sqlite.gz")
}

/// Does `run.sqlite` or `run.sqlite.gz` sit beside `run.nsys-rep` (or `run.qdrep`)?
fn has_export_beside(report: &Path) -> bool {
    let Some(stem) = report.file_stem().and_then(|n| n.to_str()) else {
        return false;
    };
    ["sqlite", "sqlite.gz"]
        .iter()
        .any(|ext| report.with_file_name(format!("{stem}.{ext}")).is_file())
}

/// Resolve `path` into an SQLite file, by content rather than by name.
pub fn open_profile(path: &Path, opts: &InputOptions) -> Result<OpenedProfile> {
    match sniff(path)? {
        Sniffed::Sqlite => Ok(OpenedProfile {
            source: path.to_path_buf(),
            sqlite: path.to_path_buf(),
            _temp: None,
        }),
        Sniffed::Gzip => inflate(path, opts),
        Sniffed::Stream => copy_stream(path, opts),
        Sniffed::NsysRep => export_nsys_rep(path, opts),
        Sniffed::Other => Err(DigestError::NotSqlite {
            path: path.to_path_buf(),
            reason: "the file does not start with the SQLite header".into(),
        }),
    }
}

fn temp_dir(path: &Path, opts: &InputOptions) -> Result<TrackedTempDir> {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("nsys-digest-");
        b
    };
    TrackedTempDir::create(|| match &opts.temp_dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    })
    .map_err(|e| {
        // The input was found; it is the temp folder that failed, so say so
        // rather than let "no such file" read as if the input were missing.
        let folder = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let reason = format!("making a temp folder in {} failed: {e}", folder.display());
        DigestError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::new(e.kind(), reason),
        }
    })
}

fn inflate(path: &Path, opts: &InputOptions) -> Result<OpenedProfile> {
    let input = File::open(path).map_err(|e| DigestError::io(path, e))?;
    let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, input));
    copy_to_temp(path, opts, decoder, Unpack::Inflate)
}

/// A stream is copied to a temp file, inflated on the way if it is gzip,
/// because SQLite needs a file it can seek in. Its first bytes, once read,
/// are put back in front of the rest; a stream that is neither gzip nor
/// SQLite is refused before anything is copied (`/dev/zero` never ends).
fn copy_stream(path: &Path, opts: &InputOptions) -> Result<OpenedProfile> {
    let mut input = File::open(path).map_err(|e| DigestError::io(path, e))?;
    let mut head = [0u8; 16];
    let n = read_up_to(&mut input, &mut head).map_err(|e| DigestError::io(path, e))?;
    let head = &head[..n];
    let whole = head.chain(BufReader::with_capacity(1 << 20, input));
    match kind_of(head, path) {
        _ if head.is_empty() => Err(DigestError::Empty {
            path: path.to_path_buf(),
        }),
        Sniffed::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(whole);
            copy_to_temp(path, opts, decoder, Unpack::Inflate)
        }
        Sniffed::Sqlite => copy_to_temp(path, opts, whole, Unpack::AsIs),
        _ => Err(DigestError::NotSqlite {
            path: path.to_path_buf(),
            reason: "the stream does not start with the SQLite header".into(),
        }),
    }
}

/// Whether a copy into the temp folder inflates gzip, which decides how its
/// errors read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unpack {
    Inflate,
    AsIs,
}

/// Copy `input` into a fresh temp folder, no larger than the inflate limit,
/// and check that what arrived is an SQLite file.
fn copy_to_temp(
    path: &Path,
    opts: &InputOptions,
    input: impl Read,
    unpack: Unpack,
) -> Result<OpenedProfile> {
    let dir = temp_dir(path, opts)?;
    let target = dir.path().join("profile.sqlite");
    copy_capped(path, opts, input, unpack, &target)?;
    check_copy_is_sqlite(path, &target, unpack)?;
    Ok(OpenedProfile {
        source: path.to_path_buf(),
        sqlite: target,
        _temp: Some(dir),
    })
}

/// Write `input` to `target`, failing once it passes the inflate limit; a
/// read error while inflating is the gzip stream's fault.
fn copy_capped(
    path: &Path,
    opts: &InputOptions,
    mut input: impl Read,
    unpack: Unpack,
    target: &Path,
) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        File::create(target).map_err(|e| DigestError::io(path, e))?,
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if unpack == Unpack::Inflate => {
                return Err(DigestError::BadGzip {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(DigestError::io(path, e)),
        };
        total += n as u64;
        if total > opts.max_decompressed_bytes {
            return Err(DigestError::TooLarge {
                path: path.to_path_buf(),
                limit: opts.max_decompressed_bytes,
            });
        }
        out.write_all(&buf[..n])
            .map_err(|e| write_error(path, target, e))?;
    }
    out.flush().map_err(|e| write_error(path, target, e))
}

fn check_copy_is_sqlite(path: &Path, target: &Path, unpack: Unpack) -> Result<()> {
    let inner = sniff(target).map_err(|e| match e {
        DigestError::Empty { .. } => DigestError::BadGzip {
            path: path.to_path_buf(),
            reason: "it inflates to nothing".into(),
        },
        other => other,
    })?;
    if inner == Sniffed::Sqlite {
        return Ok(());
    }
    let content = match unpack {
        Unpack::Inflate => "the inflated content",
        Unpack::AsIs => "the content",
    };
    Err(DigestError::NotSqlite {
        path: path.to_path_buf(),
        reason: format!("{content} does not start with the SQLite header"),
    })
}

/// A failed write of the inflated copy: say where, and that the disk is full
/// when it is.
fn write_error(path: &Path, target: &Path, e: std::io::Error) -> DigestError {
    let folder = target.parent().unwrap_or(target).display();
    let reason = if e.kind() == std::io::ErrorKind::StorageFull {
        format!("the disk holding {folder} is full while inflating the profile; free space or pass --temp-dir")
    } else {
        format!("writing the inflated copy into {folder} failed: {e}")
    };
    DigestError::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(e.kind(), reason),
    }
}

fn export_nsys_rep(path: &Path, opts: &InputOptions) -> Result<OpenedProfile> {
    let sqlite_name = path.with_extension("sqlite");
    let nsys = locate(NvidiaTool::Nsys).map_err(|looked| DigestError::NsysMissing {
        path: path.to_path_buf(),
        sqlite: sqlite_name.clone(),
        looked,
    })?;
    let dir = temp_dir(path, opts)?;
    let target = dir.path().join("profile.sqlite");
    let output = Command::new(nsys)
        .args([
            "export",
            "--type",
            "sqlite",
            "--force-overwrite",
            "true",
            "--output",
        ])
        .arg(&target)
        .arg(path)
        .output()
        .map_err(|e| DigestError::NsysExportFailed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !output.status.success() || !target.exists() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().last().unwrap_or("no output").to_string();
        return Err(DigestError::NsysExportFailed {
            path: path.to_path_buf(),
            reason: line,
        });
    }
    Ok(OpenedProfile {
        source: path.to_path_buf(),
        sqlite: target,
        _temp: Some(dir),
    })
}

/// Open an SQLite file so that nothing is ever written beside or into it:
/// `immutable=1` makes SQLite skip locking, journals and WAL files, which
/// also lets it read from read-only folders.
pub fn open_readonly(profile: &OpenedProfile) -> Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let uri = format!("file:{}?mode=ro&immutable=1", uri_escape(&profile.sqlite));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(uri, flags)
        .map_err(|e| DigestError::sqlite(&profile.source, e))?;
    // Sorting spills go to memory, never to a file.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| DigestError::sqlite(&profile.source, e))?;
    Ok(conn)
}

fn uri_escape(path: &Path) -> String {
    let raw = path.to_string_lossy();
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            _ => out.push(ch),
        }
    }
    out
}
