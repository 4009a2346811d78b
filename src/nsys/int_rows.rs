//! Reads the two big tables, whose cells are all integers, through an
//! aggregate function instead of a row cursor.
//!
//! Stepping a cursor costs SQLite a return to the caller per row and a
//! checked `sqlite3_column_int64` per cell; on the runtime and kernel tables
//! that was about a sixth of the whole digest. Here the query is
//! `SELECT digest_rows(rowid, a, b, ...) FROM t NOT INDEXED`: SQLite calls
//! the aggregate's step once per row with the cells as values, and the
//! step pushes the mapped row. On the SYNTHETIC 1 GB export the runtime
//! table reads in 2.0 s instead of 3.1–4.7 s.
//!
//! `NOT INDEXED` keeps the plain table scan, so rows come in rowid order;
//! the step checks that order, since other readers zip by row position.
//!
//! A cell is read as an integer with one call, and its type is asked only
//! when the value reads as 0, which is what SQLite returns for NULL and for
//! text that is not a number. Other cells convert the way SQLite's
//! `CAST(x AS INTEGER)` does: a REAL is truncated, text that starts with
//! digits reads as those digits.

use rusqlite::ffi;
use rusqlite::types::Type;
use rusqlite::Connection;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The aggregate's name, as the queries in `queries/` call it.
const FUNCTION: &CStr = c"digest_rows";

/// The cells of one row after its rowid.
pub struct IntCells<'a> {
    cells: Cells<'a>,
    columns: &'a [&'a str],
}

/// Where the cells come from: SQLite's values, or a record decoded
/// straight from the file's pages (`table_pages`), whose cells are
/// already integers or NULL.
enum Cells<'a> {
    Sqlite(&'a [*mut ffi::sqlite3_value]),
    Decoded(&'a [Option<i64>]),
}

impl<'a> IntCells<'a> {
    /// Cells decoded from a record, named by `columns`.
    pub(crate) fn decoded(cells: &'a [Option<i64>], columns: &'a [&'a str]) -> IntCells<'a> {
        IntCells {
            cells: Cells::Decoded(cells),
            columns,
        }
    }
}

impl IntCells<'_> {
    /// A cell that must hold an integer.
    #[inline]
    pub fn int(&self, col: usize) -> rusqlite::Result<i64> {
        match self.opt_int(col)? {
            Some(v) => Ok(v),
            None => Err(self.wrong_type(col, Type::Null)),
        }
    }

    /// A cell that holds an integer or NULL.
    #[inline(always)]
    pub fn opt_int(&self, col: usize) -> rusqlite::Result<Option<i64>> {
        // Decoded cells are the billion-cell path: kept small enough to
        // inline into each row mapper, with SQLite's values out of line.
        match self.cells {
            Cells::Decoded(cells) => Ok(cells[col]),
            Cells::Sqlite(values) => self.sqlite_int(values[col], col),
        }
    }

    #[inline(never)]
    fn sqlite_int(
        &self,
        value: *mut ffi::sqlite3_value,
        col: usize,
    ) -> rusqlite::Result<Option<i64>> {
        // SAFETY: SQLite hands the step valid values for the whole call,
        // and this view does not outlive it.
        let v = unsafe { ffi::sqlite3_value_int64(value) };
        if v != 0 {
            return Ok(Some(v));
        }
        match unsafe { ffi::sqlite3_value_type(value) } {
            ffi::SQLITE_INTEGER | ffi::SQLITE_FLOAT => Ok(Some(0)),
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_TEXT => Err(self.wrong_type(col, Type::Text)),
            _ => Err(self.wrong_type(col, Type::Blob)),
        }
    }

    /// A cell that holds a 32-bit id or NULL.
    #[inline(always)]
    pub fn opt_u32(&self, col: usize) -> rusqlite::Result<Option<u32>> {
        match self.opt_int(col)? {
            None => Ok(None),
            Some(v) => match u32::try_from(v) {
                Ok(id) => Ok(Some(id)),
                Err(_) => Err(self.not_an_id(col, v)),
            },
        }
    }

    /// A cell that holds a 32-bit id below `u32::MAX` (which stands for
    /// NULL in the rows), or NULL.
    #[inline(always)]
    pub fn opt_id(&self, col: usize) -> rusqlite::Result<Option<u32>> {
        match self.opt_u32(col)? {
            Some(u32::MAX) => Err(self.reserved_id(col)),
            id => Ok(id),
        }
    }

    #[cold]
    fn not_an_id(&self, col: usize, v: i64) -> rusqlite::Error {
        failure(format!("{}: {v} is not a 32-bit id", self.column(col)))
    }

    #[cold]
    fn reserved_id(&self, col: usize) -> rusqlite::Error {
        let name = self.column(col);
        failure(format!("{name}: {} is not a 32-bit id below {0}", u32::MAX))
    }

    fn column(&self, col: usize) -> &str {
        self.columns.get(col).copied().unwrap_or_default()
    }

    fn wrong_type(&self, col: usize, found: Type) -> rusqlite::Error {
        rusqlite::Error::InvalidColumnType(col, self.column(col).to_string(), found)
    }
}

/// The step's state: the rows so far, or the first error.
struct Collector<'a, T, F> {
    map: F,
    rows: Vec<T>,
    columns: &'a [&'a str],
    last_rowid: i64,
    error: Option<rusqlite::Error>,
}

