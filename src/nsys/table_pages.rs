//! Reads the two big all-integer tables, and NVTX_EVENTS with its one text
//! column, straight from the SQLite file's B-tree pages, without SQLite's
//! virtual machine.
//!
//! Through the `digest_rows` aggregate (`int_rows`), SQLite still runs its
//! bytecode once per row and builds a value per cell: on the SYNTHETIC 1 GB
//! export `sqlite3VdbeExec` and its helpers were about a third of all
//! samples. A rowid table's leaves are plain records of varints and
//! big-endian integers, so they are decoded here, and each row goes
//! through the same mapping and checks as the aggregate's step.
//!
//! Only the plain case is read this way: a rollback-journal file, a rowid
//! table without generated columns, defaults or a primary key among the
//! columns read, records without overflow pages, and cells that are
//! integers or NULL, or UTF-8 text in the one text column. Anything else,
//! a damaged page included, gives
//! [`Unsupported`] before any row is returned, and the caller reads the
//! table through SQLite instead, which then decides what is wrong with it.
//! Every loop is bounded by the file's page count, so a damaged file cannot
//! make the walk hang.

use super::int_rows::{argument_names, IntCells};
use rusqlite::{Connection, OptionalExtension};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Why a table is left to SQLite; kept for the tests and for debugging.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

/// The most cells a query reads after the rowid.
const MAX_COLUMNS: usize = 16;
/// B-trees deeper than this are damaged: SQLite's own limit is 20.
const MAX_DEPTH: usize = 20;
/// Bytes read at once from a run of consecutive leaves.
const CHUNK_BYTES: usize = 1 << 20;

/// Where each cell of the query comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CellSource {
    /// The n-th value of the record.
    Record(usize),
    /// The query passes `NULL` for a column an old schema lacks.
    Null,
}

/// A table's root page and the record position of each cell the query
/// reads, and of the text column read with them, if any.
#[derive(Debug)]
struct TableLayout {
    root: u32,
    cells: Vec<CellSource>,
    text: Option<usize>,
}

impl TableLayout {
    /// The layout for `sql`, a `SELECT digest_rows(rowid, ...) FROM t NOT
    /// INDEXED` from `queries/`, as the schema in the file declares it.
    fn find(conn: &Connection, sql: &str, text: Option<&str>) -> Result<TableLayout, Unsupported> {
        let table = table_name(sql).ok_or(Unsupported("no table in the query"))?;
        let root: Option<i64> = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()
            .map_err(|_| Unsupported("schema unreadable"))?;
        let root = root.ok_or(Unsupported("no such table"))?;
        let root = u32::try_from(root)
            .ok()
            .filter(|&r| r > 0)
            .ok_or(Unsupported("bad root page"))?;
        let columns = table_columns(conn, table)?;
        let names = argument_names(sql);
        if names.len() > MAX_COLUMNS {
            return Err(Unsupported("too many columns"));
        }
        let cells = names
            .iter()
            .map(|name| cell_source(&columns, name))
            .collect::<Result<_, _>>()?;
        let text = match text.map(|name| cell_source(&columns, name)).transpose()? {
            Some(CellSource::Record(position)) => Some(position),
            Some(CellSource::Null) => return Err(Unsupported("the text column is NULL")),
            None => None,
        };
        Ok(TableLayout { root, cells, text })
    }
}

/// One declared column, as `PRAGMA table_xinfo` lists it.
struct Column {
    name: String,
    has_default: bool,
    primary_key: bool,
    hidden: bool,
}

fn table_columns(conn: &Connection, table: &str) -> Result<Vec<Column>, Unsupported> {
    let unreadable = |_| Unsupported("columns unreadable");
    let mut stmt = conn
        .prepare("SELECT name, dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?1)")
        .map_err(unreadable)?;
    let rows = stmt
        .query_map([table], |r| {
            Ok(Column {
                name: r.get(0)?,
                has_default: r.get(1)?,
                primary_key: r.get::<_, i64>(2)? != 0,
                hidden: r.get::<_, i64>(3)? != 0,
            })
        })
        .map_err(unreadable)?;
    let columns = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(unreadable)?;
    // A generated column shifts the stored positions away from the
    // declared ones.
    if columns.iter().any(|c| c.hidden) {
        return Err(Unsupported("generated columns"));
    }
    Ok(columns)
}

fn cell_source(columns: &[Column], name: &str) -> Result<CellSource, Unsupported> {
    if name.eq_ignore_ascii_case("NULL") {
        return Ok(CellSource::Null);
    }
    let position = columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
        .ok_or(Unsupported("a cell is not a plain column"))?;
    let column = &columns[position];
    // A primary key may alias the rowid (stored as NULL), and a default
    // fills records written before the column was added.
    if column.primary_key || column.has_default {
        return Err(Unsupported("primary key or default"));
    }
    Ok(CellSource::Record(position))
}

/// The table after `FROM` in one of our queries.
fn table_name(sql: &str) -> Option<&str> {
    let upper = sql.to_ascii_uppercase();
    let at = upper.find("\nFROM ").or_else(|| upper.find(" FROM "))? + " FROM ".len();
    sql[at..].split_whitespace().next()
}

/// The file's geometry, from its 100-byte header.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    page_size: usize,
    usable: usize,
    page_count: u32,
    /// Text is stored as UTF-8 (else UTF-16, left to SQLite).
    utf8: bool,
}

