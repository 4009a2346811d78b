//! Reads an ncu CSV export (details or raw page, plain or gzipped, or the
//! text ncu prints for an `.ncu-rep`) into launches, by header names and
//! never by position. Skips whatever comes before the header (`==PROF==`
//! lines, the application's output), accepts ragged rows and the raw
//! page's units row, and refuses summary pages with a hint on what to
//! export instead. Streams: only the metrics [`metric_names::resolve`]
//! knows are kept per launch.

use super::metric_names::{self, GPU_NAME};
use super::report_import;
use super::units::{parse_number, to_base, DecimalStyle};
use crate::error::DigestError;
use crate::input::read_up_to;
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which ncu page the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Page {
    /// `--page details`: one row per metric per launch.
    Details,
    /// `--page raw`: one row per launch, one column per metric, units row.
    Raw,
}

/// One profiled kernel launch.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub id: u64,
    pub kernel: String,
    /// Push/pop ranges, outermost first (`domain:name` outside the default domain).
    pub nvtx: Vec<String>,
    /// Start/end ranges open at launch.
    pub nvtx_start_end: Vec<String>,
    pub block: Option<String>,
    pub grid: Option<String>,
    pub device: Option<String>,
    pub gpu_name: Option<String>,
    /// Metric → value in base units.
    pub values: FxHashMap<&'static str, f64>,
}

/// What was read from one file.
#[derive(Debug, Clone)]
pub struct NcuFile {
    pub page: Page,
    /// Empty when streamed.
    pub launches: Vec<Launch>,
    pub launch_count: u64,
    /// Whether any value came in an auto-scaled unit (rounded to 2 decimals).
    pub auto_scaled: bool,
    /// Rows that did not fit the header and were skipped.
    pub skipped_rows: u64,
}

/// Options for reading.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub decimal: DecimalStyle,
    /// Upper bound on the inflated size of a `.gz` input.
    pub max_decompressed_bytes: u64,
    /// Text is split into records on a second thread once this many bytes
    /// of it have been read, and from the start in a file this size as
    /// stored. Below it, the thread and its hand-offs cost more than they
    /// save: a 3 MB details page took 25 ms of CPU split apart against
    /// 17 ms in one thread. Counting the text read, not the file's size,
    /// also splits a pipe, an `.ncu-rep` import or a small `.gz` that turn
    /// out to be long.
    pub split_apart_from_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            decimal: DecimalStyle::Auto,
            max_decompressed_bytes: 8 << 30,
            split_apart_from_bytes: 16 << 20,
        }
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> DigestError {
    DigestError::BadCsv {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Passes the text through, remembering its last byte. Every ncu export
/// ends its last row with a line break; text that ends without one was cut
/// short, most often inside a cell, whose value would then read wrong.
struct LastByte<'a, R> {
    inner: R,
    last: &'a AtomicU8,
}

impl<R: Read> Read for LastByte<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(&b) = buf[..n].last() {
            self.last.store(b, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// The longest line read. The widest real export line, a raw page row with
/// every metric of `--set full`, is about 136 KB; text with no line break
/// for this long is not an ncu CSV, and reading it as one line would hold
/// all of it in memory (`/dev/zero` would never end).
const MAX_LINE_BYTES: u64 = 16 << 20;

/// Passes the text through, failing once more than `left` bytes came
/// through (a gzip bomb) or once a line grows past [`MAX_LINE_BYTES`].
/// Only the tail of each read is searched for a line break: the last one is
/// near its end in any real export.
struct Bounded<R> {
    inner: R,
    left: u64,
    line: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other("decompressed size limit exceeded"));
        }
        self.left -= n as u64;
        self.line = match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(p) => (n - p - 1) as u64,
            None => self.line + n as u64,
        };
        if self.line > MAX_LINE_BYTES {
            return Err(std::io::Error::other(format!(
                "a line runs past {} MiB without a line break: not an Nsight Compute CSV",
                MAX_LINE_BYTES >> 20
            )));
        }
        Ok(n)
    }
}