impl<T, F: FnMut(&IntCells<'_>) -> rusqlite::Result<T>> Collector<'_, T, F> {
    fn push(&mut self, values: &[*mut ffi::sqlite3_value]) -> rusqlite::Result<()> {
        let Some((&rowid, cells)) = values.split_first() else {
            return Err(rusqlite::Error::InvalidParameterCount(0, 1));
        };
        if cells.len() != self.columns.len() {
            return Err(rusqlite::Error::InvalidParameterCount(
                cells.len(),
                self.columns.len(),
            ));
        }
        // SAFETY: as in `IntCells::opt_int`.
        let rowid = unsafe { ffi::sqlite3_value_int64(rowid) };
        if rowid <= self.last_rowid && !self.rows.is_empty() {
            return Err(failure(format!(
                "rows not in rowid order ({} after {})",
                rowid, self.last_rowid
            )));
        }
        self.last_rowid = rowid;
        let row = (self.map)(&IntCells {
            cells: Cells::Sqlite(cells),
            columns: self.columns,
        })?;
        self.rows.push(row);
        Ok(())
    }
}

unsafe extern "C" fn step<T, F: FnMut(&IntCells<'_>) -> rusqlite::Result<T>>(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: the user data is the collector registered with this function,
    // alive until it is unregistered; SQLite runs the step on this thread.
    let collector = unsafe { &mut *ffi::sqlite3_user_data(ctx).cast::<Collector<'_, T, F>>() };
    if collector.error.is_some() {
        return;
    }
    let values = if argv.is_null() || argc <= 0 {
        &[][..]
    } else {
        // SAFETY: SQLite passes `argc` values.
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| collector.push(values)))
        .unwrap_or_else(|_| Err(failure("row reader panicked".into())));
    if let Err(e) = outcome {
        collector.error = Some(e);
        // Ends the scan now; the error itself is taken from the collector.
        unsafe { ffi::sqlite3_result_error(ctx, c"bad row".as_ptr(), -1) };
    }
}

unsafe extern "C" fn finish(ctx: *mut ffi::sqlite3_context) {
    unsafe { ffi::sqlite3_result_null(ctx) };
}

/// Unregisters the function when the read ends, however it ends, so SQLite
/// never holds a pointer to a collector that is gone.
struct Registration(*mut ffi::sqlite3);

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: the handle outlives this guard (both borrow the connection).
        unsafe {
            ffi::sqlite3_create_function_v2(
                self.0,
                FUNCTION.as_ptr(),
                -1,
                ffi::SQLITE_UTF8,
                std::ptr::null_mut(),
                None,
                None,
                None,
                None,
            )
        };
    }
}

/// The column names inside `digest_rows(rowid, ...)`, for error messages.
pub fn argument_names(sql: &str) -> Vec<&str> {
    let Some(open) = sql.find("digest_rows(") else {
        return Vec::new();
    };
    let args = &sql[open + "digest_rows(".len()..];
    let args = &args[..args.find(')').unwrap_or(args.len())];
    args.split(',').map(str::trim).skip(1).collect()
}

/// Run `sql`, a `SELECT digest_rows(rowid, ...) FROM t NOT INDEXED` from
/// `queries/`, and map every row in rowid order into a vector of
/// `capacity` rows (a hint; it still grows when the hint is short).
pub fn read_int_rows<T>(
    conn: &Connection,
    sql: &str,
    capacity: usize,
    map: impl FnMut(&IntCells<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let columns = argument_names(sql);
    let mut rows = Vec::new();
    // Where that much memory is refused, the vector grows as it fills
    // instead of aborting the process.
    let _ = rows.try_reserve_exact(capacity);
    let mut collector = Collector {
        map,
        rows,
        columns: &columns,
        last_rowid: i64::MIN,
        error: None,
    };
    run(conn, sql, &mut collector)?;
    match collector.error {
        Some(e) => Err(e),
        None => Ok(collector.rows),
    }
}

fn run<T, F: FnMut(&IntCells<'_>) -> rusqlite::Result<T>>(
    conn: &Connection,
    sql: &str,
    collector: &mut Collector<'_, T, F>,
) -> rusqlite::Result<()> {
    // SQLite writes through this pointer during each step; reads between
    // steps go through it too.
    let collector: *mut Collector<'_, T, F> = collector;
    let db = register(conn, collector)?;
    let _registration = Registration(db);
    let statement = Statement::prepare(db, sql)?;
    loop {
        match unsafe { ffi::sqlite3_step(statement.0) } {
            ffi::SQLITE_ROW => {}
            ffi::SQLITE_DONE => return Ok(()),
            // A failed step reports the collector's error, when it has one.
            _ if unsafe { (*collector).error.is_some() } => return Ok(()),
            rc => return Err(last_error(db, rc)),
        }
    }
}

/// Register `digest_rows` on `conn`, feeding `collector`; the caller
/// unregisters it with a [`Registration`] before the collector goes.
fn register<T, F: FnMut(&IntCells<'_>) -> rusqlite::Result<T>>(
    conn: &Connection,
    collector: *mut Collector<'_, T, F>,
) -> rusqlite::Result<*mut ffi::sqlite3> {
    // SAFETY: the handle stays valid while `conn` is borrowed; rusqlite
    // never sees this function or statement.
    let db = unsafe { conn.handle() };
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            FUNCTION.as_ptr(),
            -1,
            ffi::SQLITE_UTF8,
            collector.cast::<c_void>(),
            None,
            Some(step::<T, F>),
            Some(finish),
            None,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(last_error(db, rc));
    }
    Ok(db)
}

