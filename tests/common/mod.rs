//! Helpers shared by the tests: sample paths and ground-truth CSV access.

use nsight_digest::nsys::{digest, Digest, DigestOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The samples committed with the project, all with ground truth in tests/data.
pub const SAMPLES: &[&str] = &[
    "h200_llama8_eager_1step",
    "h200_llama8_eager_3steps",
    "h200_llama8_graphs_node_1step",
    "h200_llama8_graphs_graphmode_1step",
    "h200_llama8_graphs_node_3steps",
    "h200_llama8_graphs_node_capture_before_profile",
    "h200_llama8_piecewise_node_1step",
    "h200_llama8_2procs_graphs_node_1step",
    "h200_llama8_2procs_graphs_graphmode_1step",
    "h200_nccl_onerank_allreduce_overlap",
    "h200_nvtx_domains_threads",
];

/// Runs one of the binaries to its end: exit code, stdout and stderr. Two
/// minutes at most, so that a hang fails the test instead of stalling it.
pub fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::cargo_bin(bin)
        .unwrap()
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample(name: &str) -> PathBuf {
    repo().join("samples").join(format!("{name}.sqlite.gz"))
}

/// A gzipped file's text, inflated in memory.
pub fn inflate(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `../shared` beside the checkout, when this machine has it.
pub fn shared() -> Option<PathBuf> {
    let p = repo().join("..").join("shared");
    p.is_dir().then_some(p)
}

/// Inflate a committed sample to a temp file for direct SQL.
pub fn sample_sql(sample_name: &str) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    std::fs::write(&path, inflate(&sample(sample_name))).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    (dir, conn)
}

pub fn digest_sample(name: &str, opts: &DigestOptions) -> Digest {
    digest(&sample(name), opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One ground-truth CSV as rows of header → cell.
pub fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    csv_rows(file)
}

/// CSV text as rows of header → cell; ragged rows keep the cells they have.
pub fn csv_rows(input: impl std::io::Read) -> Vec<HashMap<String, String>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `tests/data/<sample>.<report>.csv`, or `.csv.gz` where the plain file
/// would be large (the 451k-kernel export's).
pub fn groundtruth(sample: &str, report: &str) -> Vec<HashMap<String, String>> {
    let plain = repo()
        .join("tests/data")
        .join(format!("{sample}.{report}.csv"));
    if plain.exists() {
        return read_csv(&plain);
    }
    let gz = plain.with_extension("csv.gz");
    let file = std::fs::File::open(&gz).unwrap_or_else(|e| panic!("{}: {e}", gz.display()));
    csv_rows(flate2::read::GzDecoder::new(file))
}

pub fn int(row: &HashMap<String, String>, col: &str) -> i64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col}={:?}: {e}", row[col]))
}

/// A value printed with one decimal, as tenths.
pub fn tenths(row: &HashMap<String, String>, col: &str) -> i64 {
    let v: f64 = row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col}={:?}: {e}", row[col]));
    (v * 10.0).round() as i64
}

/// Our value rounded the way nsys prints it, as tenths.
pub fn our_tenths(v: f64) -> i64 {
    (nsight_digest::stats::round1(v) * 10.0).round() as i64
}

/// Digest `file` whole and with a time filter from the earliest timestamp
/// on, which every row overlaps: the two must agree on everything but the
/// filter. (`0/` would not do: a hand-made fixture starts a call at −3 µs.)
pub fn assert_open_window_changes_nothing(file: &Path) {
    use nsight_digest::nsys::time_filter::TraceFilter;
    let json = |opts: &DigestOptions| match digest(file, opts) {
        Ok(d) => {
            let mut v = serde_json::to_value(d).unwrap();
            v["source"]["filter"] = serde_json::Value::Null;
            // A filtered digest gives no --filter-nvtx index: it would be
            // a rank among the rows kept, not the file's.
            for step in v["steps"].as_array_mut().unwrap() {
                step["filter_index"] = serde_json::Value::Null;
            }
            Some(v)
        }
        Err(_) => None,
    };
    let whole = json(&DigestOptions::default());
    let open = json(&DigestOptions {
        filter: Some(TraceFilter::parse_time(&format!("{}/", i64::MIN)).unwrap()),
        ..DigestOptions::default()
    });
    assert!(whole == open, "{}", file.display());
}