/// The file's text, and whether it is large enough to split apart.
fn open(path: &Path, opts: &ReadOptions) -> Result<(Box<dyn BufRead + Send>, bool), DigestError> {
    let mut file = std::fs::File::open(path).map_err(|e| DigestError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DigestError::io(path, e))?;
    if meta.is_dir() {
        return Err(bad(path, "is a folder"));
    }
    let split_apart = meta.len() >= opts.split_apart_from_bytes;
    // The magic bytes, once read, go back in front of the rest, so the file
    // is opened once and need not be seekable: a pipe works.
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| DigestError::io(path, e))?;
    if n == 0 {
        return Err(DigestError::Empty {
            path: path.to_path_buf(),
        });
    }
    let (text, left) = text_of(path, &meta, &magic[..n], file, opts)?;
    let bounded = Bounded {
        inner: text,
        left,
        line: 0,
    };
    Ok((
        Box::new(BufReader::with_capacity(1 << 20, bounded)),
        split_apart,
    ))
}

/// The text behind a file's first bytes (`magic`, read already): a
/// report's CSV from `ncu --import`, a gzip inflated, or the file as it
/// is; with the most bytes of text it may give.
fn text_of(
    path: &Path,
    meta: &std::fs::Metadata,
    magic: &[u8],
    file: std::fs::File,
    opts: &ReadOptions,
) -> Result<(Box<dyn Read + Send>, u64), DigestError> {
    if magic == report_import::MAGIC {
        if !meta.is_file() {
            return Err(bad(
                path,
                "an .ncu-rep report read from a pipe; save it to a file first",
            ));
        }
        let report = report_import::ImportedReport::start(path)?;
        return Ok((Box::new(report), u64::MAX));
    }
    let whole = std::io::Cursor::new(magic.to_vec()).chain(file);
    if magic.starts_with(&[0x1f, 0x8b]) {
        let inflated = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, whole));
        Ok((Box::new(inflated), opts.max_decompressed_bytes))
    } else {
        Ok((Box::new(whole), u64::MAX))
    }
}

/// Lines scanned for the header before giving up.
const MAX_PREAMBLE_LINES: usize = 100_000;

/// The header line, with everything before it skipped.
fn find_header(path: &Path, reader: &mut dyn BufRead, limit: u64) -> Result<Vec<u8>, DigestError> {
    let mut line = Vec::new();
    for _ in 0..MAX_PREAMBLE_LINES {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(path, e, limit))?;
        if n == 0 {
            break;
        }
        let start = if line.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let body = &line[start..];
        let is_header = [&b"\"ID\","[..], b"ID,", b"\"Process ID\",", b"\"Domain\","]
            .iter()
            .any(|p| body.starts_with(p));
        if is_header {
            return Ok(body.to_vec());
        }
    }
    Err(bad(
        path,
        "no Nsight Compute CSV header (a line starting with \"ID\") found; export with `ncu --import REPORT --csv --page raw --print-units base`",
    ))
}

fn read_error(path: &Path, e: std::io::Error, limit: u64) -> DigestError {
    let text = e.to_string();
    if text.contains("size limit") {
        DigestError::TooLarge {
            path: path.to_path_buf(),
            limit,
        }
    } else if text.contains("invalid gzip") || text.contains("corrupt") || text.contains("deflate")
    {
        DigestError::BadGzip {
            path: path.to_path_buf(),
            reason: text,
        }
    } else {
        DigestError::io(path, e)
    }
}

/// Header column positions by name.
struct Columns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    fn new(names: Vec<String>) -> Columns {
        let mut index = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            // With duplicate names the first one wins.
            index.entry(n.clone()).or_insert(i);
        }
        Columns { names, index }
    }
    fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
    fn starting_with(&self, prefix: &str) -> Option<usize> {
        self.names.iter().position(|n| n.starts_with(prefix))
    }
}

