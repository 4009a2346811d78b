//! Loads the rows the reports need into memory, one pass per table, with no
//! per-row queries. Tables are read on separate connections in parallel.
//! Everything after this works on plain vectors.

use super::int_rows::{self, IntCells};
use super::leaf_share::LeafShare;
use super::queries::{self, Query};
pub use super::rows::{ApiCall, ApiCalls, Kernel, Kernels};
use super::rows::{ApiCallBuilder, KernelBuilder, RowBuilder};
use super::schema::Schema;
use super::table_pages::{self, RunReader, TablePlan, Unsupported};
use crate::error::{DigestError, Result};
use crate::input::{open_readonly, OpenedProfile};
use rusqlite::{Connection, OptionalExtension};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// `globalTid`/`globalPid` layout: `<HW:8><VM:8><PID:24><TID:24>`.
pub mod global_id {
    /// The PID bits.
    pub fn pid(global_tid: i64) -> u32 {
        ((global_tid >> 24) & 0xFF_FFFF) as u32
    }
    /// The TID bits.
    pub fn tid(global_tid: i64) -> u32 {
        (global_tid & 0xFF_FFFF) as u32
    }
    /// The process part of a `globalTid`, equal to the `globalPid` of the
    /// GPU work that thread launched.
    pub fn process(global_tid: i64) -> i64 {
        global_tid & (0xFFFF_FFFF_FF00_0000u64 as i64)
    }
}

/// Push/pop or start/end, as `nsys stats` prints the style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum RangeStyle {
    PushPop,
    StartEnd,
}

impl RangeStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            RangeStyle::PushPop => "PushPop",
            RangeStyle::StartEnd => "StartEnd",
        }
    }
}

/// One NVTX range. `name` indexes [`Trace::nvtx_names`] and already carries
/// the `domain:` prefix the way nsys prints it.
#[derive(Debug, Clone)]
pub struct NvtxRange {
    pub start: i64,
    /// `None` for a range that never ended.
    pub end: Option<i64>,
    pub style: RangeStyle,
    pub global_tid: i64,
    /// Set when the range ended on another thread.
    pub end_global_tid: Option<i64>,
    pub name: u32,
    /// The range text without the domain prefix.
    pub text: u32,
    /// The `domainId` whose name `name` carries; `None` when it has none.
    pub domain: Option<i64>,
}

/// One NVTX domain creation. A range is shown under its domain's name
/// only while a creation of that domain in its process is among the events
/// read, which a time filter can change.
#[derive(Debug, Clone)]
pub struct DomainCreation {
    pub domain: i64,
    pub global_tid: i64,
    pub start: i64,
}

/// Kind of a memory operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemOpKind {
    Copy(i64),
    Set,
}

/// One row of `CUPTI_ACTIVITY_KIND_MEMCPY` or `_MEMSET`.
#[derive(Debug, Clone)]
pub struct MemOp {
    pub gpu: GpuActivity,
    pub bytes: i64,
    pub kind: MemOpKind,
}

/// One whole-graph execution from `CUPTI_ACTIVITY_KIND_GRAPH_TRACE`.
#[derive(Debug, Clone)]
pub struct GraphExecution {
    pub gpu: GpuActivity,
    pub graph_id: Option<i64>,
    pub graph_exec_id: Option<i64>,
}

/// One row of `CUDA_GRAPH_NODE_EVENTS`.
#[derive(Debug, Clone)]
pub struct GraphNodeEvent {
    pub start: i64,
    pub global_tid: Option<i64>,
    pub node: i64,
    /// For an instantiated node: the node captured from the stream.
    pub original: Option<i64>,
}

/// A GPU from `TARGET_INFO_GPU`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GpuInfo {
    pub id: i64,
    pub name: String,
    pub memory_bandwidth_bytes_per_s: Option<i64>,
    pub sm_count: Option<i64>,
    pub clock_hz: Option<i64>,
}

/// `StringIds`, indexed by id.
#[derive(Debug, Default)]
pub struct StringTable {
    /// NULL values kept as `None`: a LEFT JOIN on the table tells them
    /// from strings.
    map: HashMap<i64, Option<String>>,
}

impl StringTable {
    pub fn get(&self, id: i64) -> &str {
        self.lookup(id).unwrap_or("")
    }

    /// The string of `id`; `None` when the table lacks the id or holds
    /// NULL for it, as a LEFT JOIN on it gives.
    pub fn lookup(&self, id: i64) -> Option<&str> {
        self.map.get(&id)?.as_deref()
    }
}

/// Which kernel name `nsys stats` options select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameStyle {
    /// `shortName` (`:base`).
    Short,
    /// `demangledName`, the default of `cuda_gpu_kern_sum`.
    #[default]
    Demangled,
    /// `mangledName` (`:mangled`); falls back to demangled when absent.
    Mangled,
}

/// Everything loaded from one export.
#[derive(Debug)]
pub struct Trace {
    pub schema: Schema,
    pub strings: StringTable,
    pub kernels: Kernels,
    /// Mangled name ids in kernel order, when asked for and present.
    pub mangled_names: Option<Vec<Option<i64>>>,
    pub api_calls: ApiCalls,
    pub nvtx: Vec<NvtxRange>,
    pub nvtx_names: Vec<String>,
    pub nvtx_domains: Vec<DomainCreation>,
    pub memops: Vec<MemOp>,
    pub memcpy_kind_labels: HashMap<i64, String>,
    pub gpus: Vec<GpuInfo>,
    /// `ANALYSIS_DETAILS` capture window, when present.
    pub capture_window: Option<(i64, i64)>,
    /// Graph trace mode: one row per graph launch.
    pub graph_executions: Vec<GraphExecution>,
    pub graph_node_events: Vec<GraphNodeEvent>,
    /// `graphId` per kernel (schema 3.24+), when present.
    pub kernel_graph_ids: Option<Vec<Option<i64>>>,
    /// One warning line per table that holds rows but could not be read.
    pub unreadable_tables: Vec<String>,
    /// The window the rows were cut to, when a filter was asked for.
    pub filter: Option<super::time_filter::FilterWindow>,
}

