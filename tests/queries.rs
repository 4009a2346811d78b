//! Every SQL query prepares against every export it applies to: the
//! committed samples, and the shared and third-party exports when present.
//! `prepare` fails on an unknown table or column, so schema drift shows here.

use crate::common::*;
use nsight_digest::input::{open_profile, open_readonly, InputOptions};
use nsight_digest::nsys::int_rows;
use nsight_digest::nsys::queries::ALL;
use nsight_digest::nsys::schema::Schema;
use std::path::PathBuf;

fn exports() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = SAMPLES.iter().map(|s| sample(s)).collect();
    if let Some(shared) = shared() {
        for dir in ["thirdparty/nsys"] {
            if let Ok(entries) = std::fs::read_dir(shared.join(dir)) {
                files.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "sqlite")),
                );
            }
        }
    }
    files
}

#[test]
fn every_query_prepares_where_its_tables_exist() {
    let mut prepared = 0;
    for file in exports() {
        let profile = open_profile(&file, &InputOptions::default()).unwrap();
        let conn = open_readonly(&profile).unwrap();
        let schema = match Schema::read(&conn, &file) {
            Ok(s) => s,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        for q in ALL {
            if schema.supports(q) {
                let prepared_ok = if q.sql.contains("digest_rows(") {
                    int_rows::check_prepares(&conn, q.sql)
                } else {
                    conn.prepare(q.sql).map(drop)
                };
                prepared_ok.unwrap_or_else(|e| panic!("{} on {}: {e}", q.name, file.display()));
                prepared += 1;
            }
        }
    }
    assert!(prepared > 50, "only {prepared} preparations ran");
}

#[test]
fn every_query_file_is_registered() {
    let dir = repo().join("queries");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = ALL.iter().map(|q| q.name.to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered);
}