/// A cell's text, trimmed; borrowed from the record unless it is not UTF-8.
/// A details page has a row per metric, so this runs for every cell read.
fn cell(record: &csv::ByteRecord, i: Option<usize>) -> Cow<'_, str> {
    let bytes = i.and_then(|i| record.get(i)).unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text.trim()),
        Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).trim().to_string()),
    }
}

/// Read one ncu CSV file (plain or gzipped).
pub fn read(path: &Path, opts: &ReadOptions) -> Result<NcuFile, DigestError> {
    let (reader, split_apart) = open(path, opts)?;
    keep_all(reader, path, opts, split_apart)
}

/// Read ncu CSV text from any reader, keeping every launch; `path` only
/// names it in messages.
pub fn read_from(
    reader: Box<dyn BufRead + Send>,
    path: &Path,
    opts: &ReadOptions,
) -> Result<NcuFile, DigestError> {
    keep_all(reader, path, opts, false)
}

fn keep_all(
    reader: Box<dyn BufRead + Send>,
    path: &Path,
    opts: &ReadOptions,
    split_apart: bool,
) -> Result<NcuFile, DigestError> {
    let mut launches = Vec::new();
    let mut file = stream_from(reader, path, opts, split_apart, &mut |l| launches.push(l))?;
    file.launches = launches;
    Ok(file)
}

/// Stream one ncu CSV file: each launch goes to `sink` as soon as its rows
/// end, so memory does not grow with the file. The returned `NcuFile` has
/// no launches.
pub fn stream(
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Launch),
) -> Result<NcuFile, DigestError> {
    let (reader, split_apart) = open(path, opts)?;
    stream_from(reader, path, opts, split_apart, sink)
}