impl Trace {
    /// Load an export. `names` decides whether mangled names are read too.
    pub fn load(profile: &OpenedProfile, names: NameStyle) -> Result<Trace> {
        let path = profile.source.as_path();
        let conn = open_readonly(profile)?;
        let schema = Schema::read(&conn, path)?;
        check_has_cuda(&schema, path)?;
        let plan = LoadPlan {
            kernel_query: kernel_decoder(&schema, path)?,
            profile,
            schema: &schema,
            reader: RowReader::Pages,
            names,
            runtime_share: RuntimeShare::default(),
        };
        // Inside a folder run every core already digests its own profile.
        let (kernels, api_calls, rest) = if rayon::current_thread_index().is_some() {
            plan.on_pool_worker(&conn)
        } else {
            plan.on_two_threads(conn)
        };
        let rest = rest?;
        Ok(Trace {
            schema,
            kernels: kernels?,
            api_calls: api_calls?,
            strings: rest.strings,
            mangled_names: rest.mangled_names,
            nvtx: rest.nvtx,
            nvtx_names: rest.nvtx_names,
            nvtx_domains: rest.nvtx_domains,
            memops: rest.memops,
            memcpy_kind_labels: rest.memcpy_kind_labels,
            gpus: rest.gpus,
            capture_window: rest.capture_window,
            graph_executions: rest.graph_executions,
            graph_node_events: rest.graph_node_events,
            kernel_graph_ids: rest.kernel_graph_ids,
            unreadable_tables: rest.unreadable_tables,
            filter: None,
        })
    }

    /// The kernel's name in the chosen style.
    pub fn kernel_name(&self, index: usize, style: NameStyle) -> &str {
        self.strings.get(self.kernel_name_id(index, style))
    }

    /// The name id for the chosen style, for grouping without string work.
    pub fn kernel_name_id(&self, index: usize, style: NameStyle) -> i64 {
        let k = &self.kernels[index];
        match style {
            NameStyle::Short => k.short_name(),
            NameStyle::Demangled => k.demangled_name(),
            NameStyle::Mangled => self
                .mangled_names
                .as_ref()
                .and_then(|m| m[index])
                .unwrap_or(k.demangled_name()),
        }
    }

    /// API name without the `_vNNNNN` version suffix, as nsys prints it.
    pub fn api_name(&self, call: &ApiCall) -> &str {
        strip_version_suffix(self.strings.get(call.name()))
    }

    /// Label of a memory operation, as `cuda_gpu_mem_time_sum` prints it.
    pub fn memop_label(&self, kind: MemOpKind) -> String {
        match kind {
            MemOpKind::Set => "[CUDA memset]".to_string(),
            MemOpKind::Copy(k) => {
                let label = self
                    .memcpy_kind_labels
                    .get(&k)
                    .map(String::as_str)
                    .unwrap_or_else(|| default_memcpy_label(k));
                format!("[CUDA memcpy {label}]")
            }
        }
    }

    /// First and last timestamp of the capture: `ANALYSIS_DETAILS` when
    /// present, else the extent of the recorded events.
    pub fn span(&self) -> Option<(i64, i64)> {
        if let Some(w) = self.capture_window {
            return Some(w);
        }
        let starts = self
            .kernels
            .iter()
            .map(|k| (k.start, self.kernels.end(k)))
            .chain(self.memops.iter().map(|m| (m.gpu.start, m.gpu.end)))
            .chain(
                self.api_calls
                    .iter()
                    .map(|c| (c.start, self.api_calls.end(c))),
            );
        starts.fold(None, |acc, (s, e)| match acc {
            None => Some((s, e)),
            Some((lo, hi)) => Some((lo.min(s), hi.max(e))),
        })
    }
}

/// `cudaLaunchKernel_v7000` → `cudaLaunchKernel`, like NVIDIA's report SQL.
pub fn strip_version_suffix(name: &str) -> &str {
    let bytes = name.as_bytes();
    if bytes.len() >= 6 && &bytes[bytes.len() - 6..bytes.len() - 4] == b"_v" {
        &name[..name.len() - 6]
    } else {
        name
    }
}

fn default_memcpy_label(kind: i64) -> &'static str {
    match kind {
        1 => "Host-to-Device",
        2 => "Device-to-Host",
        3 => "Host-to-Array",
        4 => "Array-to-Host",
        5 => "Array-to-Array",
        6 => "Array-to-Device",
        7 => "Device-to-Array",
        8 => "Device-to-Device",
        9 => "Host-to-Host",
        10 => "Peer-to-Peer",
        11 => "Unified Host-to-Device",
        12 => "Unified Device-to-Host",
        13 => "Unified Device-to-Device",
        _ => "Unknown",
    }
}

/// The three results of a load: the two big tables and the rest.
type LoadedParts = (Result<Kernels>, Result<ApiCalls>, Result<SmallTables>);

/// What the load's threads share: which tables to read, and how.
struct LoadPlan<'a> {
    profile: &'a OpenedProfile,
    schema: &'a Schema,
    kernel_query: Option<&'static Query>,
    reader: RowReader,
    names: NameStyle,
    runtime_share: RuntimeShare,
}

