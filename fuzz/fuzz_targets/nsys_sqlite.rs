//! The nsys loader and every report on mutated SQLite exports. Seed the
//! corpus with `fuzz/seed.py` (a trimmed copy of a committed sample).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsight_digest::nsys::{digest, DigestOptions};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.sqlite");
    std::fs::write(&path, data).unwrap();
    let _ = digest(&path, &DigestOptions::default());
});