impl Geometry {
    fn read(file: &File) -> Result<Geometry, Unsupported> {
        let mut header = [0u8; 100];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| Unsupported("short header"))?;
        if &header[..16] != b"SQLite format 3\0" {
            return Err(Unsupported("not a SQLite file"));
        }
        // Version 2 is WAL mode, where newer pages may sit in the WAL file.
        if header[18] != 1 || header[19] != 1 {
            return Err(Unsupported("not a rollback-journal file"));
        }
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => usize::from(n),
            _ => return Err(Unsupported("bad page size")),
        };
        let usable = page_size - usize::from(header[20]);
        if usable < 480 {
            return Err(Unsupported("bad reserved space"));
        }
        let length = file
            .metadata()
            .map_err(|_| Unsupported("no file size"))?
            .len();
        let page_count =
            u32::try_from(length / page_size as u64).map_err(|_| Unsupported("too many pages"))?;
        Ok(Geometry {
            page_size,
            usable,
            page_count,
            utf8: u32::from_be_bytes([header[56], header[57], header[58], header[59]]) == 1,
        })
    }

    /// The largest payload kept whole on a table leaf; a longer one
    /// spills to overflow pages.
    fn max_local(&self) -> usize {
        self.usable - 35
    }
}

/// A B-tree page's header, at offset 100 on page 1 and 0 elsewhere.
struct PageHeader {
    kind: u8,
    cells: usize,
    /// Where the cell pointer array starts.
    pointers: usize,
    right_child: u32,
}

const INTERIOR_TABLE: u8 = 0x05;
const LEAF_TABLE: u8 = 0x0D;

fn page_header(page: &[u8], number: u32) -> Result<PageHeader, Unsupported> {
    let at = if number == 1 { 100 } else { 0 };
    let bad = Unsupported("damaged page header");
    let head = page.get(at..at + 12).ok_or(bad)?;
    let kind = head[0];
    let cells = usize::from(u16::from_be_bytes([head[3], head[4]]));
    let (pointers, right_child) = match kind {
        LEAF_TABLE => (at + 8, 0),
        INTERIOR_TABLE => (
            at + 12,
            u32::from_be_bytes([head[8], head[9], head[10], head[11]]),
        ),
        _ => return Err(Unsupported("not a table B-tree page")),
    };
    if pointers + 2 * cells > page.len() {
        return Err(Unsupported("damaged cell count"));
    }
    Ok(PageHeader {
        kind,
        cells,
        pointers,
        right_child,
    })
}

/// The offset of cell `i`, checked to lie inside the usable part.
fn cell_offset(
    page: &[u8],
    header: &PageHeader,
    i: usize,
    usable: usize,
) -> Result<usize, Unsupported> {
    let p = header.pointers + 2 * i;
    let offset = usize::from(u16::from_be_bytes([page[p], page[p + 1]]));
    if offset < header.pointers || offset >= usable {
        return Err(Unsupported("damaged cell pointer"));
    }
    Ok(offset)
}

/// SQLite's variable-length integer: up to nine bytes, big-endian, seven
/// bits each but the ninth, which gives all eight.
fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, Unsupported> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *bytes.get(*at).ok_or(Unsupported("varint past the cell"))?;
        *at += 1;
        if i == 8 {
            return Ok((value << 8) | u64::from(b));
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b < 0x80 {
            return Ok(value);
        }
    }
    unreachable!("the ninth byte returns")
}

/// The leaves of the table, in rowid order, found by walking the interior
/// pages (at 1 GB, a few hundred of them). In a B-tree every leaf is at the
/// same depth, so when an interior page's first child is a leaf all its
/// children are taken as leaves unread; the scan checks each one.
fn leaf_pages(file: &File, geometry: Geometry, root: u32) -> Result<Vec<u32>, Unsupported> {
    let mut walk = LeafWalk {
        file,
        geometry,
        leaves: Vec::new(),
        visited: 0,
    };
    walk.descend(root, 0)?;
    Ok(walk.leaves)
}

struct LeafWalk<'f> {
    file: &'f File,
    geometry: Geometry,
    leaves: Vec<u32>,
    /// Pages met so far; more than the file holds means the tree loops.
    visited: usize,
}

impl LeafWalk<'_> {
    fn descend(&mut self, number: u32, depth: usize) -> Result<(), Unsupported> {
        self.count(1)?;
        if depth > MAX_DEPTH {
            return Err(Unsupported("B-tree too deep"));
        }
        let mut page = vec![0u8; self.geometry.page_size];
        let header = read_page(self.file, self.geometry, number, &mut page)?;
        if header.kind == LEAF_TABLE {
            self.leaves.push(number);
            return Ok(());
        }
        let children = children(&page, &header, self.geometry.usable)?;
        let first = read_page(self.file, self.geometry, children[0], &mut page)?;
        if first.kind == LEAF_TABLE {
            self.count(children.len())?;
            self.leaves.extend_from_slice(&children);
            return Ok(());
        }
        children
            .into_iter()
            .try_for_each(|child| self.descend(child, depth + 1))
    }

    fn count(&mut self, pages: usize) -> Result<(), Unsupported> {
        self.visited += pages;
        if self.visited > self.geometry.page_count as usize {
            return Err(Unsupported("B-tree loops"));
        }
        Ok(())
    }
}

