//! A lean cursor for the two big tables, whose cells are all integers.
//!
//! rusqlite's `Row::get` makes three SQLite calls per cell (column count,
//! type, value) plus its own checks; on the runtime and kernel tables that
//! was about a fifth of the whole digest. This cursor makes one call per
//! cell and asks for the type only when the value reads as 0, which is what
//! SQLite returns for NULL and for text that is not a number. Other cells
//! convert the way SQLite's `CAST(x AS INTEGER)` does: a REAL is truncated,
//! text that starts with digits reads as those digits.

use rusqlite::ffi;
use rusqlite::types::Type;
use rusqlite::Connection;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;

/// A prepared statement stepped row by row; finalized on drop.
pub struct IntRows<'conn> {
    stmt: *mut ffi::sqlite3_stmt,
    db: *mut ffi::sqlite3,
    columns: usize,
    _conn: PhantomData<&'conn Connection>,
}

impl<'conn> IntRows<'conn> {
    /// Prepare `sql` on `conn`. The SQL is static text from `queries/`.
    pub fn prepare(conn: &'conn Connection, sql: &str) -> rusqlite::Result<IntRows<'conn>> {
        // SAFETY: the handle stays valid while `conn` is borrowed, which the
        // lifetime ties to this cursor; rusqlite never sees this statement.
        let db = unsafe { conn.handle() };
        let mut stmt = std::ptr::null_mut();
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db, rc));
        }
        let columns = unsafe { ffi::sqlite3_column_count(stmt) }.max(0) as usize;
        Ok(IntRows {
            stmt,
            db,
            columns,
            _conn: PhantomData,
        })
    }

    /// Move to the next row; `false` once the rows are exhausted.
    pub fn step(&mut self) -> rusqlite::Result<bool> {
        match unsafe { ffi::sqlite3_step(self.stmt) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => Err(last_error(self.db, rc)),
        }
    }

    /// A cell that must hold an integer.
    pub fn int(&self, col: usize) -> rusqlite::Result<i64> {
        match self.opt_int(col)? {
            Some(v) => Ok(v),
            None => Err(self.wrong_type(col, Type::Null)),
        }
    }

    /// A cell that holds an integer or NULL.
    pub fn opt_int(&self, col: usize) -> rusqlite::Result<Option<i64>> {
        assert!(col < self.columns, "column {col} of {}", self.columns);
        // SAFETY: the statement is positioned on a row (callers step first)
        // and `col` is in range.
        let v = unsafe { ffi::sqlite3_column_int64(self.stmt, col as c_int) };
        if v != 0 {
            return Ok(Some(v));
        }
        match unsafe { ffi::sqlite3_column_type(self.stmt, col as c_int) } {
            ffi::SQLITE_INTEGER | ffi::SQLITE_FLOAT => Ok(Some(0)),
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_TEXT => Err(self.wrong_type(col, Type::Text)),
            _ => Err(self.wrong_type(col, Type::Blob)),
        }
    }

    fn wrong_type(&self, col: usize, found: Type) -> rusqlite::Error {
        let name = unsafe { ffi::sqlite3_column_name(self.stmt, col as c_int) };
        let name = if name.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        rusqlite::Error::InvalidColumnType(col, name, found)
    }
}

impl Drop for IntRows<'_> {
    fn drop(&mut self) {
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
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
        let sql = "SELECT 42, 0, NULL, 'soon', '17', 2.9, 0.0, x'00'";
        let mut rows = IntRows::prepare(&conn, sql).unwrap();
        assert!(rows.step().unwrap());
        assert_eq!(rows.int(0).unwrap(), 42);
        assert_eq!(rows.int(1).unwrap(), 0);
        assert_eq!(rows.opt_int(2).unwrap(), None);
        assert!(rows.int(2).is_err());
        assert!(rows.opt_int(3).is_err());
        assert_eq!(rows.int(4).unwrap(), 17);
        assert_eq!(rows.int(5).unwrap(), 2);
        assert_eq!(rows.int(6).unwrap(), 0);
        assert!(rows.opt_int(7).is_err());
        assert!(!rows.step().unwrap());
    }

    #[test]
    fn a_bad_statement_is_an_error_not_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(IntRows::prepare(&conn, "SELECT start FROM no_such_table").is_err());
    }
}
