//! The NVTX cell, step-name and layer-path parsers on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsight_digest::ncu::reader::parse_nvtx_cell;
use nsight_digest::nsys::llm::{parse_layer, parse_step};

fuzz_target!(|text: &str| {
    let _ = parse_nvtx_cell(text, false);
    let _ = parse_nvtx_cell(text, true);
    let _ = parse_step(text, None);
    if let Some(l) = parse_layer(text) {
        assert!(l.layer_type.contains('*'));
    }
});