/// An interior page's children in key order: each cell's left child, then
/// the right-most one.
fn children(page: &[u8], header: &PageHeader, usable: usize) -> Result<Vec<u32>, Unsupported> {
    let mut out = Vec::with_capacity(header.cells + 1);
    for i in 0..header.cells {
        let at = cell_offset(page, header, i, usable)?;
        let child = page.get(at..at + 4).ok_or(Unsupported("damaged cell"))?;
        out.push(u32::from_be_bytes([child[0], child[1], child[2], child[3]]));
    }
    out.push(header.right_child);
    Ok(out)
}

fn read_page(
    file: &File,
    geometry: Geometry,
    number: u32,
    page: &mut [u8],
) -> Result<PageHeader, Unsupported> {
    if number == 0 || number > geometry.page_count {
        return Err(Unsupported("page number out of range"));
    }
    let offset = u64::from(number - 1) * geometry.page_size as u64;
    file.read_exact_at(page, offset)
        .map_err(|_| Unsupported("page unreadable"))?;
    page_header(page, number)
}

/// Read every row of the table `sql` names, mapped by `map`, or say why
/// this table must be read through SQLite. An error from `map` ends the
/// read, as it ends the aggregate's.
pub fn read_table<T>(
    conn: &Connection,
    file: &Path,
    sql: &str,
    capacity: usize,
    map: &mut impl FnMut(&IntCells<'_>) -> rusqlite::Result<T>,
) -> Result<rusqlite::Result<Vec<T>>, Unsupported> {
    scan_table(conn, file, sql, None, capacity, &mut |cells, _| map(cells))
}

/// [`read_table`] that also hands `map` each row's `text_column`, which
/// must hold UTF-8 text or NULL.
pub fn read_table_with_text<T>(
    conn: &Connection,
    file: &Path,
    sql: &str,
    text_column: &str,
    capacity: usize,
    map: &mut impl FnMut(&IntCells<'_>, Option<&str>) -> rusqlite::Result<T>,
) -> Result<rusqlite::Result<Vec<T>>, Unsupported> {
    scan_table(conn, file, sql, Some(text_column), capacity, map)
}

fn scan_table<T>(
    conn: &Connection,
    file: &Path,
    sql: &str,
    text_column: Option<&str>,
    capacity: usize,
    map: &mut impl FnMut(&IntCells<'_>, Option<&str>) -> rusqlite::Result<T>,
) -> Result<rusqlite::Result<Vec<T>>, Unsupported> {
    let plan = TablePlan::new(conn, file, sql, text_column)?;
    let mut rows = Vec::new();
    let _ = rows.try_reserve_exact(capacity);
    let mut reader = RunReader::new(&plan);
    Ok(reader
        .read(&plan, 0..plan.leaf_count(), &mut rows, map)?
        .map(|()| rows))
}

/// A table's layout, file and leaves, found once: its leaves can then be
/// read in runs, on more than one thread.
#[derive(Debug)]
pub struct TablePlan<'q> {
    layout: TableLayout,
    file: File,
    geometry: Geometry,
    leaves: Vec<u32>,
    names: Vec<&'q str>,
}

impl<'q> TablePlan<'q> {
    /// The plan for `sql`, a `SELECT digest_rows(rowid, ...) FROM t NOT
    /// INDEXED` from `queries/`, with the text column read with it, if any.
    pub fn new(
        conn: &Connection,
        file: &Path,
        sql: &'q str,
        text_column: Option<&str>,
    ) -> Result<TablePlan<'q>, Unsupported> {
        let layout = TableLayout::find(conn, sql, text_column)?;
        let file = File::open(file).map_err(|_| Unsupported("file unreadable"))?;
        let geometry = Geometry::read(&file)?;
        if layout.text.is_some() && !geometry.utf8 {
            return Err(Unsupported("text not in UTF-8"));
        }
        let leaves = leaf_pages(&file, geometry, layout.root)?;
        Ok(TablePlan {
            layout,
            file,
            geometry,
            leaves,
            names: argument_names(sql),
        })
    }

    /// The table's leaf pages, which [`RunReader::read`] takes by index.
    pub fn leaf_count(&self) -> usize {
        self.leaves.len()
    }
}

/// Reads runs of a plan's leaves into rows, checking that rowids rise
/// from one run to the next; one reader per thread.
pub struct RunReader {
    decoder: RecordDecoder,
    chunk: LeafChunks,
    ahead: crate::memory::PopulateAhead,
    rowids: Option<(i64, i64)>,
}

impl RunReader {
    pub fn new(plan: &TablePlan<'_>) -> RunReader {
        RunReader {
            decoder: RecordDecoder::new(&plan.layout.cells),
            chunk: LeafChunks::default(),
            ahead: crate::memory::PopulateAhead::default(),
            rowids: None,
        }
    }

    /// The first and last rowid read since the reader was made or
    /// [`restart`](Self::restart)ed.
    pub fn rowids(&self) -> Option<(i64, i64)> {
        self.rowids
    }

    /// Forget the rowids read: the next run need not follow them.
    pub fn restart(&mut self) {
        self.rowids = None;
    }

    /// Read every row of the leaves `leaves`, mapped by `map` and pushed to
    /// `rows`, or say why this table must be read through SQLite. An error
    /// from `map` ends the read, as it ends the aggregate's.
    pub fn read<T>(
        &mut self,
        plan: &TablePlan<'_>,
        leaves: std::ops::Range<usize>,
        rows: &mut Vec<T>,
        map: &mut impl FnMut(&IntCells<'_>, Option<&str>) -> rusqlite::Result<T>,
    ) -> Result<rusqlite::Result<()>, Unsupported> {
        let geometry = plan.geometry;
        // Chunks end with the run, so no page is read for another reader.
        let run = plan
            .leaves
            .get(..leaves.end)
            .ok_or(Unsupported("no such leaves"))?;
        for i in leaves {
            let page = self.chunk.page(&plan.file, geometry, run, i)?;
            let header = page_header(page, run[i])?;
            if header.kind != LEAF_TABLE {
                return Err(Unsupported("a leaf is not a leaf"));
            }
            for c in 0..header.cells {
                let at = cell_offset(page, &header, c, geometry.usable)?;
                let (rowid, record) = leaf_cell(page, at, geometry)?;
                follow_rowid(&mut self.rowids, rowid)?;
                let text = match plan.layout.text {
                    Some(position) => text_cell(record, position)?,
                    None => None,
                };
                let cells = self.decoder.decode(record)?;
                match map(&IntCells::decoded(cells, &plan.names), text) {
                    Ok(row) => {
                        self.ahead.before_push(rows);
                        rows.push(row);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        Ok(Ok(()))
    }
}

/// Extends `rowids`, the first and last rowid read, by `rowid`. Rowids
/// only rise along a table's leaves; one that does not means the walk went
/// wrong, and SQLite reads the table instead.
#[inline]
fn follow_rowid(rowids: &mut Option<(i64, i64)>, rowid: i64) -> Result<(), Unsupported> {
    *rowids = match *rowids {
        Some((_, last)) if rowid <= last => return Err(Unsupported("rows not in rowid order")),
        Some((first, _)) => Some((first, rowid)),
        None => Some((rowid, rowid)),
    };
    Ok(())
}

/// The text at record position `position`: NULL, or text that must be
/// UTF-8 (SQLite would refuse it as a Rust string too). It walks the header
/// again rather than teaching [`RecordDecoder::decode`] a text cell: that
/// loop runs for every cell of the two big tables, which have no text.
fn text_cell(record: &[u8], position: usize) -> Result<Option<&str>, Unsupported> {
    let (header, mut at) = record_header(record)?;
    let mut body = header.len();
    for _ in 0..position {
        if at >= header.len() {
            // A record written before the column was added: NULL.
            return Ok(None);
        }
        body += serial_length(varint(header, &mut at)?)?;
    }
    if at >= header.len() {
        return Ok(None);
    }
    let serial = varint(header, &mut at)?;
    match serial {
        0 => Ok(None),
        n if n >= 13 && n % 2 == 1 => {
            let len = serial_length(n)?;
            let bytes = body
                .checked_add(len)
                .and_then(|end| record.get(body..end))
                .ok_or(Unsupported("record body too short"))?;
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Unsupported("text is not UTF-8"))
        }
        _ => Err(Unsupported("a text cell is not text")),
    }
}

/// A leaf cell's rowid and record, which must be wholly on the page.
fn leaf_cell(page: &[u8], at: usize, geometry: Geometry) -> Result<(i64, &[u8]), Unsupported> {
    let mut p = at;
    let payload = small_varint(page, &mut p)?;
    let rowid = varint(page, &mut p)? as i64;
    let payload = usize::try_from(payload).map_err(|_| Unsupported("huge payload"))?;
    if payload > geometry.max_local() {
        return Err(Unsupported("record spills to overflow pages"));
    }
    let record = page
        .get(p..p + payload)
        .filter(|_| p + payload <= geometry.usable)
        .ok_or(Unsupported("record past the page"))?;
    Ok((rowid, record))
}

/// Reads runs of consecutive leaves with one call each, so a table written
/// in order costs one read per megabyte, and a scattered one a read per
/// page, as SQLite's own scan does.
#[derive(Default)]
struct LeafChunks {
    buffer: Vec<u8>,
    /// The index in the leaf list of the buffer's first page, and how many
    /// leaves it holds.
    first: usize,
    held: usize,
}

impl LeafChunks {
    fn page(
        &mut self,
        file: &File,
        geometry: Geometry,
        leaves: &[u32],
        i: usize,
    ) -> Result<&[u8], Unsupported> {
        let size = geometry.page_size;
        if !(self.first..self.first + self.held).contains(&i) {
            let most = (CHUNK_BYTES / size).max(1);
            let start = leaves[i];
            let run = leaves[i..]
                .iter()
                .take(most)
                .enumerate()
                .take_while(|&(k, &n)| u64::from(n) == u64::from(start) + k as u64)
                .count();
            if start == 0 || u64::from(start) + run as u64 - 1 > u64::from(geometry.page_count) {
                return Err(Unsupported("page number out of range"));
            }
            // Grown, and so zeroed, only to the longest run: runs differ in
            // length, and zeroing the buffer's regrown part before each
            // read wrote about 21 MB for the 76 MB export.
            if self.buffer.len() < run * size {
                self.buffer.resize(run * size, 0);
            }
            let offset = u64::from(start - 1) * size as u64;
            file.read_exact_at(&mut self.buffer[..run * size], offset)
                .map_err(|_| Unsupported("page unreadable"))?;
            self.first = i;
            self.held = run;
        }
        let k = i - self.first;
        Ok(&self.buffer[k * size..(k + 1) * size])
    }
}

/// Turns a record into the query's cells, integers or NULL.
struct RecordDecoder {
    /// For each record position up to the last one read, the query cell it
    /// fills, if any.
    wanted: Vec<Option<usize>>,
    /// A run of record positions none of which is read, in whole blocks
    /// of 16, whose lengths are summed a block at a time: positions 10 to
    /// 25 of the kernel table, between the names and `graphNodeId`.
    gap: Option<std::ops::Range<usize>>,
    cells: [Option<i64>; MAX_COLUMNS],
    count: usize,
}

impl RecordDecoder {
    fn new(sources: &[CellSource]) -> RecordDecoder {
        let last = sources
            .iter()
            .filter_map(|s| match s {
                CellSource::Record(p) => Some(p + 1),
                CellSource::Null => None,
            })
            .max()
            .unwrap_or(0);
        let mut wanted = vec![None; last];
        for (cell, source) in sources.iter().enumerate() {
            if let CellSource::Record(p) = source {
                wanted[*p] = Some(cell);
            }
        }
        RecordDecoder {
            gap: unread_blocks(&wanted),
            wanted,
            cells: [None; MAX_COLUMNS],
            count: sources.len(),
        }
    }

    /// Serial types are almost always one byte, so that case is inline;
    /// at 1 GB this loop runs for a third of a billion cells.
    #[inline(always)]
    fn decode(&mut self, record: &[u8]) -> Result<&[Option<i64>], Unsupported> {
        let (header, at) = record_header(record)?;
        if !self.decode_one_byte_serials(record, header.len(), &header[at..]) {
            self.decode_any(record, header, at)?;
        }
        Ok(&self.cells[..self.count])
    }

    /// The common record: every serial type up to the last cell read is
    /// one byte, and every cell read an integer or NULL. The skipped cells'
    /// lengths are summed unchecked, and one check after the loop covers
    /// them all; false leaves the record to [`RecordDecoder::decode_any`],
    /// which decides.
    #[inline(always)]
    fn decode_one_byte_serials(&mut self, record: &[u8], mut body: usize, serials: &[u8]) -> bool {
        let Some(serials) = serials.get(..self.wanted.len()) else {
            return false;
        };
        let mut flags = 0u8;
        let mut from = 0;
        if let Some(gap) = self.gap.clone() {
            if !self.one_byte_cells(record, serials, 0..gap.start, &mut body, &mut flags) {
                return false;
            }
            let skipped = &serials[gap.clone()];
            body += block_lengths(skipped).unwrap_or_else(|| one_byte_lengths(skipped, &mut flags));
            from = gap.end;
        }
        if !self.one_byte_cells(record, serials, from..serials.len(), &mut body, &mut flags) {
            return false;
        }
        // A multi-byte serial type, or a reserved one (its length has the
        // high bit), anywhere before the last cell read.
        flags & 0x80 == 0 && body <= record.len()
    }

    /// The cells at record positions `at`, moving `body` past each.
    #[inline(always)]
    fn one_byte_cells(
        &mut self,
        record: &[u8],
        serials: &[u8],
        at: std::ops::Range<usize>,
        body: &mut usize,
        flags: &mut u8,
    ) -> bool {
        for (&serial, &want) in serials[at.clone()].iter().zip(&self.wanted[at]) {
            let length = ONE_BYTE_LENGTHS[usize::from(serial & 0x7f)];
            *flags |= serial | length;
            let len = usize::from(length);
            if let Some(cell) = want {
                match record
                    .get(*body..*body + len)
                    .map(|b| integer(u64::from(serial), b))
                {
                    Some(Ok(value)) => self.cells[cell] = value,
                    _ => return false,
                }
            }
            *body += len;
        }
        true
    }

    /// Any record: serial types of any length, and records that end before
    /// the last column read.
    fn decode_any(
        &mut self,
        record: &[u8],
        header: &[u8],
        mut at: usize,
    ) -> Result<(), Unsupported> {
        let mut body = header.len();
        for (position, &want) in self.wanted.iter().enumerate() {
            // Records written before a column was added end early; those
            // cells are NULL (no column read here has a default).
            if at >= header.len() {
                self.clear_from(position);
                break;
            }
            let serial = small_varint(header, &mut at)?;
            let len = serial_length(serial)?;
            let end = body
                .checked_add(len)
                .ok_or(Unsupported("record body too short"))?;
            if let Some(cell) = want {
                let bytes = record
                    .get(body..end)
                    .ok_or(Unsupported("record body too short"))?;
                self.cells[cell] = integer(serial, bytes)?;
            }
            body = end;
        }
        Ok(())
    }

    /// NULL for the cells at record positions from `position` on.
    #[cold]
    fn clear_from(&mut self, position: usize) {
        for &cell in self.wanted[position..].iter().flatten() {
            self.cells[cell] = None;
        }
    }
}

/// A record's header, which holds its own length and then the serial
/// types, and where the serial types start in it.
#[inline(always)]
fn record_header(record: &[u8]) -> Result<(&[u8], usize), Unsupported> {
    let mut at = 0;
    let header_len = small_varint(record, &mut at)?;
    let header = usize::try_from(header_len)
        .ok()
        .and_then(|h| record.get(..h))
        .ok_or(Unsupported("damaged record header"))?;
    Ok((header, at))
}

/// [`varint`] with the one-byte case inline.
#[inline(always)]
fn small_varint(bytes: &[u8], at: &mut usize) -> Result<u64, Unsupported> {
    match bytes.get(*at) {
        Some(&b) if b < 0x80 => {
            *at += 1;
            Ok(u64::from(b))
        }
        _ => varint(bytes, at),
    }
}

/// The body length of serial types 0 to 9 (NULL, integers, a float, the
/// constants 0 and 1).
const FIXED_LENGTHS: [u8; 10] = [0, 1, 2, 3, 4, 6, 8, 8, 0, 0];

/// The body length of each one-byte serial type, as [`serial_length`]
/// gives it, with the high bit set for the reserved types 10 and 11.
const ONE_BYTE_LENGTHS: [u8; 128] = {
    let mut lengths = [0u8; 128];
    let mut serial = 0;
    while serial < 128 {
        lengths[serial] = match serial {
            0..=9 => FIXED_LENGTHS[serial],
            10 | 11 => 0x80,
            n => ((n - 12) / 2) as u8,
        };
        serial += 1;
    }
    lengths
};

/// The summed body lengths of one-byte serial types, as the scalar loop
/// sums them, with their flags.
fn one_byte_lengths(serials: &[u8], flags: &mut u8) -> usize {
    serials
        .iter()
        .map(|&serial| {
            let length = ONE_BYTE_LENGTHS[usize::from(serial & 0x7f)];
            *flags |= serial | length;
            usize::from(length)
        })
        .sum()
}

/// The first run of at least 16 record positions that no cell reads, cut
/// to whole blocks of 16; none where the processor cannot sum a block.
fn unread_blocks(wanted: &[Option<usize>]) -> Option<std::ops::Range<usize>> {
    if !block_sums_available() {
        return None;
    }
    let mut start = 0;
    for (position, want) in wanted.iter().enumerate().chain([(wanted.len(), &Some(0))]) {
        if want.is_some() {
            let blocks = (position - start) / 16;
            if blocks > 0 {
                return Some(start..start + 16 * blocks);
            }
            start = position + 1;
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
fn block_sums_available() -> bool {
    std::arch::is_x86_feature_detected!("ssse3")
}

#[cfg(not(target_arch = "x86_64"))]
fn block_sums_available() -> bool {
    false
}

/// The summed body lengths of serial types in blocks of 16, when each is
/// below 16 and not reserved (10, 11); `None` leaves them to the scalar
/// sum, which also flags what the fast path cannot read.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_lengths(serials: &[u8]) -> Option<usize> {
    let mut total = 0;
    for block in serials.chunks_exact(16) {
        // SAFETY: a gap is only made where SSSE3 was detected
        // (`unread_blocks`), and `block` holds 16 bytes.
        total += unsafe { block_length(block) }?;
    }
    Some(total)
}

#[cfg(not(target_arch = "x86_64"))]
fn block_lengths(_: &[u8]) -> Option<usize> {
    None
}

/// One block of 16 serial types: their lengths by a table lookup per
/// byte, summed across the block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn block_length(block: &[u8]) -> Option<usize> {
    use std::arch::x86_64::*;
    debug_assert_eq!(block.len(), 16);
    let serials = _mm_loadu_si128(block.as_ptr().cast());
    // Serial types 0 to 15 (12 to 15: empty or one-byte text and blobs);
    // -1 marks the reserved 10 and 11.
    let table = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 8, 0, 0, -1, -1, 0, 0, 1, 1);
    let lengths = _mm_shuffle_epi8(table, serials);
    let past_table = _mm_and_si128(serials, _mm_set1_epi8(0xF0u8 as i8));
    let reserved = _mm_cmpeq_epi8(lengths, _mm_set1_epi8(-1));
    let odd = _mm_or_si128(past_table, reserved);
    if _mm_movemask_epi8(_mm_cmpeq_epi8(odd, _mm_setzero_si128())) != 0xFFFF {
        return None;
    }
    let sums = _mm_sad_epu8(lengths, _mm_setzero_si128());
    Some(_mm_cvtsi128_si32(sums) as usize + _mm_extract_epi16::<4>(sums) as usize)
}

/// The body length of a serial type.
#[inline(always)]
fn serial_length(serial: u64) -> Result<usize, Unsupported> {
    match serial {
        0..=9 => Ok(usize::from(FIXED_LENGTHS[serial as usize])),
        10 | 11 => Err(Unsupported("reserved serial type")),
        n => usize::try_from((n - 12) / 2).map_err(|_| Unsupported("huge cell")),
    }
}

/// An integer or NULL cell; any other type is left to SQLite, whose
/// conversions the aggregate's reader keeps. `bytes` has the serial
/// type's length.
#[inline(always)]
fn integer(serial: u64, bytes: &[u8]) -> Result<Option<i64>, Unsupported> {
    // Each length is read as a fixed-size array and sign-extended by an
    // arithmetic shift: a copy of a variable length into a buffer became a
    // call to memcpy, and the load of the buffer then waited on its stores.
    let fixed = |n: usize| -> [u8; 8] {
        let mut wide = [0; 8];
        wide[..n].copy_from_slice(&bytes[..n]);
        wide
    };
    Ok(match serial {
        0 => None,
        1 => Some(i64::from(bytes[0] as i8)),
        2 => Some(i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
        3 => Some(i64::from(
            i32::from_be_bytes([bytes[0], bytes[1], bytes[2], 0]) >> 8,
        )),
        4 => Some(i64::from(i32::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ]))),
        5 => Some(i64::from_be_bytes(fixed(6)) >> 16),
        6 => Some(i64::from_be_bytes(fixed(8))),
        8 => Some(0),
        9 => Some(1),
        _ => return Err(Unsupported("a cell is not an integer")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made records, as SQLite lays them out (header length, serial
    /// types, then the bodies): the real exports hold no NULL, empty or
    /// non-UTF-8 text in the column read.
    #[test]
    fn text_cells_decode_or_are_left_to_sqlite() {
        // (int 7, text "ab", NULL)
        let record = [4, 1, 17, 0, 7, b'a', b'b'];
        assert_eq!(text_cell(&record, 1).unwrap(), Some("ab"));
        assert_eq!(text_cell(&record, 2).unwrap(), None);
        // Past the last column: a record written before it was added.
        assert_eq!(text_cell(&record, 3).unwrap(), None);
        assert!(text_cell(&record, 0).is_err(), "an integer is not text");
        // (empty text), (text 0xff), (blob "ab")
        assert_eq!(text_cell(&[2, 13], 0).unwrap(), Some(""));
        assert!(text_cell(&[2, 15, 0xff], 0).is_err());
        assert!(text_cell(&[2, 16, b'a', b'b'], 0).is_err());
        // A text longer than the record.
        assert!(text_cell(&[2, 21, b'a'], 0).is_err());
    }

    /// Every serial type a block can hold, in pseudo-random blocks: the
    /// block sum equals the scalar sum wherever it answers, and declines
    /// exactly the blocks with a serial type of 16 or more or a reserved one.
    #[test]
    fn block_sums_equal_the_scalar_sums() {
        if !block_sums_available() {
            return;
        }
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        };
        let (mut summed, mut declined) = (0, 0);
        for round in 0..20_000 {
            let limit = [10u8, 16, 20, 255][round % 4];
            let block: Vec<u8> = (0..16).map(|_| next() % limit).collect();
            let mut flags = 0;
            let scalar = one_byte_lengths(&block, &mut flags);
            let odd = block.iter().any(|&s| s >= 16 || s == 10 || s == 11);
            match block_lengths(&block) {
                Some(total) => {
                    assert!(!odd, "{block:?}");
                    assert_eq!(total, scalar, "{block:?}");
                    summed += 1;
                }
                None => {
                    assert!(odd, "{block:?}");
                    declined += 1;
                }
            }
        }
        assert!(summed > 1000 && declined > 1000, "{summed} {declined}");
    }

    /// Only a run of 16 unread positions or more becomes a gap.
    #[test]
    fn the_gap_is_the_first_long_unread_run() {
        if !block_sums_available() {
            return;
        }
        let mut wanted = vec![None; 40];
        for p in [0, 1, 2, 5, 6, 7, 8, 9, 26, 39] {
            wanted[p] = Some(p);
        }
        assert_eq!(unread_blocks(&wanted), Some(10..26));
        wanted[20] = Some(20);
        assert_eq!(unread_blocks(&wanted), None);
        wanted.truncate(5);
        assert_eq!(unread_blocks(&wanted), None);
    }

    #[test]
    fn varints_and_integers_decode_as_sqlite_writes_them() {
        let read = |bytes: &[u8]| varint(bytes, &mut 0).unwrap();
        assert_eq!(read(&[0x7f]), 127);
        assert_eq!(read(&[0x81, 0x00]), 128);
        assert_eq!(read(&[0xff; 9]), u64::MAX);
        assert!(varint(&[0x80], &mut 0).is_err());
        assert_eq!(integer(1, &[0xff]).unwrap(), Some(-1));
        assert_eq!(integer(3, &[0x80, 0, 0]).unwrap(), Some(-(1 << 23)));
        assert_eq!(integer(5, &[0, 1, 0, 0, 0, 0]).unwrap(), Some(1 << 32));
        assert_eq!(integer(0, &[]).unwrap(), None);
        assert!(integer(7, &[0; 8]).is_err());
        // The bounds of each width, as SQLite stores them: big-endian two's
        // complement in 1, 2, 3, 4, 6 and 8 bytes (serial types 1 to 6).
        for (serial, width) in [(1u64, 1usize), (2, 2), (3, 3), (4, 4), (5, 6), (6, 8)] {
            let bits = 8 * width as u32;
            let (low, high) = (i64::MIN >> (64 - bits), i64::MAX >> (64 - bits));
            for v in [low, low + 1, -1, 0, 1, high - 1, high] {
                let bytes = &v.to_be_bytes()[8 - width..];
                assert_eq!(integer(serial, bytes).unwrap(), Some(v), "{v} in {width}");
            }
        }
    }

    /// Hand-made databases: no real export has a scattered or deep table,
    /// a WAL file, a default, a REAL cell or a damaged page, and each must
    /// either read exactly as SQLite reads it or be left to SQLite.
    fn database(setup: &str) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(setup).unwrap();
        (dir, path, conn)
    }

    type Cells = Vec<Option<i64>>;

    fn all_cells(width: usize) -> impl FnMut(&IntCells<'_>) -> rusqlite::Result<Cells> {
        move |r| (0..width).map(|i| r.opt_int(i)).collect()
    }

    fn by_pages(
        conn: &Connection,
        path: &Path,
        sql: &str,
        width: usize,
    ) -> Result<Cells2, Unsupported> {
        read_table(conn, path, sql, 0, &mut all_cells(width)).map(Result::unwrap)
    }

    type Cells2 = Vec<Cells>;

    fn by_sqlite(conn: &Connection, sql: &str, width: usize) -> Cells2 {
        crate::nsys::int_rows::read_int_rows(conn, sql, 0, all_cells(width)).unwrap()
    }

    const READ: &str = "SELECT digest_rows(rowid, a, b, NULL, c) FROM t NOT INDEXED";

    #[test]
    fn a_deep_scattered_table_reads_as_sqlite_reads_it() {
        // Small pages make a three-level tree; rowids inserted out of order
        // and deletes leave the leaves out of page order.
        let (_dir, path, conn) = database(
            "PRAGMA page_size = 512; CREATE TABLE t(a INTEGER, b INTEGER, c INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t(rowid, a, b, c)
             SELECT (i * 7919) % 20011, i - 10000, CASE WHEN i % 3 = 0 THEN NULL ELSE i * 1000003 END,
                    i * 4294967296 FROM n;
             DELETE FROM t WHERE rowid % 5 = 0;
             ALTER TABLE t ADD COLUMN d INTEGER;
             UPDATE t SET a = -9223372036854775808, c = 9223372036854775807 WHERE rowid = 17;",
        );
        let rows = by_pages(&conn, &path, READ, 4).unwrap();
        assert!(rows.len() > 15000);
        let file = File::open(&path).unwrap();
        let geometry = Geometry::read(&file).unwrap();
        let root = TableLayout::find(&conn, READ, None).unwrap().root;
        let leaves = leaf_pages(&file, geometry, root).unwrap();
        assert!(
            leaves.windows(2).any(|w| w[1] != w[0] + 1),
            "leaves in page order"
        );
        assert_eq!(rows, by_sqlite(&conn, READ, 4));
        // Records written before `d` was added end early: NULL, as in SQLite.
        let sql = "SELECT digest_rows(rowid, d, a) FROM t NOT INDEXED";
        assert_eq!(
            by_pages(&conn, &path, sql, 2).unwrap(),
            by_sqlite(&conn, sql, 2)
        );
    }

    /// Hand-made: the real tables skip only integer columns, whose serial
    /// types are one byte; here the skipped cells have longer ones.
    #[test]
    fn long_cells_between_the_read_ones_are_skipped() {
        let (_dir, path, conn) = database(
            "CREATE TABLE t(a INTEGER, s TEXT, b INTEGER, x BLOB, c INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
             INSERT INTO t SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE substr(hex(randomblob(150)), 1, i % 250) END,
                                  i * 3, zeroblob(i % 90), -i * 100003 FROM n;
             ALTER TABLE t ADD COLUMN d INTEGER;
             UPDATE t SET d = rowid WHERE rowid % 2 = 0;",
        );
        let sql = "SELECT digest_rows(rowid, c, a, d) FROM t NOT INDEXED";
        let rows = by_pages(&conn, &path, sql, 3).unwrap();
        assert_eq!(rows.len(), 600);
        assert_eq!(rows, by_sqlite(&conn, sql, 3));
    }

    #[test]
    fn what_the_pages_cannot_say_is_left_to_sqlite() {
        let setup =
            "CREATE TABLE t(a INTEGER, b INTEGER, c INTEGER); INSERT INTO t VALUES (1, 2, 3);";
        let unsupported = |extra: &str, sql: &str| {
            let (_dir, path, conn) = database(&format!("{setup} {extra}"));
            by_pages(&conn, &path, sql, 4).unwrap_err()
        };
        assert_eq!(
            unsupported("INSERT INTO t VALUES (1.5, 2, 3);", READ).0,
            "a cell is not an integer"
        );
        assert_eq!(
            unsupported("INSERT INTO t VALUES ('x7', 2, 3);", READ).0,
            "a cell is not an integer"
        );
        assert_eq!(
            unsupported("PRAGMA journal_mode = WAL;", READ).0,
            "not a rollback-journal file"
        );
        assert_eq!(
            unsupported(
                "ALTER TABLE t ADD COLUMN e INTEGER DEFAULT 5;",
                "SELECT digest_rows(rowid, e) FROM t NOT INDEXED"
            )
            .0,
            "primary key or default"
        );
        assert_eq!(
            unsupported("ALTER TABLE t ADD COLUMN big BLOB; INSERT INTO t VALUES (1, 2, 3, zeroblob(9000));", READ).0,
            "record spills to overflow pages"
        );
        assert_eq!(
            unsupported("", "SELECT digest_rows(rowid, a + 1) FROM t NOT INDEXED").0,
            "a cell is not a plain column"
        );
    }

    #[test]
    fn a_damaged_tree_is_left_to_sqlite_without_a_hang() {
        let (_dir, path, conn) = database(
            "PRAGMA page_size = 512; CREATE TABLE t(a INTEGER, b INTEGER, c INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT i, i, i FROM n;",
        );
        let root: u32 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let offset = u64::from(root - 1) * 512;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // The root's right-most child made the root itself: a loop.
        file.write_all_at(&root.to_be_bytes(), offset + 8).unwrap();
        assert_eq!(
            by_pages(&conn, &path, READ, 4).unwrap_err().0,
            "B-tree loops"
        );
        // The root made an index page.
        file.write_all_at(&[0x02], offset).unwrap();
        assert_eq!(
            by_pages(&conn, &path, READ, 4).unwrap_err().0,
            "not a table B-tree page"
        );
        // A file cut short inside the table.
        file.set_len(offset + 100).unwrap();
        assert!(by_pages(&conn, &path, READ, 4).is_err());
    }

    #[test]
    fn the_table_comes_from_the_query() {
        assert_eq!(
            table_name(
                "SELECT digest_rows(rowid, a)\nFROM CUPTI_ACTIVITY_KIND_RUNTIME NOT INDEXED"
            ),
            Some("CUPTI_ACTIVITY_KIND_RUNTIME")
        );
    }
}
