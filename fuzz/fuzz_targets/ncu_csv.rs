//! The ncu CSV reader, unit table and number parser on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsight_digest::ncu::reader::{read_from, ReadOptions};
use nsight_digest::ncu::units::{parse_number, to_base, DecimalStyle};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions::default();
    let reader = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(file) = read_from(reader, Path::new("fuzz.csv"), &opts) {
        for l in &file.launches {
            let _ = nsight_digest::ncu::derive::derive(l, &Default::default());
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for style in [DecimalStyle::Auto, DecimalStyle::Comma] {
            let _ = parse_number(text, style);
        }
        let _ = to_base(text);
    }
});
