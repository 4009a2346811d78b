//! What this export contains. nsys creates tables lazily and has renamed and
//! added tables and columns across versions (schema 2.9 to 3.28), so every
//! reader asks the [`Schema`] first and picks the query variant that fits.

use super::queries::{self, Query};
use crate::error::{DigestError, Result};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Tables with their columns, plus the export and capture metadata.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    tables: HashMap<String, HashSet<String>>,
    /// `EXPORT_META_DATA` / `META_DATA_EXPORT` rows; empty in very old exports.
    pub export_meta: Vec<(String, String)>,
    /// `META_DATA_CAPTURE` rows.
    pub capture_meta: Vec<(String, String)>,
}

/// Tables that only an Nsight Systems export has.
const NSYS_MARKER_TABLES: &[&str] = &[
    "StringIds",
    "CUPTI_ACTIVITY_KIND_KERNEL",
    "CUPTI_ACTIVITY_KIND_RUNTIME",
    "NVTX_EVENTS",
    "META_DATA_EXPORT",
    "EXPORT_META_DATA",
    "TARGET_INFO_GPU",
    "OSRT_API",
];

impl Schema {
    /// Read the table list, every table's columns and the metadata tables.
    pub fn read(conn: &Connection, path: &Path) -> Result<Schema> {
        let sql_err = |e| classify_open_error(path, e);
        let mut names = Vec::new();
        {
            let mut stmt = conn.prepare(queries::TABLES.sql).map_err(sql_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql_err)?;
            for row in rows {
                names.push(row.map_err(sql_err)?);
            }
        }
        let mut schema = Schema::default();
        let mut stmt = conn.prepare(queries::COLUMNS.sql).map_err(sql_err)?;
        for table in names {
            let cols = stmt
                .query_map([&table], |r| r.get::<_, String>(0))
                .map_err(sql_err)?
                .collect::<std::result::Result<HashSet<_>, _>>()
                .map_err(sql_err)?;
            schema.tables.insert(table, cols);
        }
        if !NSYS_MARKER_TABLES.iter().any(|t| schema.has_table(t)) {
            return Err(DigestError::NotNsysExport {
                path: path.to_path_buf(),
                reason: "none of the Nsight Systems tables (StringIds, CUPTI_ACTIVITY_KIND_*, NVTX_EVENTS, META_DATA_EXPORT) is present".into(),
            });
        }
        for q in [queries::META_EXPORT, queries::META_EXPORT_LEGACY] {
            if schema.supports(&q) {
                schema.export_meta = read_pairs(conn, path, &q)?;
                break;
            }
        }
        if schema.supports(&queries::META_CAPTURE) {
            schema.capture_meta = read_pairs(conn, path, &queries::META_CAPTURE)?;
        }
        Ok(schema)
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    pub fn has_column(&self, table: &str, column: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|cols| cols.contains(column))
    }

    /// Does this export have every table and column `query` reads?
    pub fn supports(&self, query: &Query) -> bool {
        query
            .needs
            .iter()
            .all(|(t, cols)| self.has_table(t) && cols.iter().all(|c| self.has_column(t, c)))
    }

    /// The columns of `table` that `query` needs but this export lacks.
    pub fn missing_columns(&self, query: &Query, table: &str) -> Vec<&'static str> {
        query
            .needs
            .iter()
            .filter(|(t, _)| *t == table)
            .flat_map(|(_, cols)| cols.iter().copied())
            .filter(|c| !self.has_column(table, c))
            .collect()
    }

    pub fn export_value(&self, key: &str) -> Option<&str> {
        lookup(&self.export_meta, key)
    }

    pub fn capture_value(&self, key: &str) -> Option<&str> {
        lookup(&self.capture_meta, key)
    }

    /// nsys version that wrote the export (`EXPORT_PRODUCT_VERSION`).
    pub fn nsys_version(&self) -> Option<&str> {
        self.export_value("EXPORT_PRODUCT_VERSION")
    }

    /// `EXPORT_SCHEMA_VERSION`, e.g. `3.20.3`.
    pub fn schema_version(&self) -> Option<&str> {
        self.export_value("EXPORT_SCHEMA_VERSION")
    }

    /// The CUDA graph trace mode the capture asked for (`Graph` or `Node`).
    /// The key lost its `PROCESS_0:` prefix in nsys 2026.1.
    pub fn graph_trace_mode(&self) -> Option<&str> {
        self.capture_value("CUDA_GRAPH_TRACE_OPTIONS:MODE")
            .or_else(|| {
                self.capture_meta
                    .iter()
                    .find(|(k, _)| k.ends_with(":CUDA_GRAPH_TRACE_OPTIONS:MODE"))
                    .map(|(_, v)| v.as_str())
            })
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn read_pairs(conn: &Connection, path: &Path, query: &Query) -> Result<Vec<(String, String)>> {
    let sql_err = |e| DigestError::sqlite(path, e);
    let mut stmt = conn.prepare(query.sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                value_as_text(r.get_ref(1)?),
            ))
        })
        .map_err(sql_err)?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(sql_err)
}

fn value_as_text(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// SQLite's first complaint about a damaged file comes from the first query;
/// name it for what it is.
fn classify_open_error(path: &Path, e: rusqlite::Error) -> DigestError {
    let text = e.to_string();
    if text.contains("not a database") {
        DigestError::NotSqlite {
            path: path.to_path_buf(),
            reason: text,
        }
    } else if text.contains("malformed") || text.contains("disk I/O") {
        DigestError::NotSqlite {
            path: path.to_path_buf(),
            reason: format!("the database is truncated or corrupt ({text})"),
        }
    } else {
        DigestError::sqlite(path, e)
    }
}