impl LoadPlan<'_> {
    fn read_kernel_table(&self) -> Result<Kernels> {
        match self.kernel_query {
            Some(q) => super::timed("kernel table", || {
                read_kernels(self.profile, q, self.reader)
            }),
            None => Ok(Kernels::default()),
        }
    }

    fn read_runtime_table(&self) -> Result<ApiCalls> {
        if self.schema.supports(&queries::RUNTIME) {
            super::timed("runtime table", || {
                read_api_calls(self.profile, self.reader, &self.runtime_share)
            })
        } else {
            Ok(ApiCalls::default())
        }
    }

    fn read_small_tables(&self, conn: &Connection) -> Result<SmallTables> {
        super::timed("small tables", || {
            load_small_tables(conn, self.schema, self.profile, self.names)
        })
    }

    /// In a folder run: the two big tables are left on this worker's queue,
    /// where a core that has run out of profiles takes one; otherwise this
    /// worker reads them itself, after the small tables.
    fn on_pool_worker(&self, conn: &Connection) -> LoadedParts {
        let (mut kernels, mut api_calls) = (None, None);
        let rest = rayon::in_place_scope(|scope| {
            scope.spawn(|_| kernels = Some(self.read_kernel_table()));
            scope.spawn(|_| api_calls = Some(self.read_runtime_table()));
            self.read_small_tables(conn)
        });
        let (Some(kernels), Some(api_calls)) = (kernels, api_calls) else {
            unreachable!("rayon's scope returns only after both readers ran");
        };
        (kernels, api_calls, rest)
    }

    /// Two threads, one per big table; whichever finishes first then reads
    /// the small tables. As a third thread they took a share of both cores
    /// at the start, so the longer reader ended last, alone: one core idle
    /// for up to 177 ms of the SYNTHETIC 1 GB load. The kernel reader then
    /// helps with the runtime table's last leaves, which it ended 40–60 ms
    /// before.
    fn on_two_threads(&self, conn: Connection) -> LoadedParts {
        let small = Mutex::new(Some(conn));
        let small_tables_if_first = || {
            // Held only for the take, so never poisoned in practice.
            let conn = small
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()?;
            Some(self.read_small_tables(&conn))
        };
        std::thread::scope(|scope| {
            let api_calls = scope.spawn(|| (self.read_runtime_table(), small_tables_if_first()));
            let kernels = self.read_kernel_table();
            let mine = small_tables_if_first();
            super::timed("runtime help", || help_read_api_calls(&self.runtime_share));
            let (api_calls, theirs) = api_calls.join().expect("runtime reader panicked");
            let Some(rest) = mine.or(theirs) else {
                unreachable!("one of the two threads read the small tables");
            };
            (kernels, api_calls, rest)
        })
    }
}

fn check_has_cuda(schema: &Schema, path: &Path) -> Result<()> {
    let useful = [
        "CUPTI_ACTIVITY_KIND_KERNEL",
        "CUPTI_ACTIVITY_KIND_RUNTIME",
        "NVTX_EVENTS",
    ];
    if useful.iter().any(|t| schema.has_table(t)) {
        Ok(())
    } else {
        Err(DigestError::NoCudaData {
            path: path.to_path_buf(),
            table: "CUPTI_ACTIVITY_KIND_KERNEL",
        })
    }
}

/// Pick the kernel decoder for this schema (or none when there are no kernels).
fn kernel_decoder(schema: &Schema, path: &Path) -> Result<Option<&'static Query>> {
    const TABLE: &str = "CUPTI_ACTIVITY_KIND_KERNEL";
    if !schema.has_table(TABLE) {
        return Ok(None);
    }
    if schema.supports(&queries::KERNELS) {
        return Ok(Some(&queries::KERNELS));
    }
    if schema.supports(&queries::KERNELS_MINIMAL) {
        return Ok(Some(&queries::KERNELS_MINIMAL));
    }
    Err(DigestError::MissingColumns {
        path: path.to_path_buf(),
        table: TABLE,
        columns: schema
            .missing_columns(&queries::KERNELS_MINIMAL, TABLE)
            .join(", "),
    })
}

/// How the kernel and runtime tables are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReader {
    /// Straight from the file's pages, through SQLite wherever the page
    /// reader declines: what every digest uses.
    Pages,
    /// Through SQLite's `digest_rows` aggregate only: the reference the page
    /// reader is tested and benchmarked against.
    Sqlite,
}

impl Trace {
    /// The kernel and runtime tables alone, read one way, for the benchmark
    /// that times the page reader against SQLite on the same file.
    pub fn read_big_tables(
        profile: &OpenedProfile,
        reader: RowReader,
    ) -> Result<(Kernels, ApiCalls)> {
        let path = profile.source.as_path();
        let schema = Schema::read(&open_readonly(profile)?, path)?;
        let plan = LoadPlan {
            kernel_query: kernel_decoder(&schema, path)?,
            profile,
            schema: &schema,
            reader,
            names: NameStyle::default(),
            runtime_share: RuntimeShare::default(),
        };
        Ok((plan.read_kernel_table()?, plan.read_runtime_table()?))
    }
}

fn read_kernels(profile: &OpenedProfile, query: &Query, reader: RowReader) -> Result<Kernels> {
    read_int_rows::<KernelBuilder>(profile, reader, query, &queries::KERNEL_ROWS, |conn, n| {
        pages_alone::<KernelBuilder>(conn, profile, query, n)
    })
}

/// The runtime table, with `share` offering its leaves to a helper.
fn read_api_calls(
    profile: &OpenedProfile,
    reader: RowReader,
    share: &RuntimeShare,
) -> Result<ApiCalls> {
    let rows_query = &queries::RUNTIME_ROWS;
    read_int_rows::<ApiCallBuilder>(profile, reader, &queries::RUNTIME, rows_query, |conn, n| {
        pages_shared(conn, profile, n, share)
    })
}

