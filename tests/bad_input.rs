//! Bad inputs end with one line naming the file, exit code 2, no panic, and
//! the input untouched. The broken files are made here from a real sample
//! (truncations, corrupt gzip) or by hand where no real file shows the case
//! (empty, random bytes, a database that is not an nsys export).

use crate::common::*;
use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn run_on(path: &Path) -> (i32, String, String) {
    run("nsys-digest", &[path.to_str().unwrap()])
}

/// Exit 2, one stderr line that names the file and says `expect`, and
/// nothing on stdout, not even an empty JSON list.
fn assert_rejected(path: &Path, expect: &str) {
    let before = std::fs::read(path).ok();
    let (code, out, _) = run("nsys-digest", &[path.to_str().unwrap(), "--format", "json"]);
    assert_eq!((code, out.as_str()), (2, ""), "{}", path.display());
    let (code, _out, err) = run_on(path);
    assert_eq!(code, 2, "{}: stderr {err}", path.display());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains(expect), "says {expect:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(path).ok(), before, "input untouched");
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        assert!(!PathBuf::from(side).exists(), "no {suffix} file");
    }
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.sqlite");
    std::fs::write(&p, b"").unwrap();
    assert_rejected(&p, "empty");
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("random.sqlite");
    // Hand-made: a fixed pseudo-random byte pattern, no real file looks like this.
    let bytes: Vec<u8> = (0u32..65536)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&p, bytes).unwrap();
    assert_rejected(&p, "not an SQLite database");
}

#[test]
fn truncated_sqlite_at_several_offsets() {
    let full = inflate(&sample("h200_llama8_graphs_graphmode_1step"));
    let dir = tempfile::tempdir().unwrap();
    for cut in [
        100,
        4096,
        20_000,
        full.len() / 3,
        full.len() / 2,
        full.len() - 4096,
    ] {
        let p = dir.path().join(format!("cut{cut}.sqlite"));
        std::fs::write(&p, &full[..cut]).unwrap();
        let before = std::fs::read(&p).unwrap();
        let (code, _out, err) = run_on(&p);
        // A cut may still leave every table the reports read intact; then a
        // result is fine. Otherwise: a clean one-line error.
        assert!(code == 0 || code == 2, "cut {cut}: code {code} {err}");
        if code == 2 {
            assert_eq!(err.lines().count(), 1, "cut {cut}: {err}");
            assert!(err.contains(&p.display().to_string()));
        }
        assert!(!err.contains("panicked"), "cut {cut}: {err}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
    }
}

#[test]
fn corrupt_and_truncated_gzip() {
    let gz = std::fs::read(sample("h200_llama8_graphs_graphmode_1step")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.sqlite.gz");
    std::fs::write(&truncated, &gz[..gz.len() / 2]).unwrap();
    assert_rejected(&truncated, "gzip");
    let mut bad = gz.clone();
    for b in bad.iter_mut().skip(64).take(4096) {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.sqlite.gz");
    std::fs::write(&corrupt, &bad).unwrap();
    assert_rejected(&corrupt, "gzip");
}

#[test]
fn gzip_larger_than_the_limit_is_refused() {
    let out = Command::cargo_bin("nsys-digest")
        .unwrap()
        .arg(sample("h200_llama8_graphs_graphmode_1step"))
        .args(["--max-decompressed-mb", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the limit"));
}

#[test]
fn sqlite_that_is_not_an_nsys_export() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.sqlite");
    // Hand-made: an ordinary database with no Nsight table.
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute_batch("CREATE TABLE songs(title TEXT); INSERT INTO songs VALUES ('x');")
        .unwrap();
    drop(conn);
    assert_rejected(&p, "not an Nsight Systems export");
}

#[test]
fn nsys_export_without_cuda_tables() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nocuda.sqlite");
    // Hand-made stand-in for a CPU-only capture (the shared third-party
    // Game-of-Life export is the real one, tested when present).
    let conn = rusqlite::Connection::open(&p).unwrap();
    conn.execute_batch(
        "CREATE TABLE StringIds(id INTEGER PRIMARY KEY, value TEXT);
         CREATE TABLE OSRT_API(start INTEGER, end INTEGER, globalTid INTEGER, nameId INTEGER);",
    )
    .unwrap();
    drop(conn);
    assert_rejected(&p, "no CUDA data");
    if let Some(shared) = shared() {
        let real =
            shared.join("thirdparty/nsys/chase-compton__Game-of-Life-in-CUDA__report36.sqlite");
        if real.exists() {
            assert_rejected(&real, "no CUDA data");
        }
    }
}

/// A range text that is not UTF-8, written into a copy of a real sample (no
/// real export has one): the page reader leaves NVTX_EVENTS to SQLite,
/// whose read refuses the text as before.
#[test]
fn nvtx_text_that_is_not_utf8() {
    let (dir, conn) = sample_sql("h200_llama8_eager_1step");
    conn.execute_batch(
        "UPDATE NVTX_EVENTS SET text = CAST(x'ff41' AS TEXT)
         WHERE rowid = (SELECT min(rowid) FROM NVTX_EVENTS WHERE text IS NOT NULL);",
    )
    .unwrap();
    drop(conn);
    assert_rejected(&dir.path().join("s.sqlite"), "invalid utf-8");
}

#[test]
fn missing_path() {
    let p = PathBuf::from("/nonexistent/dir/profile.sqlite");
    let (code, _, err) = run_on(&p);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/dir/profile.sqlite") && err.contains("no such file"),
        "{err}"
    );
}

/// A stream that is neither gzip nor SQLite is refused from its first bytes,
/// before any of it is copied: `/dev/zero` would otherwise fill the temp
/// folder up to the inflate limit.
#[test]
fn an_endless_stream_that_is_no_profile_is_refused_at_once() {
    let temp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        "nsys-digest",
        &["/dev/zero", "--temp-dir", temp.path().to_str().unwrap()],
    );
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/dev/zero: not an SQLite database"), "{err}");
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
}

#[test]
fn works_in_a_read_only_folder_and_leaves_the_file_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("profile.sqlite");
    std::fs::write(&p, inflate(&sample("h200_llama8_graphs_node_1step"))).unwrap();
    let before = std::fs::read(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let (code, out, err) = run_on(&p);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GPU kernels"));
    assert_eq!(std::fs::read(&p).unwrap(), before);
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "nothing created beside the input");
}

#[test]
fn nsys_rep_without_nsys_names_the_export_command() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.nsys-rep");
    // Hand-made: any bytes; the point is that no nsys can be run. NSYS
    // names a program that is not there, so that an nsys installed on the
    // test machine is never found.
    std::fs::write(&p, b"not really a report").unwrap();
    let out = Command::cargo_bin("nsys-digest")
        .unwrap()
        .arg(&p)
        .env("PATH", dir.path())
        .env("NSYS", dir.path().join("nsys"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nsys export --type sqlite"), "{err}");
    assert!(err.contains("NSYS="), "{err}");
    assert_eq!(err.lines().count(), 1);
}
