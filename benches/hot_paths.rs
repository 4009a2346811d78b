//! criterion benchmarks of the inner pieces that dominate large inputs:
//! the kernel and runtime tables read from the file's pages (against SQLite,
//! in the same run), the NVTX interval index (containment sweep) and the ncu
//! number/unit parsing and CSV reading. Whole-process timings are in
//! bench/compare.sh.

use criterion::{criterion_group, criterion_main, Criterion};
use nsight_digest::input::{open_profile, InputOptions};
use nsight_digest::ncu::reader::{read_from, ReadOptions};
use nsight_digest::ncu::units::{parse_number, to_base, DecimalStyle};
use nsight_digest::nsys::launch_index::LaunchIndex;
use nsight_digest::nsys::nvtx_index::NvtxIndex;
use nsight_digest::nsys::trace::{NameStyle, RowReader, Trace};
use std::hint::black_box;
use std::io::Read;
use std::path::Path;

fn nvtx_index(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/h200_llama8_eager_3steps.sqlite.gz");
    let profile = open_profile(&path, &InputOptions::default()).unwrap();
    let trace = Trace::load(&profile, NameStyle::Demangled).unwrap();
    let launches = LaunchIndex::build(&trace);
    c.bench_function("launch_index 58k kernels", |b| {
        b.iter(|| black_box(LaunchIndex::build(&trace)))
    });
    c.bench_function("nvtx_index 58k kernels x 4.3k ranges", |b| {
        b.iter(|| black_box(NvtxIndex::build(&trace, &launches)))
    });
}

fn big_tables(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/h200_llama8_eager_3steps.sqlite.gz");
    let profile = open_profile(&path, &InputOptions::default()).unwrap();
    let mut group = c.benchmark_group("kernel and runtime tables, 58k + 123k rows");
    for (name, reader) in [
        ("pages", RowReader::Pages),
        ("sqlite aggregate", RowReader::Sqlite),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(Trace::read_big_tables(&profile, reader).unwrap()))
        });
    }
    group.finish();
}

fn ncu_parsing(c: &mut Criterion) {
    let cells = [
        "61,796",
        "3,432,900,296,150.05",
        "0.000085",
        "1.234,5",
        "no data",
        "100",
        "27.595.520",
    ];
    c.bench_function("parse_number x7", |b| {
        b.iter(|| {
            for s in cells {
                black_box(parse_number(black_box(s), DecimalStyle::Auto));
            }
        })
    });
    let units = [
        "Mbyte",
        "us",
        "Tbyte/s",
        "Ghz",
        "cycle/nsecond",
        "%",
        "Kbyte/cycle",
    ];
    c.bench_function("to_base x7", |b| {
        b.iter(|| {
            for u in units {
                black_box(to_base(black_box(u)));
            }
        })
    });
    let mut text = Vec::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/ncu/h200_llama4L_memmetrics_525kernels.details.csv.gz");
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let mut group = c.benchmark_group("ncu read");
    group.throughput(criterion::Throughput::Bytes(text.len() as u64));
    group.bench_function("details page, 525 launches", |b| {
        b.iter(|| {
            let reader = Box::new(std::io::Cursor::new(text.clone()));
            black_box(read_from(reader, Path::new("bench.csv"), &ReadOptions::default()).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, big_tables, nvtx_index, ncu_parsing);
criterion_main!(benches);