fn stream_from(
    mut reader: Box<dyn BufRead + Send>,
    path: &Path,
    opts: &ReadOptions,
    split_apart: bool,
    sink: &mut dyn FnMut(Launch),
) -> Result<NcuFile, DigestError> {
    let header = find_header(path, reader.as_mut(), opts.max_decompressed_bytes)?;
    // A header with nothing after it is refused below for having no rows.
    let last = AtomicU8::new(b'\n');
    let rows = LastByte {
        inner: reader,
        last: &last,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(std::io::Cursor::new(header).chain(rows));
    let columns = header_columns(path, &mut csv)?;
    let page = detect_page(path, &columns)?;
    let split_from = if split_apart {
        0
    } else {
        opts.split_apart_from_bytes
    };
    // Splitting the CSV into records is about half of the work: past
    // `split_from` it runs on a thread of its own while this one reads the
    // cells.
    let file = std::thread::scope(|scope| {
        let records = &mut Records::Direct {
            csv: Some(csv),
            record: csv::ByteRecord::new(),
            split_from,
            scope,
        };
        match page {
            Page::Details => read_details(path, records, &columns, opts, sink),
            Page::Raw => read_raw(path, records, &columns, opts, sink),
        }
    })?;
    ends_with_line_break(path, last.load(Ordering::Relaxed))?;
    Ok(file)
}

/// The header's column names, trimmed.
fn header_columns<R: Read>(path: &Path, csv: &mut csv::Reader<R>) -> Result<Columns, DigestError> {
    let names: Vec<String> = csv
        .byte_headers()
        .map_err(|e| bad(path, format!("unreadable header: {e}")))?
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .collect();
    Ok(Columns::new(names))
}

/// ncu ends every row with a line break, so a file whose `last_byte` is
/// not one was cut short: its last row may still have every cell, the
/// last one cut.
fn ends_with_line_break(path: &Path, last_byte: u8) -> Result<(), DigestError> {
    match last_byte {
        b'\n' | b'\r' => Ok(()),
        _ => Err(bad(
            path,
            "the last row ends without a line break: the file was cut short",
        )),
    }
}

/// Where the page readers take their records from.
enum Records<'scope, 'env, R> {
    /// Split on this thread, one at a time, until `split_from` bytes have
    /// been read; then the rest is handed to a splitting thread. `csv` is
    /// `None` only while it is being handed over.
    Direct {
        csv: Option<csv::Reader<R>>,
        record: csv::ByteRecord,
        split_from: u64,
        scope: &'scope std::thread::Scope<'scope, 'env>,
    },
    Batches(RecordBatches),
}

impl<'scope, R: Read + Send + 'scope> Records<'scope, '_, R> {
    /// The next record; `None` at the end of the file.
    fn next(&mut self) -> Result<Option<&csv::ByteRecord>, csv::Error> {
        if let Records::Direct {
            csv,
            split_from,
            scope,
            ..
        } = self
        {
            if csv
                .as_ref()
                .is_some_and(|c| c.position().byte() >= *split_from)
            {
                let csv = csv.take().expect("checked above");
                *self = Records::Batches(RecordBatches::spawn(scope, csv));
            }
        }
        match self {
            Records::Direct {
                csv: Some(csv),
                record,
                ..
            } => Ok(csv.read_byte_record(record)?.then_some(&*record)),
            Records::Direct { csv: None, .. } => unreachable!("handed over above"),
            Records::Batches(batches) => batches.next(),
        }
    }
}

/// A batch handed from the splitting thread to the reading one ends at
/// this many records or bytes of cells, whichever comes first: a raw page
/// row can hold thousands of metrics.
const BATCH_RECORDS: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
/// Batches sent and not yet read; with the ones being filled, read and
/// waiting for reuse, memory stays at a few MB.
const BATCHES_IN_FLIGHT: usize = 4;

type Batch = Vec<csv::ByteRecord>;

/// CSV records split on another thread and received in batches; emptied
/// batches go back to be refilled, so records are not allocated anew.
struct RecordBatches {
    full: std::sync::mpsc::Receiver<Result<Batch, csv::Error>>,
    empty: std::sync::mpsc::SyncSender<Batch>,
    batch: Batch,
    next: usize,
}

impl RecordBatches {
    fn spawn<'scope, R: Read + Send + 'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        csv: csv::Reader<R>,
    ) -> RecordBatches {
        let (full_tx, full) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
        let (empty, empty_rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT + 2);
        scope.spawn(move || split_records(csv, &full_tx, &empty_rx));
        RecordBatches {
            full,
            empty,
            batch: Vec::new(),
            next: 0,
        }
    }

    fn next(&mut self) -> Result<Option<&csv::ByteRecord>, csv::Error> {
        while self.next == self.batch.len() {
            // A receiver that is gone only means no batch is reused.
            let _ = self.empty.try_send(std::mem::take(&mut self.batch));
            match self.full.recv() {
                Ok(batch) => self.batch = batch?,
                Err(_) => return Ok(None), // the splitter has ended
            }
            self.next = 0;
        }
        self.next += 1;
        Ok(Some(&self.batch[self.next - 1]))
    }
}

/// The splitting thread: fills batches until the file or a send ends. An
/// error goes last, after the records before it.
fn split_records<R: Read>(
    mut csv: csv::Reader<R>,
    full: &std::sync::mpsc::SyncSender<Result<Batch, csv::Error>>,
    empty: &std::sync::mpsc::Receiver<Batch>,
) {
    loop {
        let mut batch = empty.try_recv().unwrap_or_default();
        let (mut filled, mut bytes) = (0, 0);
        let mut outcome = Ok(true);
        while filled < BATCH_RECORDS && bytes < BATCH_BYTES {
            if filled == batch.len() {
                batch.push(csv::ByteRecord::new());
            }
            outcome = csv.read_byte_record(&mut batch[filled]);
            if !matches!(outcome, Ok(true)) {
                break;
            }
            bytes += batch[filled].as_slice().len();
            filled += 1;
        }
        batch.truncate(filled);
        if full.send(Ok(batch)).is_err() {
            return; // the reading thread stopped early
        }
        match outcome {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        }
    }
}