/// [`read_rows`] for the all-integer queries over one big table, with the
/// vector sized once up front: straight from the file's pages where the
/// table allows it (`by_pages`), else through the `digest_rows`
/// aggregate. Both give the same rows and the same errors.
fn read_int_rows<B: RowBuilder>(
    profile: &OpenedProfile,
    reader: RowReader,
    query: &Query,
    rows_query: &Query,
    by_pages: impl FnOnce(&Connection, usize) -> Option<rusqlite::Result<B::Table>>,
) -> Result<B::Table> {
    let path = profile.source.as_path();
    let conn = open_readonly(profile)?;
    let capacity = row_estimate(&conn, rows_query);
    let table = match reader {
        RowReader::Pages => by_pages(&conn, capacity),
        RowReader::Sqlite => None,
    };
    // The page reader may have stopped part way: SQLite starts afresh.
    let table = table.unwrap_or_else(|| {
        let mut builder = B::default();
        int_rows::read_int_rows(&conn, query.sql, capacity, |cells| builder.row(cells))
            .map(|rows| builder.finish(rows))
    });
    table.map_err(|e| DigestError::sqlite(path, e))
}

/// The table from its pages on this thread alone; `None` when the page
/// reader declines it.
fn pages_alone<B: RowBuilder>(
    conn: &Connection,
    profile: &OpenedProfile,
    query: &Query,
    capacity: usize,
) -> Option<rusqlite::Result<B::Table>> {
    let mut builder = B::default();
    let mut map = |cells: &IntCells<'_>| builder.row(cells);
    let rows =
        table_pages::read_table(conn, &profile.sqlite, query.sql, capacity, &mut map).ok()?;
    Some(rows.map(|rows| builder.finish(rows)))
}

/// The runtime table's leaves, offered to a thread that has finished its
/// own tables; see [`leaf_share`].
type RuntimeShare = LeafShare<TablePlan<'static>, HelperPart>;

/// Calls a helper read from one run of leaves, with their first and last
/// rowids; or why the run must be left to SQLite.
type HelperPart =
    std::result::Result<rusqlite::Result<(ApiCalls, Option<(i64, i64)>)>, Unsupported>;

/// The runtime table from its pages, runs from the front read here and
/// runs from the back by whoever helps; `None` when the page reader
/// declines any of it.
fn pages_shared(
    conn: &Connection,
    profile: &OpenedProfile,
    capacity: usize,
    share: &RuntimeShare,
) -> Option<rusqlite::Result<ApiCalls>> {
    let plan = TablePlan::new(conn, &profile.sqlite, queries::RUNTIME.sql, None).ok()?;
    let plan = Arc::new(plan);
    share.open(Arc::clone(&plan), plan.leaf_count());
    let mut builder = ApiCallBuilder::default();
    let mut rows = Vec::new();
    let _ = rows.try_reserve_exact(capacity);
    let mut reader = RunReader::new(&plan);
    let mut mine = Ok(Ok(()));
    while let Some(leaves) = share.take_front() {
        mine = reader.read(&plan, leaves, &mut rows, &mut |cells, _| builder.row(cells));
        if !matches!(mine, Ok(Ok(()))) {
            break;
        }
    }
    let parts = share.close();
    if let Err(e) = mine.ok()? {
        return Some(Err(e));
    }
    let calls = builder.finish(rows);
    join_parts(calls, reader.rowids(), parts)
}

/// The helper's parts after the owner's rows, in leaf order; `None` when a
/// part was declined or the rowids do not rise across the parts.
fn join_parts(
    calls: ApiCalls,
    rowids: Option<(i64, i64)>,
    parts: Vec<HelperPart>,
) -> Option<rusqlite::Result<ApiCalls>> {
    let mut calls = match calls.joiner() {
        Ok(joiner) => joiner,
        Err(e) => return Some(Err(e)),
    };
    let mut last = rowids.map(|(_, last)| last);
    for part in parts {
        let (part, rowids) = match part.ok()? {
            Ok(part) => part,
            Err(e) => return Some(Err(e)),
        };
        if let Some((first, end)) = rowids {
            if last.is_some_and(|last| first <= last) {
                return None;
            }
            last = Some(end);
        }
        if let Err(e) = calls.push(part) {
            return Some(Err(e));
        }
    }
    Some(Ok(calls.finish()))
}

/// As the helper, read runs of the runtime table's leaves from the back
/// until its reader has the rest; how many runs it read.
fn help_read_api_calls(share: &RuntimeShare) -> usize {
    let mut reader = None;
    let mut runs = 0;
    share.help(|plan, leaves| {
        runs += 1;
        let reader = reader.get_or_insert_with(|| RunReader::new(plan));
        reader.restart();
        let mut builder = ApiCallBuilder::default();
        let mut rows = Vec::new();
        let read = reader.read(plan, leaves, &mut rows, &mut |cells, _| builder.row(cells));
        let go_on = matches!(read, Ok(Ok(())));
        let part = read.map(|r| r.map(|()| (builder.finish(rows), reader.rowids())));
        (part, go_on)
    });
    runs
}

/// How many rows `rows_query` expects (see `queries/*_rows.sql`); 0 when
/// it cannot tell, which only means the vector grows as it fills.
fn row_estimate(conn: &Connection, rows_query: &Query) -> usize {
    conn.query_row(rows_query.sql, [], |r| r.get::<_, Option<i64>>(0))
        .ok()
        .flatten()
        .map_or(0, |n| n.max(0) as usize)
}

/// Run `query` and map every row; any SQLite error names the file.
fn read_rows<T>(
    conn: &Connection,
    path: &Path,
    query: &Query,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let sql_err = |e| DigestError::sqlite(path, e);
    let mut stmt = conn.prepare(query.sql).map_err(sql_err)?;
    let rows = stmt.query_map([], map).map_err(sql_err)?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(sql_err)
}