/// Prepare a `digest_rows` query without running it: the schema-drift
/// test's check that every column it names exists.
pub fn check_prepares(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    let mut collector = Collector {
        map: |_: &IntCells<'_>| Ok(()),
        rows: Vec::new(),
        columns: &[],
        last_rowid: i64::MIN,
        error: None,
    };
    register(conn, &mut collector as *mut _)?;
    let _registration = Registration(unsafe { conn.handle() });
    Statement::prepare(unsafe { conn.handle() }, sql).map(drop)
}

/// A prepared statement, finalized on drop.
struct Statement(*mut ffi::sqlite3_stmt);

impl Statement {
    fn prepare(db: *mut ffi::sqlite3, sql: &str) -> rusqlite::Result<Statement> {
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is passed with its length; `db` is open.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast::<c_char>(),
                sql.len() as c_int,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db, rc));
        }
        Ok(Statement(stmt))
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

pub(super) fn failure(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_ERROR), Some(message))
}

fn last_error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    let msg = unsafe { ffi::sqlite3_errmsg(db) };
    let msg = (!msg.is_null()).then(|| {
        unsafe { CStr::from_ptr(msg) }
            .to_string_lossy()
            .into_owned()
    });
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made cells: real exports hold only integers and NULL here, and
    /// the damaged-file tests cover a whole digest; this pins each rule.
    #[test]
    fn cells_convert_like_sqlite_and_reject_what_is_not_a_number() {
        let conn = Connection::open_in_memory().unwrap();
        let sql = "SELECT digest_rows(1, 42, 0, NULL, 'soon', '17', 2.9, 0.0, x'00')";
        let cells = |check: fn(&IntCells<'_>) -> rusqlite::Result<()>| {
            read_int_rows(&conn, sql, 1, check).map(|rows| rows.len())
        };
        assert_eq!(
            cells(|c| {
                assert_eq!(c.int(0)?, 42);
                assert_eq!(c.int(1)?, 0);
                assert_eq!(c.opt_int(2)?, None);
                assert!(c.int(2).is_err());
                assert!(c.opt_int(3).is_err());
                assert_eq!(c.int(4)?, 17);
                assert_eq!(c.int(5)?, 2);
                assert_eq!(c.int(6)?, 0);
                assert!(c.opt_int(7).is_err());
                Ok(())
            })
            .unwrap(),
            1
        );
        // An error in the mapping ends the read and is the one reported.
        let err = cells(|c| c.int(3).map(|_| ())).unwrap_err();
        assert!(
            matches!(err, rusqlite::Error::InvalidColumnType(3, ref name, Type::Text) if name == "'soon'"),
            "{err:?}"
        );
    }

    #[test]
    fn rows_come_in_rowid_order_or_not_at_all() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t(a INTEGER); INSERT INTO t(rowid, a) VALUES (5, 50), (2, 20), (9, 90);",
        )
        .unwrap();
        let read = |sql| read_int_rows(&conn, sql, 0, |c| c.int(0));
        assert_eq!(
            read("SELECT digest_rows(rowid, a) FROM t NOT INDEXED").unwrap(),
            vec![20, 50, 90]
        );
        let err = read("SELECT digest_rows(-rowid, a) FROM t NOT INDEXED").unwrap_err();
        assert!(err.to_string().contains("rowid order"), "{err}");
        // The function is gone once a read ends.
        assert!(conn.execute_batch("SELECT digest_rows(1, 2)").is_err());
    }

    #[test]
    fn argument_names_skip_the_rowid() {
        assert_eq!(
            argument_names("SELECT digest_rows(rowid, start, end)\nFROM t NOT INDEXED"),
            vec!["start", "end"]
        );
    }

    #[test]
    fn a_bad_statement_is_an_error_not_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(read_int_rows(
            &conn,
            "SELECT digest_rows(rowid, start) FROM no_such_table",
            0,
            |c| c.int(0)
        )
        .is_err());
    }
}