fn detect_page(path: &Path, c: &Columns) -> Result<Page, DigestError> {
    if ["Minimum", "Maximum", "Average"]
        .iter()
        .all(|n| c.get(n).is_some())
    {
        return Err(bad(
            path,
            "this is a --print-summary page (min/max/avg per kernel), which has no per-launch values; export with `ncu --import REPORT --csv --page raw --print-units base` (or --page details) instead",
        ));
    }
    if c.get("ID").is_none() || c.get("Kernel Name").is_none() {
        return Err(bad(
            path,
            "the header lacks the \"ID\" and \"Kernel Name\" columns",
        ));
    }
    if ["Metric Name", "Metric Value"]
        .iter()
        .all(|n| c.get(n).is_some())
    {
        return Ok(Page::Details);
    }
    if c.names.iter().any(|n| n.contains("__")) {
        return Ok(Page::Raw);
    }
    Err(bad(
        path,
        "neither a details page (Metric Name/Metric Value columns) nor a raw page (metric columns)",
    ))
}

/// Identity columns shared by both pages.
struct Identity {
    id: Option<usize>,
    kernel: Option<usize>,
    nvtx: Option<usize>,
    start_end: Option<usize>,
    block: Option<usize>,
    grid: Option<usize>,
    device: Option<usize>,
}

impl Identity {
    fn new(c: &Columns) -> Identity {
        Identity {
            id: c.get("ID"),
            kernel: c.get("Kernel Name"),
            nvtx: c.starting_with("thread Domain:Push/Pop_Range"),
            start_end: c.starting_with("Id:Domain:Start/Stop_Range"),
            block: c.get("Block Size"),
            grid: c.get("Grid Size"),
            device: c.get("Device"),
        }
    }

    fn launch(&self, record: &csv::ByteRecord, id: u64) -> Launch {
        let opt = |i| Some(cell(record, i).into_owned()).filter(|s| !s.is_empty());
        let nvtx = parse_nvtx_cell(&cell(record, self.nvtx), false);
        let mut kernel = cell(record, self.kernel).into_owned();
        // `--print-nvtx-rename kernel` prefixes the innermost push/pop range.
        if let Some(inner) = nvtx.last() {
            let bare = inner.rsplit(':').next().unwrap_or(inner);
            if let Some(rest) = kernel.strip_prefix(&format!("{bare}/")) {
                kernel = rest.to_string();
            }
        }
        Launch {
            id,
            kernel,
            nvtx,
            nvtx_start_end: parse_nvtx_cell(&cell(record, self.start_end), true),
            block: opt(self.block),
            grid: opt(self.grid),
            device: opt(self.device),
            ..Default::default()
        }
    }
}

/// `13221  "<default domain>:step:none:…"  "MyDomain:attn:none:…" ` →
/// `["step", "MyDomain:attn"]`. Start/end cells carry a leading range id.
pub fn parse_nvtx_cell(text: &str, has_id: bool) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter_map(|part| {
            // The six trailing fields (PL_Type … Msg) never contain ':'; the
            // range name may.
            let mut fields: Vec<&str> = part.rsplitn(7, ':').collect();
            if fields.len() < 7 {
                return None;
            }
            let head = fields.pop()?;
            let head = if has_id {
                head.split_once(':')?.1
            } else {
                head
            };
            let (domain, name) = head.split_once(':').unwrap_or(("", head));
            Some(if domain.is_empty() || domain == "<default domain>" {
                name.to_string()
            } else {
                format!("{domain}:{name}")
            })
        })
        .collect()
}

fn read_details<'scope, R: Read + Send + 'scope>(
    path: &Path,
    records: &mut Records<'scope, '_, R>,
    c: &Columns,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Launch),
) -> Result<NcuFile, DigestError> {
    let ident = Identity::new(c);
    let mut metrics = DetailsMetrics::new(c);
    let mut launches = LaunchRun::default();
    let mut skipped = 0u64;
    while let Some(record) = records
        .next()
        .map_err(|e| csv_error(path, e, opts.max_decompressed_bytes))?
    {
        let id = parse_id(&cell(record, ident.id)).filter(|_| record.len() >= metrics.min_len);
        let Some(launch) = id.and_then(|id| launches.launch_for(id, record, &ident, sink)) else {
            skipped += 1;
            continue;
        };
        metrics.fill(record, opts.decimal, launch);
    }
    launches.hand_on(sink);
    Ok(NcuFile {
        page: Page::Details,
        launches: Vec::new(),
        launch_count: launches.done.len() as u64,
        auto_scaled: metrics.auto_scaled,
        skipped_rows: skipped,
    })
}