struct SmallTables {
    strings: StringTable,
    mangled_names: Option<Vec<Option<i64>>>,
    nvtx: Vec<NvtxRange>,
    nvtx_names: Vec<String>,
    nvtx_domains: Vec<DomainCreation>,
    memops: Vec<MemOp>,
    memcpy_kind_labels: HashMap<i64, String>,
    gpus: Vec<GpuInfo>,
    capture_window: Option<(i64, i64)>,
    graph_executions: Vec<GraphExecution>,
    graph_node_events: Vec<GraphNodeEvent>,
    kernel_graph_ids: Option<Vec<Option<i64>>>,
    unreadable_tables: Vec<String>,
}

/// The tables read when present, whose absence is an empty report: one
/// that holds rows but lacks a column the digest reads is not the same
/// thing, and says so. (A kernel table that cannot be read is an error.)
pub const READ_WHEN_PRESENT: [&Query; 5] = [
    &queries::STRINGS,
    &queries::RUNTIME,
    &queries::NVTX,
    &queries::MEMCPY,
    &queries::MEMSET,
];

/// A warning line per table of [`READ_WHEN_PRESENT`] that lacks a column
/// and holds rows: an empty one loses nothing, and some exports carry
/// empty tables in an older layout.
fn unreadable_tables(conn: &Connection, schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for query in READ_WHEN_PRESENT {
        for &(table, _) in query.needs {
            let missing = schema.missing_columns(query, table);
            if !schema.has_table(table) || missing.is_empty() || !has_rows(conn, table) {
                continue;
            }
            let line = format!(
                "{table} lacks column(s) {}; it was not read, so the reports built on it are empty",
                missing.join(", ")
            );
            // StringIds is needed by more than one query.
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// Whether `table` holds a row; a table that cannot be scanned is taken to
/// hold some, so that it is still named.
fn has_rows(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        &format!("SELECT 1 FROM \"{table}\" LIMIT 1"),
        [],
        |_| Ok(()),
    )
    .optional()
    .map_or(true, |row| row.is_some())
}

fn load_small_tables(
    conn: &Connection,
    schema: &Schema,
    profile: &OpenedProfile,
    names: NameStyle,
) -> Result<SmallTables> {
    let path = profile.source.as_path();
    let strings = read_strings(conn, schema, path)?;
    let mangled_names = if names == NameStyle::Mangled {
        read_if_supported(conn, schema, path, &queries::KERNEL_MANGLED_NAMES, |r| {
            r.get(0)
        })?
    } else {
        None
    };
    let NvtxRead {
        ranges: nvtx,
        names: nvtx_names,
        domains: nvtx_domains,
    } = if schema.supports(&queries::NVTX) {
        read_nvtx(conn, profile, &strings, RowReader::Pages)?
    } else {
        NvtxRead::default()
    };
    Ok(SmallTables {
        unreadable_tables: unreadable_tables(conn, schema),
        mangled_names,
        nvtx,
        nvtx_names,
        nvtx_domains,
        memops: read_memops(conn, schema, path)?,
        memcpy_kind_labels: read_memcpy_kind_labels(conn, schema, path)?,
        gpus: read_gpus(conn, schema, path)?,
        capture_window: read_capture_window(conn, schema, path)?,
        graph_executions: read_graph_executions(conn, schema, path)?,
        graph_node_events: read_graph_node_events(conn, schema, path)?,
        kernel_graph_ids: read_if_supported(conn, schema, path, &queries::KERNEL_GRAPH_IDS, |r| {
            r.get(0)
        })?,
        strings,
    })
}

/// A query's rows where the export has its tables and columns; `None`
/// where it lacks them, which older and smaller exports do.
fn read_if_supported<T>(
    conn: &Connection,
    schema: &Schema,
    path: &Path,
    query: &Query,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<Vec<T>>> {
    if schema.supports(query) {
        read_rows(conn, path, query, map).map(Some)
    } else {
        Ok(None)
    }
}

fn read_memcpy_kind_labels(
    conn: &Connection,
    schema: &Schema,
    path: &Path,
) -> Result<HashMap<i64, String>> {
    let rows = read_if_supported(conn, schema, path, &queries::MEMCPY_KINDS, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    Ok(rows
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, label)| label.map(|l| (id, l)))
        .collect())
}

fn read_gpus(conn: &Connection, schema: &Schema, path: &Path) -> Result<Vec<GpuInfo>> {
    let gpus = read_if_supported(conn, schema, path, &queries::GPUS, |r| {
        Ok(GpuInfo {
            id: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            memory_bandwidth_bytes_per_s: r.get(2)?,
            sm_count: r.get(3)?,
            clock_hz: r.get(4)?,
        })
    })?;
    Ok(gpus.unwrap_or_default())
}

/// The capture's start and stop, where the export gives a sane pair.
fn read_capture_window(
    conn: &Connection,
    schema: &Schema,
    path: &Path,
) -> Result<Option<(i64, i64)>> {
    let rows = read_if_supported(conn, schema, path, &queries::ANALYSIS_SPAN, |r| {
        Ok(
            match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
                (Some(a), Some(b)) if b >= a => Some((a, b)),
                _ => None,
            },
        )
    })?;
    Ok(rows.unwrap_or_default().into_iter().next().flatten())
}

fn read_graph_executions(
    conn: &Connection,
    schema: &Schema,
    path: &Path,
) -> Result<Vec<GraphExecution>> {
    let rows = read_if_supported(conn, schema, path, &queries::GRAPH_TRACE, |r| {
        Ok(GraphExecution {
            gpu: GpuActivity::read(r)?,
            graph_id: r.get(6)?,
            graph_exec_id: r.get(7)?,
        })
    })?;
    Ok(rows.unwrap_or_default())
}

fn read_graph_node_events(
    conn: &Connection,
    schema: &Schema,
    path: &Path,
) -> Result<Vec<GraphNodeEvent>> {
    let rows = read_if_supported(conn, schema, path, &queries::GRAPH_NODE_EVENTS, |r| {
        Ok(GraphNodeEvent {
            start: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            global_tid: r.get(1)?,
            node: r.get::<_, Option<i64>>(2)?.unwrap_or(-1),
            original: r.get(3)?,
        })
    })?;
    Ok(rows.unwrap_or_default())
}

const NVTX_DOMAIN_CREATE: i64 = 75;

#[derive(Debug, PartialEq)]
struct RawNvtx {
    start: i64,
    end: Option<i64>,
    event_type: i64,
    global_tid: i64,
    end_global_tid: Option<i64>,
    /// The range's text, an id in the reader's own text interner.
    text: u32,
    domain: Option<i64>,
}

fn read_strings(conn: &Connection, schema: &Schema, path: &Path) -> Result<StringTable> {
    if !schema.supports(&queries::STRINGS) {
        return Ok(StringTable::default());
    }
    let map = read_rows(conn, path, &queries::STRINGS, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    Ok(StringTable {
        map: map.into_iter().collect(),
    })
}

/// The rows of `nvtx.sql`, in rowid order, with their texts interned:
/// from the file's pages where the page reader takes the table, else
/// through SQLite. At 1 GB SQLite's row loop took 0.4 s for 416k rows.
fn read_raw_nvtx(
    conn: &Connection,
    profile: &OpenedProfile,
    strings: &StringTable,
    reader: RowReader,
) -> Result<(Vec<RawNvtx>, Interner)> {
    if reader == RowReader::Pages {
        if let Some(read) = read_raw_nvtx_pages(conn, profile, strings) {
            return Ok(read);
        }
    }
    let mut texts = Interner::default();
    let raw = read_rows(conn, &profile.source, &queries::NVTX, |r| {
        Ok(RawNvtx {
            start: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            end: r.get(1)?,
            event_type: r.get(2)?,
            global_tid: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            end_global_tid: r.get(4)?,
            text: texts.intern(r.get_ref(5)?.as_str_or_null()?.unwrap_or_default()),
            domain: r.get(6)?,
        })
    })?;
    Ok((raw, texts))
}

/// `read_raw_nvtx` from the file's pages; `None` leaves the table to
/// SQLite, also where the mapping refuses a row, so that the digest gives
/// SQLite's error, as it did before this reader.
fn read_raw_nvtx_pages(
    conn: &Connection,
    profile: &OpenedProfile,
    strings: &StringTable,
) -> Option<(Vec<RawNvtx>, Interner)> {
    let mut texts = Interner::default();
    let mut row = |r: &IntCells<'_>, text: Option<&str>| -> rusqlite::Result<Option<RawNvtx>> {
        let event_type = r.int(2)?;
        if !NVTX_READ_TYPES.contains(&event_type) {
            return Ok(None);
        }
        // coalesce(StringIds.value, text), as in nvtx.sql.
        let name = r.opt_int(5)?.and_then(|id| strings.lookup(id)).or(text);
        Ok(Some(RawNvtx {
            start: r.opt_int(0)?.unwrap_or(0),
            end: r.opt_int(1)?,
            event_type,
            global_tid: r.opt_int(3)?.unwrap_or(0),
            end_global_tid: r.opt_int(4)?,
            text: texts.intern(name.unwrap_or_default()),
            domain: r.opt_int(6)?,
        }))
    };
    let read = table_pages::read_table_with_text(
        conn,
        &profile.sqlite,
        queries::NVTX_PAGES.sql,
        "text",
        0,
        &mut row,
    );
    let rows = read.ok()?.ok()?;
    Some((rows.into_iter().flatten().collect(), texts))
}

/// The event types `nvtx.sql` selects: push/pop and start/end ranges, their
/// NVTXT variants, and domain creations.
const NVTX_READ_TYPES: [i64; 5] = [59, 60, 70, 71, NVTX_DOMAIN_CREATE];

/// Ranges repeat a few names many times (32k ranges, 60 names in the 76 MB
/// export), so each row's text is interned as it is read, from the page or
/// SQLite's buffer, and the `domain:text` name is built once per pair.
fn read_nvtx(
    conn: &Connection,
    profile: &OpenedProfile,
    strings: &StringTable,
    reader: RowReader,
) -> Result<NvtxRead> {
    let (raw, texts) = read_raw_nvtx(conn, profile, strings, reader)?;
    let domains = domain_names(&raw);
    let creations = raw
        .iter()
        .filter(|e| e.event_type == NVTX_DOMAIN_CREATE)
        .filter_map(|e| {
            Some(DomainCreation {
                domain: e.domain?,
                global_tid: e.global_tid,
                start: e.start,
            })
        })
        .collect();
    let mut names = RangeNames::default();
    let ranges = raw
        .into_iter()
        .filter(|e| e.event_type != NVTX_DOMAIN_CREATE)
        .map(|ev| {
            let named = ev.domain.and_then(|d| {
                let &(_, name) = domains.get(&(d, process_bits(ev.global_tid)))?;
                Some((d, name))
            });
            let (name, text) = names.of(named.map(|(_, n)| n), ev.text, &texts);
            NvtxRange {
                start: ev.start,
                end: ev.end,
                style: match ev.event_type {
                    60 | 71 => RangeStyle::StartEnd,
                    _ => RangeStyle::PushPop,
                },
                global_tid: ev.global_tid,
                end_global_tid: ev.end_global_tid,
                name,
                text,
                domain: named.map(|(d, _)| d),
            }
        })
        .collect();
    Ok(NvtxRead {
        ranges,
        names: names.interner.names,
        domains: creations,
    })
}

/// What [`read_nvtx`] gives: the ranges, their names, and the domain
/// creations.
#[derive(Default)]
struct NvtxRead {
    ranges: Vec<NvtxRange>,
    names: Vec<String>,
    domains: Vec<DomainCreation>,
}

/// Domain names: the earliest creation per (domain, process), matched to
/// ranges by domain id and process, as NVIDIA's report SQL does. Values
/// are (creation time, name's text id).
fn domain_names(raw: &[RawNvtx]) -> FxHashMap<(i64, i64), (i64, u32)> {
    let mut domains: FxHashMap<(i64, i64), (i64, u32)> = FxHashMap::default();
    for ev in raw.iter().filter(|e| e.event_type == NVTX_DOMAIN_CREATE) {
        let Some(domain) = ev.domain else { continue };
        let key = (domain, process_bits(ev.global_tid));
        match domains.get(&key) {
            Some((start, _)) if *start <= ev.start => {}
            _ => {
                domains.insert(key, (ev.start, ev.text));
            }
        }
    }
    domains
}

/// The ranges' `domain:text` names and texts, interned in range order,
/// name first, as before this cache: their ids order the ranges where
/// reports tie.
#[derive(Default)]
struct RangeNames {
    interner: Interner,
    /// (domain's text id, text id) → (name id, text id).
    named: FxHashMap<(Option<u32>, u32), (u32, u32)>,
}

impl RangeNames {
    /// The name and text ids of a range; `domain` and `text` are ids in
    /// the reader's `texts`.
    fn of(&mut self, domain: Option<u32>, text: u32, texts: &Interner) -> (u32, u32) {
        let interner = &mut self.interner;
        *self.named.entry((domain, text)).or_insert_with(|| {
            let domain = domain.map_or("", |d| texts.get(d));
            let text = texts.get(text);
            (
                interner.intern(&format!("{domain}:{text}")),
                interner.intern(text),
            )
        })
    }
}

/// PID bits without the thread, as NVIDIA's domain join masks them.
pub(crate) fn process_bits(global_tid: i64) -> i64 {
    global_tid & 0x0000_FFFF_FF00_0000
}

#[derive(Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn get(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

fn read_memops(conn: &Connection, schema: &Schema, path: &Path) -> Result<Vec<MemOp>> {
    let copies = read_if_supported(conn, schema, path, &queries::MEMCPY, |r| {
        mem_op(r, MemOpKind::Copy(r.get::<_, Option<i64>>(7)?.unwrap_or(0)))
    })?;
    let sets = read_if_supported(conn, schema, path, &queries::MEMSET, |r| {
        mem_op(r, MemOpKind::Set)
    })?;
    Ok(copies.into_iter().chain(sets).flatten().collect())
}

/// The columns `memcpy.sql` and `memset.sql` share, in the same order.
fn mem_op(r: &rusqlite::Row<'_>, kind: MemOpKind) -> rusqlite::Result<MemOp> {
    Ok(MemOp {
        gpu: GpuActivity::read(r)?,
        bytes: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
        kind,
    })
}

/// What a memcpy, memset or whole-graph execution row says about its GPU
/// work: the first six columns of `memcpy.sql`, `memset.sql` and
/// `graph_trace.sql`, with the same defaults for NULL everywhere.
#[derive(Debug, Clone)]
pub struct GpuActivity {
    pub start: i64,
    pub end: i64,
    pub device: i64,
    pub stream: i64,
    pub correlation: i64,
    pub global_pid: Option<i64>,
}

impl GpuActivity {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<GpuActivity> {
        Ok(GpuActivity {
            start: r.get(0)?,
            end: r.get(1)?,
            device: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            stream: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            correlation: r.get::<_, Option<i64>>(4)?.unwrap_or(-1),
            global_pid: r.get(5)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{open_profile, InputOptions};
    use crate::nsys::real_exports;

    /// A real export, opened, with a read-only connection to it.
    fn opened(file: &Path) -> (OpenedProfile, Connection) {
        let profile = open_profile(file, &InputOptions::default()).unwrap();
        let conn = open_readonly(&profile).unwrap();
        (profile, conn)
    }

    /// NVTX rows from the pages equal `nvtx.sql`'s through SQLite, texts
    /// included, and the page reader takes every real export's NVTX table.
    #[test]
    fn nvtx_pages_and_sqlite_read_the_same_ranges_from_every_real_export() {
        let mut checked = 0;
        for file in real_exports() {
            let (profile, conn) = opened(&file);
            let schema = Schema::read(&conn, &file).unwrap();
            if !schema.supports(&queries::NVTX) {
                continue;
            }
            let what = file.display().to_string();
            let strings = read_strings(&conn, &schema, &file).unwrap();
            let taken = table_pages::read_table_with_text(
                &conn,
                &profile.sqlite,
                queries::NVTX_PAGES.sql,
                "text",
                0,
                &mut |_, _| Ok(()),
            );
            assert!(matches!(taken, Ok(Ok(_))), "{what}: {taken:?}");
            let (pages, page_texts) =
                read_raw_nvtx(&conn, &profile, &strings, RowReader::Pages).unwrap();
            let (sqlite, sqlite_texts) =
                read_raw_nvtx(&conn, &profile, &strings, RowReader::Sqlite).unwrap();
            assert_eq!(pages, sqlite, "{what}");
            assert_eq!(page_texts.names, sqlite_texts.names, "{what}");
            checked += usize::from(!pages.is_empty());
        }
        assert!(checked >= 5, "only {checked} exports with NVTX ranges");
    }

    /// On every real export with a runtime table of several runs: the
    /// helper reads every run of three leaves, from the back, into parts,
    /// and the parts joined equal the table read by one thread; joined in
    /// the wrong order, they are declined, as falling rowids are.
    #[test]
    fn runtime_parts_read_by_the_helper_join_into_the_whole_table() {
        let mut joined = 0;
        for file in real_exports() {
            let (profile, conn) = opened(&file);
            let Ok(plan) = TablePlan::new(&conn, &profile.sqlite, queries::RUNTIME.sql, None)
            else {
                continue;
            };
            let plan = Arc::new(plan);
            let parts = || {
                let share = RuntimeShare::with_run_leaves(3);
                share.open(Arc::clone(&plan), plan.leaf_count());
                help_read_api_calls(&share);
                share.close()
            };
            let whole = pages_alone::<ApiCallBuilder>(&conn, &profile, &queries::RUNTIME, 0);
            assert_eq!(
                join_parts(ApiCalls::default(), None, parts()),
                whole,
                "{}",
                file.display()
            );
            let mut backwards = parts();
            if backwards.len() > 2 {
                joined += 1;
                backwards.reverse();
                let joined_backwards = join_parts(ApiCalls::default(), None, backwards);
                assert!(
                    joined_backwards.is_none(),
                    "{}: rowids fell, yet joined",
                    file.display()
                );
            }
        }
        assert!(
            joined >= 5,
            "only {joined} exports read in three parts or more"
        );
    }

    /// On every real export: the runtime reader and a helper on another
    /// thread, in runs of three leaves, read the table as one thread does.
    #[test]
    fn runtime_table_read_with_a_helper_equals_the_one_thread_read() {
        let mut helped = 0;
        for file in real_exports() {
            let (profile, conn) = opened(&file);
            let share = RuntimeShare::with_run_leaves(3);
            let done = std::sync::atomic::AtomicBool::new(false);
            let shared = std::thread::scope(|scope| {
                let helper = scope.spawn(|| {
                    let mut runs = 0;
                    // Until the owner offers the table, help finds nothing.
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        runs += help_read_api_calls(&share);
                        std::thread::yield_now();
                    }
                    runs
                });
                let shared = pages_shared(&conn, &profile, 0, &share);
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                helped += usize::from(helper.join().unwrap() > 0);
                shared
            });
            let alone = pages_alone::<ApiCallBuilder>(&conn, &profile, &queries::RUNTIME, 0);
            assert_eq!(shared, alone, "{}", file.display());
        }
        assert!(helped >= 1, "the helper read no run of any export");
    }

    /// Hand-made from a committed node-trace export: one kernel near the
    /// end of the table gets a long blob in a column the digest does not
    /// read, so its record spills onto an overflow page. The page reader
    /// gives up there, after most rows, and SQLite reads the table again
    /// from the start: the rows and their side columns (graph nodes,
    /// processes) must equal the untouched export's.
    #[test]
    fn a_table_the_page_reader_gives_up_on_late_reads_as_the_untouched_one() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples/h200_llama8_graphs_node_1step.sqlite.gz");
        let profile = open_profile(&sample, &InputOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("spilled.sqlite");
        std::fs::copy(&profile.sqlite, &copy).unwrap();
        Connection::open(&copy)
            .unwrap()
            .execute_batch(
                "UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET cacheConfig = zeroblob(20000)
                 WHERE rowid = (SELECT max(rowid) - 10 FROM CUPTI_ACTIVITY_KIND_KERNEL)",
            )
            .unwrap();
        let spilled = open_profile(&copy, &InputOptions::default()).unwrap();
        let conn = open_readonly(&spilled).unwrap();
        let mut before = 0;
        let mut count = |_: &IntCells<'_>| {
            before += 1;
            Ok(())
        };
        let taken = table_pages::read_table(&conn, &copy, queries::KERNELS.sql, 0, &mut count);
        assert!(
            taken.is_err() && before > 10_000,
            "{taken:?} after {before} rows"
        );

        let untouched = read_kernels(&profile, &queries::KERNELS, RowReader::Pages).unwrap();
        let reread = read_kernels(&spilled, &queries::KERNELS, RowReader::Pages).unwrap();
        assert!((0..untouched.len()).any(|i| untouched.graph_node(i).is_some()));
        assert_eq!(untouched, reread);
    }

    /// One table read by the page reader and by SQLite, each with a fresh
    /// builder.
    fn both_readers<B: RowBuilder>(
        conn: &Connection,
        profile: &OpenedProfile,
        sql: &str,
        what: &str,
    ) -> (B::Table, B::Table) {
        let mut builder = B::default();
        let mut map = |cells: &IntCells<'_>| builder.row(cells);
        let pages = table_pages::read_table(conn, &profile.sqlite, sql, 0, &mut map);
        let pages = builder.finish(pages.expect(what).unwrap());
        let mut builder = B::default();
        let sqlite = int_rows::read_int_rows(conn, sql, 0, |cells| builder.row(cells)).unwrap();
        (pages, builder.finish(sqlite))
    }

    /// The page reader must give exactly the rows SQLite gives, and must
    /// take every real export (a silent fall back to SQLite would keep the
    /// digest right but lose the speed).
    #[test]
    fn pages_and_sqlite_read_the_same_rows_from_every_real_export() {
        let files = real_exports();
        assert!(files.len() >= 5, "the committed samples are missing");
        for file in files {
            let (profile, conn) = opened(&file);
            let schema = Schema::read(&conn, &file).unwrap();
            let mut queries = vec![(queries::RUNTIME.sql, true)];
            if let Some(q) = kernel_decoder(&schema, &file).unwrap() {
                queries.push((q.sql, false));
            }
            for (sql, runtime) in queries {
                let table = if runtime { "runtime" } else { "kernel" };
                let what = format!("{}, {table} table", file.display());
                if runtime && !schema.supports(&queries::RUNTIME) {
                    continue;
                }
                if runtime {
                    let (pages, sqlite) =
                        both_readers::<ApiCallBuilder>(&conn, &profile, sql, &what);
                    assert_eq!(pages, sqlite, "{what}");
                } else {
                    let (pages, sqlite) =
                        both_readers::<KernelBuilder>(&conn, &profile, sql, &what);
                    assert!(!sqlite.is_empty(), "{what}");
                    assert_eq!(pages, sqlite, "{what}");
                }
            }
        }
    }
}
