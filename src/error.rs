//! Errors the library reports. Each names the file it concerns, so a
//! one-line message is enough for the user to act on it.

use std::path::PathBuf;

/// Everything that can go wrong while reading a profile.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },

    // The cause is in the message and not chained as a source: chained, a
    // one-line `{:#}` printed it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },

    #[error("{path}: not a valid gzip stream ({reason})")]
    BadGzip { path: PathBuf, reason: String },

    #[error("{path}: decompressed size exceeds the limit of {limit} bytes (raise it with --max-decompressed-mb)")]
    TooLarge { path: PathBuf, limit: u64 },

    #[error("{path}: not an SQLite database ({reason})")]
    NotSqlite { path: PathBuf, reason: String },

    #[error("{path}: not an Nsight Systems export: {reason}")]
    NotNsysExport { path: PathBuf, reason: String },

    #[error("{path}: the export has no CUDA data (no {table} table); profile with `nsys profile -t cuda,nvtx ...`")]
    NoCudaData { path: PathBuf, table: &'static str },

    #[error(
        "{path}: table {table} lacks column(s) {columns}; this export layout is not supported"
    )]
    MissingColumns {
        path: PathBuf,
        table: &'static str,
        columns: String,
    },

    #[error("{path}: SQLite error: {error}")]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },

    #[error("{path}: .nsys-rep needs `nsys` to export it ({looked}); or run `nsys export --type sqlite --output {sqlite} {path}` and pass the .sqlite file")]
    NsysMissing {
        path: PathBuf,
        sqlite: PathBuf,
        looked: String,
    },

    #[error("{path}: an .ncu-rep needs `ncu` to read it ({looked}); or run `ncu --import {path} --csv --page raw --print-units base > {csv}` and pass the CSV")]
    NcuMissing {
        path: PathBuf,
        csv: PathBuf,
        looked: String,
    },

    #[error("{path}: `nsys export` failed: {reason}")]
    NsysExportFailed { path: PathBuf, reason: String },

    #[error("{path}: unrecognised file type; expected .sqlite, .sqlite.gz or .nsys-rep")]
    UnknownKind { path: PathBuf },

    #[error("{path}: not a usable Nsight Compute CSV: {reason}")]
    BadCsv { path: PathBuf, reason: String },

    #[error("{path}: {reason}")]
    Filter { path: PathBuf, reason: String },

    #[error("{path}: the report `{report}` has no data in this profile")]
    NoReportData { path: PathBuf, report: String },
}

impl DigestError {
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        DigestError::Sqlite {
            path: path.to_path_buf(),
            error: source,
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DigestError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DigestError::Io {
                path: path.to_path_buf(),
                error: source,
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, DigestError>;