/// The details page's metric columns: a row per (launch, metric), the
/// metric named by its section and name, its unit in a column of its own.
struct DetailsMetrics {
    section: Option<usize>,
    name: Option<usize>,
    unit: Option<usize>,
    value: Option<usize>,
    /// Real ragged rows drop only the trailing rule columns; a row that
    /// ends before "Metric Value" is broken (e.g. by an unbalanced quote).
    min_len: usize,
    units: UnitFactors,
    /// Some value read came in an auto-scaled unit.
    auto_scaled: bool,
}

impl DetailsMetrics {
    fn new(c: &Columns) -> DetailsMetrics {
        let value = c.get("Metric Value");
        DetailsMetrics {
            section: c.get("Section Name"),
            name: c.get("Metric Name"),
            unit: c.get("Metric Unit"),
            value,
            min_len: value.map_or(0, |v| v + 1),
            units: UnitFactors::default(),
            auto_scaled: false,
        }
    }

    /// The row's metric, where the digest knows it; rule rows have none.
    #[inline]
    fn fill(&mut self, record: &csv::ByteRecord, decimal: DecimalStyle, launch: &mut Launch) {
        let metric_name = cell(record, self.name);
        if metric_name.is_empty() {
            return;
        }
        let Some(metric) = metric_names::resolve(&cell(record, self.section), &metric_name) else {
            return;
        };
        let (factor, scaled) = self.units.factor(cell(record, self.unit));
        if let Some(v) = parse_number(&cell(record, self.value), decimal) {
            self.auto_scaled |= scaled;
            launch.values.insert(metric, v * factor);
        }
    }
}

/// The details page's launch being read, and the IDs of those handed on.
/// The rows of one launch are contiguous in every ncu export; a launch is
/// complete when the next ID starts. An ID that comes back later cannot be
/// merged any more: its rows are counted as skipped.
#[derive(Default)]
struct LaunchRun {
    current: Option<Launch>,
    done: FxHashSet<u64>,
}

impl LaunchRun {
    /// The launch a row of `id` belongs to, started (and the one before
    /// handed on) when the ID changes; `None` for an ID that already ended.
    fn launch_for(
        &mut self,
        id: u64,
        record: &csv::ByteRecord,
        ident: &Identity,
        sink: &mut dyn FnMut(Launch),
    ) -> Option<&mut Launch> {
        if self.current.as_ref().is_none_or(|l| l.id != id) {
            if self.done.contains(&id) {
                return None;
            }
            self.hand_on(sink);
            self.current = Some(ident.launch(record, id));
        }
        self.current.as_mut()
    }

    fn hand_on(&mut self, sink: &mut dyn FnMut(Launch)) {
        if let Some(finished) = self.current.take() {
            self.done.insert(finished.id);
            sink(finished);
        }
    }
}

/// Each unit text's factor to base units, and whether ncu scaled it
/// itself, worked out once per text.
#[derive(Default)]
struct UnitFactors(FxHashMap<String, (f64, bool)>);

impl UnitFactors {
    fn factor(&mut self, text: Cow<'_, str>) -> (f64, bool) {
        if let Some(&known) = self.0.get(&*text) {
            return known;
        }
        let new = unit_factor(&text);
        self.0.insert(text.into_owned(), new);
        new
    }
}

/// Factor to base units, and whether the unit is an auto-scaled one.
fn unit_factor(unit: &str) -> (f64, bool) {
    let (factor, _) = to_base(unit);
    (factor, factor != 1.0 && !unit.is_empty())
}

fn parse_id(text: &str) -> Option<u64> {
    if text.contains(',') {
        text.replace(',', "").parse().ok()
    } else {
        text.parse().ok()
    }
}

fn csv_error(path: &Path, e: csv::Error, limit: u64) -> DigestError {
    match e.kind() {
        csv::ErrorKind::Io(io) => {
            read_error(path, std::io::Error::new(io.kind(), io.to_string()), limit)
        }
        _ => bad(path, format!("malformed CSV: {e}")),
    }
}

fn read_raw<'scope, R: Read + Send + 'scope>(
    path: &Path,
    records: &mut Records<'scope, '_, R>,
    c: &Columns,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Launch),
) -> Result<NcuFile, DigestError> {
    let ident = Identity::new(c);
    let mut metrics = RawMetrics::new(c);
    let mut count = 0u64;
    let (mut skipped, mut first) = (0u64, true);
    while let Some(record) = records
        .next()
        .map_err(|e| csv_error(path, e, opts.max_decompressed_bytes))?
    {
        let id_text = cell(record, ident.id);
        let units_row = first && id_text.is_empty();
        first = false;
        if units_row {
            metrics.read_units(record);
            continue;
        }
        let Some(id) = parse_id(&id_text).filter(|_| record.len() == c.names.len()) else {
            skipped += 1;
            continue;
        };
        let mut launch = ident.launch(record, id);
        metrics.fill(record, opts.decimal, &mut launch);
        count += 1;
        sink(launch);
    }
    Ok(NcuFile {
        page: Page::Raw,
        launches: Vec::new(),
        launch_count: count,
        auto_scaled: metrics.auto_scaled,
        skipped_rows: skipped,
    })
}

/// The raw page's metric columns: one metric per column, its unit in the
/// units row under the header when the export has one.
struct RawMetrics {
    /// (column, metric) for every column the digest knows.
    columns: Vec<(usize, &'static str)>,
    /// Per known column: its unit's factor to base units, and whether the
    /// unit is an auto-scaled one.
    factors: Vec<(f64, bool)>,
    gpu_name: Option<usize>,
    /// Some value read came in an auto-scaled unit.
    auto_scaled: bool,
}

impl RawMetrics {
    fn new(c: &Columns) -> RawMetrics {
        let columns: Vec<(usize, &'static str)> = c
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| metric_names::resolve_column(n).map(|m| (i, m)))
            .collect();
        RawMetrics {
            factors: vec![(1.0, false); columns.len()],
            columns,
            gpu_name: c.get(GPU_NAME),
            auto_scaled: false,
        }
    }

    /// The units row: one unit per metric column.
    fn read_units(&mut self, record: &csv::ByteRecord) {
        for (k, &(i, _)) in self.columns.iter().enumerate() {
            self.factors[k] = unit_factor(&cell(record, Some(i)));
        }
    }

    /// The GPU name and every known metric of a launch's row.
    fn fill(&mut self, record: &csv::ByteRecord, decimal: DecimalStyle, launch: &mut Launch) {
        launch.gpu_name = Some(cell(record, self.gpu_name).into_owned()).filter(|s| !s.is_empty());
        for (k, &(i, metric)) in self.columns.iter().enumerate() {
            if let Some(v) = parse_number(&cell(record, Some(i)), decimal) {
                self.auto_scaled |= self.factors[k].1;
                launch.values.insert(metric, v * self.factors[k].0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvtx_cells() {
        let push = r#"13221  "<default domain>:execute_context_8(2048)_generation_0(0):none:none:none:none:none:none"  "MyDomain:dom:fma:none:none:none:none:ASCII:dom_fma" "#;
        assert_eq!(
            parse_nvtx_cell(push, false),
            vec![
                "execute_context_8(2048)_generation_0(0)",
                "MyDomain:dom:fma"
            ]
        );
        let start = r#" "0:<default domain>:whole_run:none:none:none:none:none:none" "#;
        assert_eq!(parse_nvtx_cell(start, true), vec!["whole_run"]);
        assert!(parse_nvtx_cell("", false).is_empty());
    }
}
