//! ncu-digest on the real Nsight Compute exports. Expected values are read
//! from the raw cells of the base-unit raw page by this test itself (plain
//! CSV reading, commas stripped), never typed in.

use crate::common::*;
use nsight_digest::categories::Categories;
use nsight_digest::diff::{document, DEFAULT_DIFF_TOP};
use nsight_digest::ncu::compare::compare;
use nsight_digest::ncu::derive::bound_of;
use nsight_digest::ncu::{digest, nvtx_key, Group, NameFilter, NcuDigest, NcuOptions};
use nsight_digest::render::Cell;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

fn ncu_sample(name: &str) -> PathBuf {
    repo().join("samples/ncu").join(format!("{name}.csv.gz"))
}

/// A committed sample's path, as a command-line argument.
fn ncu_arg(name: &str) -> String {
    ncu_sample(name).display().to_string()
}

fn digest_file(path: &Path, opts: &NcuOptions) -> NcuDigest {
    digest(path, opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The raw page as header → cell maps, units row included as row 0.
fn raw_cells(path: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ))
}

/// The raw page's launch rows (the units row left out), by launch ID.
fn cells_by_id(cells: &[HashMap<String, String>]) -> HashMap<u64, &HashMap<String, String>> {
    cells[1..]
        .iter()
        .map(|row| (row["ID"].parse().unwrap(), row))
        .collect()
}

fn number(cell: &str) -> Option<f64> {
    cell.replace(',', "").parse().ok()
}

/// Half a unit in the last printed digit of an auto-scaled details value
/// (two decimals in the unit that puts the value in [1, 1000)).
fn details_tolerance(v: f64) -> f64 {
    let mut scale = 1.0;
    while v.abs() >= scale * 1000.0 {
        scale *= 1000.0;
    }
    0.005 * scale + 1e-9
}

/// Half a unit in the sixth decimal of a raw-page column's unit.
fn raw_tolerance(unit: &str) -> f64 {
    let scale = match unit {
        "Kbyte" | "us" => 1e3,
        "Mbyte" | "ms" => 1e6,
        "Gbyte" => 1e9,
        _ => 1.0,
    };
    5e-7 * scale + 1e-9
}

struct Layouts {
    details: NcuDigest,
    raw: NcuDigest,
    base: NcuDigest,
    cells: Vec<HashMap<String, String>>,
    raw_units: HashMap<String, String>,
}

fn layouts(stem: &str) -> Layouts {
    let opts = NcuOptions::default();
    let raw_auto = raw_cells(&ncu_sample(&format!("{stem}.raw")));
    Layouts {
        details: digest_file(&ncu_sample(&format!("{stem}.details")), &opts),
        raw: digest_file(&ncu_sample(&format!("{stem}.raw")), &opts),
        base: digest_file(&ncu_sample(&format!("{stem}.raw_baseunits")), &opts),
        cells: raw_cells(&ncu_sample(&format!("{stem}.raw_baseunits"))),
        raw_units: raw_auto[0].clone(),
    }
}

type Getter = fn(&nsight_digest::ncu::derive::LaunchMetrics) -> Option<f64>;

fn assert_layouts_agree(stem: &str, checks: &[(&str, Getter, bool)]) {
    let l = layouts(stem);
    let by_id = |d: &NcuDigest| -> HashMap<u64, nsight_digest::ncu::derive::LaunchMetrics> {
        d.launches.iter().map(|x| (x.id, x.clone())).collect()
    };
    let (details, raw, base) = (by_id(&l.details), by_id(&l.raw), by_id(&l.base));
    let rows = &l.cells[1..];
    assert_eq!(base.len(), rows.len(), "{stem}: launches");
    assert_eq!(details.len(), rows.len(), "{stem}: details launches");
    assert_eq!(raw.len(), rows.len(), "{stem}: raw launches");
    for row in rows {
        let id: u64 = row["ID"].parse().unwrap();
        for &(metric, get, in_details) in checks {
            let want = number(&row[metric]).unwrap_or_else(|| panic!("{stem} {id} {metric}"));
            let ctx = format!("{stem} id {id} {metric}");
            assert_eq!(get(&base[&id]), Some(want), "{ctx}: base units");
            let r = get(&raw[&id]).unwrap_or_else(|| panic!("{ctx}: raw"));
            assert!(
                (r - want).abs() <= raw_tolerance(&l.raw_units[metric]),
                "{ctx}: raw {r} vs {want}"
            );
            if in_details {
                let d = get(&details[&id]).unwrap_or_else(|| panic!("{ctx}: details"));
                assert!(
                    (d - want).abs() <= details_tolerance(want),
                    "{ctx}: details {d} vs {want}"
                );
            }
        }
    }
}

/// Duration and DRAM bytes, which the memory-metrics captures hold in every
/// layout.
const MEMMETRICS: [(&str, Getter, bool); 3] = [
    ("gpu__time_duration.sum", |l| l.duration_ns, true),
    ("dram__bytes_read.sum", |l| l.dram_read_bytes, true),
    ("dram__bytes_write.sum", |l| l.dram_write_bytes, true),
];

#[test]
fn memmetrics_layouts_agree_with_raw_cells() {
    assert_layouts_agree("h200_llama4L_memmetrics_525kernels", &MEMMETRICS);
}

/// The before/after pair: the same metrics in every layout, as above.
#[test]
fn batch_pair_layouts_agree_with_raw_cells() {
    for batch in ["batch8", "batch16"] {
        assert_layouts_agree(
            &format!("h200_llama2L_memmetrics_60kernels_{batch}"),
            &MEMMETRICS,
        );
    }
}

#[test]
fn fullset_layouts_agree_with_raw_cells() {
    // The details page of a --set full run has no DRAM byte rows.
    assert_layouts_agree(
        "h200_llama2L_fullset_40kernels",
        &[
            ("gpu__time_duration.sum", |l| l.duration_ns, true),
            ("dram__bytes_read.sum", |l| l.dram_read_bytes, false),
            ("dram__bytes_write.sum", |l| l.dram_write_bytes, false),
        ],
    );
}

#[test]
fn efficiencies_are_equal_in_every_layout() {
    let l = layouts("h200_llama4L_memmetrics_525kernels");
    let round2 = |v: Option<f64>| v.map(|x| (x * 100.0).round() / 100.0);
    let mut compared = 0;
    for row in &l.cells[1..] {
        let id: u64 = row["ID"].parse().unwrap();
        let find = |d: &NcuDigest| d.launches.iter().find(|x| x.id == id).cloned().unwrap();
        let (d, r, b) = (find(&l.details), find(&l.raw), find(&l.base));
        for (metric, get) in [
            (
                "smsp__sass_average_data_bytes_per_sector_mem_global_op_ld.pct",
                (|x: &nsight_digest::ncu::derive::LaunchMetrics| x.ld_efficiency_pct) as Getter,
            ),
            (
                "smsp__sass_average_data_bytes_per_sector_mem_global_op_st.pct",
                |x| x.st_efficiency_pct,
            ),
        ] {
            let want = number(&row[metric]);
            assert_eq!(get(&b), want, "{id} {metric}");
            assert_eq!(get(&d), want, "{id} {metric} details");
            assert_eq!(round2(get(&r)), want, "{id} {metric} raw");
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * 525);
}

#[test]
fn nvtx_rename_names_are_unprefixed_and_grouped_by_range() {
    let plain = digest_file(
        &ncu_sample("h200_llama2L_fullset_40kernels.details"),
        &NcuOptions::default(),
    );
    let renamed = digest_file(
        &ncu_sample("h200_llama2L_fullset_40kernels.details_nvtxrename"),
        &NcuOptions::default(),
    );
    assert_eq!(plain.launches.len(), renamed.launches.len());
    for (p, r) in plain.launches.iter().zip(&renamed.launches) {
        assert_eq!(p.nvtx, r.nvtx, "id {}", p.id);
        if let Some(inner) = r.nvtx.last() {
            assert!(!r.kernel.starts_with(&format!("{inner}/")), "{}", r.kernel);
        }
    }
    assert!(plain
        .launches
        .iter()
        .any(|l| l.nvtx.iter().any(|n| n.starts_with("execute_context_"))));
}

fn attention_kernels_in_cells(path: &Path) -> BTreeSet<String> {
    raw_cells(path)[1..]
        .iter()
        .map(|r| r["Kernel Name"].clone())
        .filter(|k| {
            let l = k.to_lowercase();
            l.contains("sdpa") || l.contains("flash")
        })
        .collect()
}

#[test]
fn kernel_attention_lists_exactly_the_sdpa_flash_kernels() {
    let categories = Categories::default();
    let opts = NcuOptions {
        kernel: Some(NameFilter::parse("attention", Some(&categories)).unwrap()),
        ..Default::default()
    };
    for stem in [
        "h200_llama4L_memmetrics_525kernels.raw_baseunits",
        "h200_llama2L_fullset_40kernels.raw_baseunits",
    ] {
        let path = ncu_sample(stem);
        let want = attention_kernels_in_cells(&path);
        // The 40-kernel sample stops before the first attention kernel.
        assert_eq!(want.is_empty(), stem.contains("40kernels"), "{stem}");
        let got: BTreeSet<String> = digest_file(&path, &opts)
            .launches
            .iter()
            .map(|l| l.kernel.clone())
            .collect();
        assert_eq!(got, want, "{stem}");
    }
}

#[test]
fn aggregation_sums_and_weights_the_launches() {
    let d = digest_file(
        &ncu_sample("h200_llama4L_memmetrics_525kernels.raw_baseunits"),
        &NcuOptions::default(),
    );
    let total: f64 = d.launches.iter().filter_map(|l| l.duration_ns).sum();
    let agg: f64 = d.kernels.iter().filter_map(|k| k.duration_ns).sum();
    assert!((total - agg).abs() < 1e-6);
    assert!(
        d.kernels
            .windows(2)
            .all(|w| w[0].duration_ns >= w[1].duration_ns),
        "ranked by duration"
    );
    for k in &d.kernels {
        let members: Vec<_> = d
            .launches
            .iter()
            .filter(|l| Some(&l.kernel) == k.kernel.as_ref())
            .collect();
        assert_eq!(k.launches as usize, members.len());
        let bytes: f64 = members.iter().filter_map(|l| l.dram_bytes).sum();
        let dur: f64 = members.iter().filter_map(|l| l.duration_ns).sum();
        let bw = k.dram_bandwidth_bytes_per_s.unwrap();
        assert!(
            (bw - bytes / (dur / 1e9)).abs() <= bw * 1e-9,
            "{:?}",
            k.kernel
        );
        let read: f64 = members.iter().filter_map(|l| l.dram_read_bytes).sum();
        assert_eq!(k.dram_read_bytes, Some(read));
    }
    // The raw page carries the device attributes: peak from the bus.
    let peak = d.launches[0].peak_bandwidth_bytes_per_s.unwrap();
    let cells = &raw_cells(&ncu_sample(
        "h200_llama4L_memmetrics_525kernels.raw_baseunits",
    ))[1];
    let khz = number(&cells["device__attribute_max_mem_frequency_khz"]).unwrap();
    let bits = number(&cells["device__attribute_global_memory_bus_width"]).unwrap();
    assert_eq!(peak, 2.0 * khz * 1e3 * bits / 8.0);
}

fn shared_ncu_files() -> Vec<PathBuf> {
    let Some(shared) = shared() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for dir in [
        "samples/ncu/llama",
        "samples/ncu/probe",
        "thirdparty/ncu",
        "thirdparty/ncu/groundtruth",
    ] {
        if let Ok(rd) = std::fs::read_dir(shared.join(dir)) {
            files.extend(rd.flatten().map(|e| e.path()).filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".csv") || n.ends_with(".csv.gz")
            }));
        }
    }
    files.sort();
    files
}

/// Launch IDs in a CSV, counted by this test from the ID column.
fn ids_in(path: &Path) -> BTreeSet<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        bytes = out;
    }
    let text = String::from_utf8_lossy(&bytes);
    let start = text.find("\"ID\",").unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text[start..].as_bytes());
    reader
        .records()
        .filter_map(|r| r.ok())
        .filter_map(|r| r.get(0).map(str::to_string))
        .filter(|id| !id.is_empty())
        .collect()
}

#[test]
fn every_shared_and_thirdparty_csv_parses_or_is_named_a_summary() {
    let files = shared_ncu_files();
    let (mut parsed, mut summaries) = (0, 0);
    for f in &files {
        match digest(f, &NcuOptions::default()) {
            Ok(d) => {
                assert_eq!(
                    d.source.launches_read as usize,
                    ids_in(f).len(),
                    "{}",
                    f.display()
                );
                parsed += 1;
            }
            Err(e) => {
                let name = f.to_string_lossy();
                assert!(name.contains("sum"), "{}: {e}", f.display());
                assert!(e.to_string().contains("--print-summary"), "{e}");
                summaries += 1;
            }
        }
    }
    if !files.is_empty() {
        assert!(
            parsed >= 30 && summaries >= 4,
            "parsed {parsed}, summaries {summaries}"
        );
    }
}

#[test]
fn old_2020_csv_equals_its_2022_reexport() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("thirdparty/ncu");
    let Some(csv2020) = std::fs::read_dir(&dir).ok().and_then(|rd| {
        rd.flatten().map(|e| e.path()).find(|p| {
            p.to_string_lossy()
                .contains("dgdxy__20200827_182742__profile__ncuroof-time-0.csv")
        })
    }) else {
        return;
    };
    let name = csv2020
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".csv", ".ncu-rep.ncu2022.3.base.csv");
    let base2022 = dir.join("groundtruth").join(name);
    let a = digest_file(&csv2020, &NcuOptions::default());
    let b = digest_file(&base2022, &NcuOptions::default());
    let bytes = |d: &NcuDigest| {
        d.launches
            .iter()
            .map(|l| (l.id, l.dram_bytes))
            .collect::<Vec<_>>()
    };
    assert_eq!(bytes(&a), bytes(&b));
    assert!(a.launches.iter().all(|l| l.dram_bytes.is_some()));
    // Neither has gpu__time_duration: both take it from SM cycles ÷ SM
    // clock, recomputed here from the 2020 file's own cells.
    let mut cycles: HashMap<u64, [f64; 2]> = HashMap::new();
    for row in csv_rows(std::fs::File::open(&csv2020).unwrap()) {
        let at = match row["Metric Name"].as_str() {
            "sm__cycles_elapsed.avg" => 0,
            "sm__cycles_elapsed.avg.per_second" => 1,
            _ => continue,
        };
        cycles.entry(row["ID"].parse().unwrap()).or_default()[at] =
            number(&row["Metric Value"]).unwrap();
    }
    for (x, y) in a.launches.iter().zip(&b.launches) {
        let [c, hz] = cycles[&x.id];
        assert_eq!(x.duration_ns, Some(c / hz * 1e9), "id {}", x.id);
        assert!(x.duration_from_cycles && y.duration_from_cycles);
        let (dx, dy) = (x.duration_ns.unwrap(), y.duration_ns.unwrap());
        assert!((dx / dy - 1.0).abs() < 1e-9, "id {}: {dx} vs {dy}", x.id);
    }
}

/// The roofline capture follows NERSC's recipe: SM cycles and their rate,
/// DRAM bytes and FLOP counts, no `gpu__time_duration`. Its details page
/// has only those, so each launch's duration is SM cycles ÷ SM clock, and
/// the legend says so; the raw page of the same report also holds the
/// duration ncu measured, which the derived one must equal to 0.001 %.
/// Bandwidth then follows from the page's own DRAM bytes.
#[test]
fn a_capture_without_durations_takes_them_from_sm_cycles() {
    let stem = "h200_llama2L_roofline_60kernels";
    let details_path = ncu_sample(&format!("{stem}.details_baseunits"));
    let details = digest_file(&details_path, &NcuOptions::default());
    let raw = digest_file(
        &ncu_sample(&format!("{stem}.raw_baseunits")),
        &NcuOptions::default(),
    );
    let cells = raw_cells(&ncu_sample(&format!("{stem}.raw_baseunits")));
    let by_id = cells_by_id(&cells);
    assert!(details.source.duration_from_cycles && !raw.source.duration_from_cycles);
    assert_eq!(details.launches.len(), by_id.len());
    for l in &details.launches {
        let row = by_id[&l.id];
        let measured = number(&row["gpu__time_duration.sum"]).unwrap();
        let derived = l
            .duration_ns
            .unwrap_or_else(|| panic!("id {}: no duration", l.id));
        assert!(l.duration_from_cycles, "id {}", l.id);
        assert!(
            (derived / measured - 1.0).abs() < 1e-5,
            "id {}: {derived} ns from cycles, {measured} ns measured",
            l.id
        );
        let bytes = number(&row["dram__bytes.sum"]).unwrap();
        let bandwidth = l.dram_bandwidth_bytes_per_s.unwrap();
        assert!(
            (bandwidth / (bytes / (measured / 1e9)) - 1.0).abs() < 1e-5,
            "id {}",
            l.id
        );
    }
    assert!(raw.launches.iter().all(|l| !l.duration_from_cycles));
    let (code, out, err) = run("ncu-digest", &[&details_path.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("duration: SM elapsed cycles ÷ SM clock"),
        "{out}"
    );
    let (_, out, _) = run("ncu-digest", &[&ncu_arg(&format!("{stem}.raw_baseunits"))]);
    assert!(!out.contains("duration: SM elapsed cycles"), "{out}");
}

/// Without SM %, a launch gets no verdict: DRAM % alone cannot tell a
/// memory-bound kernel from a compute-bound one at low DRAM use. The
/// roofline capture's raw page has DRAM bytes, a duration and the device's
/// peak, so DRAM %, but no Speed Of Light: every verdict is absent, and the
/// legend says what to collect. Its one GEMM launch (nvjet) runs at 17 % of
/// DRAM peak, which by DRAM % alone would read as latency-bound.
#[test]
fn no_verdict_without_sm_percent() {
    let d = digest_file(
        &ncu_sample("h200_llama2L_roofline_60kernels.raw_baseunits"),
        &NcuOptions::default(),
    );
    assert!(d
        .launches
        .iter()
        .all(|l| l.dram_peak_pct.is_some() && l.sm_peak_pct.is_none()));
    assert!(d.launches.iter().all(|l| l.bound.is_none()));
    assert!(d.kernels.iter().all(|k| k.bound.is_none()) && d.total.bound.is_none());
    assert!(d
        .notes
        .iter()
        .any(|n| n.contains("the bound verdict: collect --section SpeedOfLight")));
}

#[test]
fn csv_output_has_the_documented_columns() {
    let f = ncu_arg("h200_llama4L_memmetrics_525kernels.raw_baseunits");
    let (code, out, err) = run("ncu-digest", &[&f, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().next(),
        Some("kernel,launches,duration_ns,dram_read_bytes,dram_write_bytes,dram_bandwidth_bytes_per_s,dram_peak_pct,sm_peak_pct,ld_efficiency_pct,st_efficiency_pct,bound")
    );
    let (_, out, _) = run("ncu-digest", &[&f, "--format", "csv", "--per-launch"]);
    assert!(out
        .lines()
        .next()
        .unwrap()
        .starts_with("id,kernel,duration_ns,"));
    assert_eq!(out.lines().count(), 1 + 525);
    let (_, out, _) = run(
        "ncu-digest",
        &[&f, "--format", "json", "--group", "kernel+nvtx"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["kernels"][0]["nvtx"].is_string() && v["kernels"][0]["kernel"].is_string());
    assert!(v["rule"].as_str().unwrap().contains("latency"));
}

/// `ncu-digest FILE --format json --per-launch ARGS`, which must succeed.
fn per_launch_json(file: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec![file, "--format", "json", "--per-launch"];
    all.extend_from_slice(args);
    let (code, out, err) = run("ncu-digest", &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn peak_override_and_nvtx_filter() {
    let f = ncu_arg("h200_llama2L_fullset_40kernels.details");
    let v = per_launch_json(&f, &["--peak-bandwidth", "4.8TB/s", "--nvtx", "self_attn"]);
    let launches = v["launches"].as_array().unwrap();
    assert!(!launches.is_empty());
    for l in launches {
        assert_eq!(l["peak_bandwidth_bytes_per_s"], 4.8e12);
        assert!(l["nvtx"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("self_attn")));
    }
}

/// Asked for by NVTX range, a file whose launches have none says so, rather
/// than printing an empty table alone; a file with ranges that match
/// nothing does not. The first file is another project's export (skipped
/// without `../shared`).
#[test]
fn a_file_without_nvtx_ranges_says_so_when_asked_by_range() {
    let hint = "no launch in this file is inside one";
    let with_ranges = ncu_sample("h200_llama4L_memmetrics_525kernels.raw");
    let (code, out, err) = run(
        "ncu-digest",
        &[
            &with_ranges.display().to_string(),
            "--nvtx",
            "no_such_range",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("0 selected of 525 read") && !out.contains(hint),
        "{out}"
    );
    let Some(shared) = shared() else { return };
    let without =
        shared.join("thirdparty/ncu/microsoft__superbenchmark__tests__data__cublaslt_ncu.log.csv");
    let file = without.display().to_string();
    let text = std::fs::read_to_string(&without).unwrap();
    assert!(!text.to_lowercase().contains("nvtx"), "no NVTX column");
    for args in [vec!["--nvtx", "x"], vec!["--group", "nvtx"]] {
        let (code, out, err) = run("ncu-digest", &[&[file.as_str()], &args[..]].concat());
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("NVTX ranges    {hint}")),
            "{args:?}: {out}"
        );
        let v = per_launch_json(&file, &args);
        assert!(v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(hint)));
    }
    let (_, out, _) = run("ncu-digest", &[&file]);
    assert!(!out.contains(hint), "not asked by range: {out}");
}

/// Every spelling `--help` offers gives the same peak; a zero, negative
/// or unit-less-but-wrong one is refused in one line.
#[test]
fn peak_bandwidth_spellings() {
    let f = ncu_arg("h200_llama2L_fullset_40kernels.raw");
    let peak_of = |rate: &str| {
        let v = per_launch_json(&f, &[&format!("--peak-bandwidth={rate}")]);
        v["launches"][0]["peak_bandwidth_bytes_per_s"]
            .as_f64()
            .unwrap()
    };
    for rate in ["4.8TB/s", "4800GB/s", "4.8e12", "4.8E+12", "4800000000000"] {
        assert!((peak_of(rate) - 4.8e12).abs() < 1.0, "{rate}");
    }
    for rate in ["0", "0TB/s", "-5TB/s", "5TB", "fast"] {
        let (code, out, err) = run("ncu-digest", &[&f, &format!("--peak-bandwidth={rate}")]);
        assert_eq!((code, out.as_str()), (2, ""), "{rate}: {err}");
        assert!(
            err.starts_with("ncu-digest: error: --peak-bandwidth"),
            "{rate}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{rate}: {err}");
    }
}

/// `--gpu` only picks a datasheet peak: a name the table lacks is refused
/// instead of being ignored, and a known one still reads.
#[test]
fn an_unknown_gpu_name_is_refused() {
    let f = ncu_arg("h200_llama2L_fullset_40kernels.raw");
    let (code, out, err) = run("ncu-digest", &[&f, "--gpu", "Z9000"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--gpu \"Z9000\": not in the datasheet table"),
        "{err}"
    );
    let (code, _, err) = run("ncu-digest", &[&f, "--gpu", "Tesla V100-SXM2-16GB"]);
    assert_eq!(code, 0, "{err}");
}

fn cut_in_half(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(ncu_sample(name)).unwrap();
    bytes[..bytes.len() / 2].to_vec()
}

/// A real export inflated and cut in the middle of a row, as an
/// interrupted copy leaves it.
fn cut_mid_row(name: &str) -> Vec<u8> {
    let mut text = inflate(&ncu_sample(name));
    let mut end = text.len() / 2;
    while text[end - 1] == b'\n' || text[end - 1] == b'\r' {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// Broken inputs, hand-made or a real export cut short: no real file shows
/// these cases.
/// A real export followed by more than the longest line the reader takes.
fn endless_row(name: &str) -> Vec<u8> {
    let mut text = inflate(&ncu_sample(name));
    text.extend(std::iter::repeat_n(b'x', 17 << 20));
    text
}

#[test]
fn bad_csv_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", b"".to_vec(), "empty"),
        ("junk.csv", b"hello\nworld\n".to_vec(), "no Nsight Compute CSV header"),
        ("header.csv", b"\"ID\",\"Kernel Name\",\"Metric Name\",\"Metric Unit\",\"Metric Value\"\n".to_vec(), "no launch rows"),
        ("quotes.csv", b"\"ID\",\"Kernel Name\",\"Metric Name\",\"Metric Value\"\n\"0\",\"k,\"Duration\",\"1\n".to_vec(), "no launch rows"),
        ("corrupt.csv.gz", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7], "gzip"),
        // A real export cut in half: the error comes after thousands of rows.
        ("cut.csv.gz", cut_in_half("h200_llama4L_memmetrics_525kernels.details"), "gzip"),
        // The same, inflated: the last row's cells would read wrong.
        ("cut.csv", cut_mid_row("h200_llama4L_memmetrics_525kernels.details"), "cut short"),
        ("cut_raw.csv", cut_mid_row("h200_llama4L_memmetrics_525kernels.raw"), "cut short"),
        // Hand-made: a real export whose rows run on into 17 MiB of bytes
        // without a line break, as if binary data were appended.
        ("endless.csv", endless_row("h200_llama4L_memmetrics_525kernels.details"), "runs past 16 MiB"),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let (code, out, err) = run(
            "ncu-digest",
            &[&p.display().to_string(), "--format", "json"],
        );
        assert_eq!(code, 2, "{name}: {err}");
        assert_eq!(out, "", "{name}: nothing on stdout");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        assert!(!err.contains("panicked"));
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} untouched");
    }
    let (code, _, err) = run("ncu-digest", &["/nonexistent/profile.csv"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such file"), "{err}");
    // Never ends and never breaks a line: refused at the line limit, not
    // read into memory for ever.
    let (code, out, err) = run("ncu-digest", &["/dev/zero"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("/dev/zero: a line runs past"), "{err}");
}

/// A real export re-encoded with a BOM and CRLF line ends (as Windows tools
/// save it) reads the same.
#[test]
fn bom_and_crlf_read_the_same() {
    let src = ncu_sample("h200_llama4L_memmetrics_525kernels.details");
    let text = String::from_utf8(inflate(&src)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bom.csv");
    std::fs::write(&p, format!("\u{feff}{}", text.replace('\n', "\r\n"))).unwrap();
    let a = digest_file(&src, &NcuOptions::default());
    let b = digest_file(&p, &NcuOptions::default());
    assert_eq!(a.launches.len(), b.launches.len());
    assert_eq!(
        a.kernels.iter().map(|k| k.duration_ns).collect::<Vec<_>>(),
        b.kernels.iter().map(|k| k.duration_ns).collect::<Vec<_>>()
    );
}

/// Peak bandwidth from the details page (Memory Workload Analysis rate ÷
/// Speed Of Light DRAM %) agrees with ncu's own DRAM roof on the raw page,
/// computed here from the raw cells.
#[test]
fn details_peak_matches_the_raw_dram_roof() {
    let details = digest_file(
        &ncu_sample("h200_llama2L_fullset_40kernels.details"),
        &NcuOptions::default(),
    );
    let cells = raw_cells(&ncu_sample("h200_llama2L_fullset_40kernels.raw_baseunits"));
    let mut checked = 0;
    for l in &details.launches {
        let row = cells[1..]
            .iter()
            .find(|r| r["ID"] == l.id.to_string())
            .unwrap();
        let roof = number(&row["dram__bytes.sum.peak_sustained"]).unwrap()
            * number(&row["dram__cycles_elapsed.avg.per_second"]).unwrap();
        let peak = l
            .peak_bandwidth_bytes_per_s
            .expect("every launch gets a peak");
        // Launches that load DRAM by 1 % or more derive their own peak; the
        // rest share the file's best one, and the roof moves with the DRAM
        // clock of each launch (profiled with --clock-control none).
        let tolerance = if l.dram_peak_pct.unwrap() >= 1.0 {
            0.01
        } else {
            0.03
        };
        assert!(
            (peak / roof - 1.0).abs() < tolerance,
            "id {}: {peak} vs roof {roof}",
            l.id
        );
        checked += 1;
    }
    assert_eq!(checked, 40);
}

/// A load or store efficiency of exactly 0 % is ncu's value for a launch
/// that made no such global access (among them this capture's
/// flash-attention kernels, which copy through TMA or cp.async, as the
/// instcounts capture below counts): a group's mean leaves those
/// launches out, is absent when every launch is one, and the legend says so.
/// Per kernel no group mixes the two; per NVTX range most do. The means are
/// recomputed here from the raw cells, by launch ID.
#[test]
fn efficiency_means_leave_out_launches_without_global_access() {
    let stem = "h200_llama4L_memmetrics_525kernels.raw_baseunits";
    let cells = raw_cells(&ncu_sample(stem));
    let by_id = cells_by_id(&cells);
    let (mut absent, mut mixed) = (0, 0);
    for group in [Group::Kernel, Group::Nvtx] {
        let opts = NcuOptions {
            group,
            ..Default::default()
        };
        let d = digest_file(&ncu_sample(stem), &opts);
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("no launch made a global load")),
            "{:?}",
            d.notes
        );
        for k in &d.kernels {
            let members: Vec<_> = d
                .launches
                .iter()
                .filter(|l| match group {
                    Group::Nvtx => k.nvtx.as_deref() == Some(&nvtx_key(l)),
                    _ => k.kernel.as_ref() == Some(&l.kernel),
                })
                .map(|l| by_id[&l.id])
                .collect();
            for (got, op) in [(k.ld_efficiency_pct, "ld"), (k.st_efficiency_pct, "st")] {
                let metric =
                    format!("smsp__sass_average_data_bytes_per_sector_mem_global_op_{op}.pct");
                let values: Vec<(f64, f64)> = members
                    .iter()
                    .map(|c| {
                        let t = number(&c["gpu__time_duration.sum"]).unwrap();
                        (number(&c[&metric]).unwrap(), t)
                    })
                    .collect();
                let counted: Vec<_> = values.iter().filter(|(v, _)| *v != 0.0).collect();
                let den: f64 = counted.iter().map(|(_, t)| t).sum();
                let want = (!counted.is_empty())
                    .then(|| counted.iter().map(|(v, t)| v * t).sum::<f64>() / den);
                match (got, want) {
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b, "{k:?}"),
                    (a, b) => assert_eq!(a, b, "{op} {k:?}"),
                }
                absent += usize::from(want.is_none());
                mixed += usize::from(want.is_some() && counted.len() < values.len());
            }
        }
    }
    assert!(absent > 0, "some kernel makes no global load or store");
    assert!(mixed > 0, "some range mixes launches with and without");
}

/// The captures that counted each launch's global instructions and TMA
/// bytes, and the layouts of each that carry those counts.
const COUNTED_CAPTURES: [(&str, &[&str]); 4] = [
    (
        "h200_llama4L_instcounts_525kernels",
        &["details", "raw_baseunits"],
    ),
    ("h200_llama2L_fullset_40kernels", &["raw", "raw_baseunits"]),
    (
        "h200_llama2L_instcounts_400kernels_cudnnattn",
        &["details", "raw_baseunits"],
    ),
    (
        "h200_llama2L_instcounts_400kernels_flashattn",
        &["details", "raw_baseunits"],
    ),
];

/// Each layout of each counted capture, digested, with that capture's raw
/// cells by launch ID (read once per capture) and the file's name.
fn each_counted_digest(
    mut check: impl FnMut(&str, &HashMap<u64, &HashMap<String, String>>, &NcuDigest),
) {
    for (stem, layouts) in COUNTED_CAPTURES {
        let cells = raw_cells(&ncu_sample(&format!("{stem}.raw_baseunits")));
        let by_id = cells_by_id(&cells);
        for layout in layouts {
            let name = format!("{stem}.{layout}");
            check(
                &name,
                &by_id,
                &digest_file(&ncu_sample(&name), &NcuOptions::default()),
            );
        }
    }
}

/// The rule behind the means above, checked against instruction counts: in
/// the captures that also counted each launch's global load and store
/// instructions (the instcounts list, and `--set full`, whose efficiency
/// comes from its two parts), a launch reads as 0 % load (store) efficiency
/// exactly when it executed no global load (store) instruction.
#[test]
fn zero_efficiency_launches_are_those_without_global_instructions() {
    each_counted_digest(|file, by_id, d| {
        assert_eq!(d.launches.len(), by_id.len(), "{file}");
        for (op, get) in [
            ("ld", (|l| l.ld_efficiency_pct) as Getter),
            ("st", |l| l.st_efficiency_pct),
        ] {
            let metric = format!("smsp__sass_inst_executed_op_global_{op}.sum");
            let mut without = 0;
            for l in &d.launches {
                let instructions = number(&by_id[&l.id][&metric]).unwrap();
                let zero = get(l) == Some(0.0);
                assert_eq!(zero, instructions == 0.0, "{file} {op} id {}", l.id);
                without += usize::from(zero);
            }
            assert!(without > 0, "{file}: some launch makes no global {op}");
            for k in &d.kernels {
                let name = k.kernel.as_ref().unwrap();
                let any_instruction = d
                    .launches
                    .iter()
                    .any(|l| &l.kernel == name && number(&by_id[&l.id][&metric]).unwrap() > 0.0);
                let mean = match op {
                    "ld" => k.ld_efficiency_pct,
                    _ => k.st_efficiency_pct,
                };
                assert_eq!(mean.is_some(), any_instruction, "{file} {op} {name}");
            }
        }
    });
}

/// The load paths a capture's raw cells show for one launch, by the names
/// ncu-digest gives them: LDG instructions, LDGSTS instructions (per SMSP
/// in `--set full`, per SM in the instcounts `--metrics` list), TMA bytes.
fn load_paths_in_cells(row: &HashMap<String, String>) -> Vec<&'static str> {
    let used = |metrics: &[&str]| {
        let m = metrics.iter().find(|m| row.contains_key(**m)).unwrap();
        number(&row[*m]).unwrap() > 0.0
    };
    [
        ("LSU", used(&["smsp__sass_inst_executed_op_global_ld.sum"])),
        (
            "cp.async",
            used(&[
                "smsp__inst_executed_op_ldgsts.sum",
                "sm__sass_inst_executed_op_ldgsts.sum",
            ]),
        ),
        (
            "TMA",
            used(&["l1tex__m_xbar2l1tex_read_bytes_mem_global_op_tma_ld.sum"]),
        ),
    ]
    .into_iter()
    .filter_map(|(name, used)| used.then_some(name))
    .collect()
}

/// The `Loads via` words for the paths used, in the order ncu-digest names
/// them: `LSU+TMA`, or `none`.
fn paths_label(used: &[&str]) -> String {
    if used.is_empty() {
        "none".into()
    } else {
        used.join("+")
    }
}

/// "Loads via", per launch and per kernel, is what the instruction and
/// byte counts in the raw cells say, in every layout that carries them;
/// the four kinds (LSU, cp.async, TMA, none) all occur.
#[test]
fn load_paths_follow_the_raw_counts() {
    let mut seen = BTreeSet::new();
    each_counted_digest(|file, by_id, d| {
        assert_eq!(d.launches.len(), by_id.len(), "{file}");
        for l in &d.launches {
            let want = load_paths_in_cells(by_id[&l.id]);
            let got = l.load_paths.map(|p| p.names());
            assert_eq!(got, Some(want.clone()), "{file} id {}", l.id);
            seen.insert(paths_label(&want));
        }
        for k in &d.kernels {
            let name = k.kernel.as_ref().unwrap();
            let want: BTreeSet<_> = d
                .launches
                .iter()
                .filter(|l| &l.kernel == name)
                .flat_map(|l| load_paths_in_cells(by_id[&l.id]))
                .collect();
            let got: BTreeSet<_> = k.load_paths.unwrap().names().into_iter().collect();
            assert_eq!(got, want, "{file} {name}");
        }
    });
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["LSU", "TMA", "cp.async", "none"]
    );
}

/// ncu's efficiency % is bytes used per sector over the most a sector
/// holds, as `100 × .ratio ÷ .max_rate` of its two parts.
fn efficiency_from_parts(row: &HashMap<String, String>, op: &str) -> f64 {
    let part = |suffix: &str| {
        let metric =
            format!("smsp__sass_average_data_bytes_per_sector_mem_global_op_{op}.{suffix}");
        number(&row[&metric]).unwrap()
    };
    100.0 * part("ratio") / part("max_rate")
}

/// A `--set full` raw page has the two parts of each efficiency but not the
/// %: per launch, the digest's efficiency is the quotient of that file's own
/// cells, in auto-scaled and in base units.
#[test]
fn full_set_efficiency_comes_from_bytes_per_sector() {
    let stem = "h200_llama2L_fullset_40kernels";
    // The details page of the same capture has neither; its note says
    // which page does.
    let details = digest_file(
        &ncu_sample(&format!("{stem}.details")),
        &NcuOptions::default(),
    );
    assert!(details
        .launches
        .iter()
        .all(|l| l.ld_efficiency_pct.is_none()));
    assert!(details
        .notes
        .iter()
        .any(|n| n.starts_with("load/store efficiency")
            && n.ends_with("--set full capture with --page raw")));
    for layout in ["raw", "raw_baseunits"] {
        let path = ncu_sample(&format!("{stem}.{layout}"));
        let cells = raw_cells(&path);
        let by_id = cells_by_id(&cells);
        let d = digest_file(&path, &NcuOptions::default());
        assert!(!d
            .notes
            .iter()
            .any(|n| n.starts_with("load/store efficiency")));
        let mut partial = 0;
        for l in &d.launches {
            for (op, got) in [("ld", l.ld_efficiency_pct), ("st", l.st_efficiency_pct)] {
                let want = efficiency_from_parts(by_id[&l.id], op);
                assert!(
                    (got.unwrap() - want).abs() <= 1e-9 * want.max(1.0),
                    "{layout} {op} {}",
                    l.id
                );
                partial += usize::from(want > 0.0 && want < 100.0);
            }
        }
        assert!(
            partial > 0,
            "{layout}: some launch uses part of its sectors"
        );
    }
}

/// The quotient is ncu's %: in the probe capture, which has the % and its
/// two parts, they agree, and the digest reports ncu's own %.
#[test]
fn efficiency_parts_give_ncus_percent() {
    let Some(shared) = shared() else { return };
    let path = shared.join("samples/ncu/probe/h200_ncu2025.3.1_raw.csv");
    let cells = csv_rows(std::fs::File::open(&path).unwrap());
    let by_id = cells_by_id(&cells);
    let d = digest_file(&path, &NcuOptions::default());
    for l in &d.launches {
        let row = by_id[&l.id];
        for (op, got) in [("ld", l.ld_efficiency_pct), ("st", l.st_efficiency_pct)] {
            let pct = number(
                &row[&format!("smsp__sass_average_data_bytes_per_sector_mem_global_op_{op}.pct")],
            )
            .unwrap();
            assert_eq!(got, Some(pct), "{op} {}", l.id);
            assert!(
                (efficiency_from_parts(row, op) - pct).abs() <= 0.005,
                "{op} {}",
                l.id
            );
        }
    }
}

/// TMA load bytes stand for TMA loads: in the `--set full` capture, which
/// also counts TMA load instructions, the two are zero on the same launches.
#[test]
fn tma_load_bytes_and_instructions_agree() {
    let cells = raw_cells(&ncu_sample("h200_llama2L_fullset_40kernels.raw_baseunits"));
    let mut tma = 0;
    for row in &cells[1..] {
        let bytes = number(&row["l1tex__m_xbar2l1tex_read_bytes_mem_global_op_tma_ld.sum"]);
        let inst = number(&row["smsp__inst_executed_op_tma_ld.sum"]);
        assert_eq!(
            bytes.unwrap() > 0.0,
            inst.unwrap() > 0.0,
            "id {}",
            row["ID"]
        );
        tma += usize::from(inst.unwrap() > 0.0);
    }
    assert!(tma > 0, "some launch loads through the TMA");
}

/// Without those counts there is no "Loads via" column, and the JSON has
/// no such field: earlier captures digest as before.
#[test]
fn no_load_paths_without_their_counts() {
    let stem = "h200_llama4L_memmetrics_525kernels.raw_baseunits";
    let d = digest_file(&ncu_sample(stem), &NcuOptions::default());
    assert!(d.launches.iter().all(|l| l.load_paths.is_none()));
    assert!(d.kernels.iter().all(|k| k.load_paths.is_none()));
    let table = nsight_digest::ncu::view::aggregate_table(&d);
    assert!(table.columns.iter().all(|c| c.key != "load_paths"));
    assert!(!nsight_digest::render::json(&d).contains("load_paths"));
}

/// Where launches read 0 % and the paths were not counted, the note names
/// the metrics to collect, each one ncu-digest reads; where they were
/// counted, the column is there and the note does not ask for them.
#[test]
fn zero_efficiency_note_asks_for_the_load_path_counts_only_where_missing() {
    let hint = |stem: &str| {
        let d = digest_file(&ncu_sample(stem), &NcuOptions::default());
        let note = d
            .notes
            .iter()
            .find(|n| n.starts_with("Ld/St eff where"))
            .cloned();
        note.unwrap_or_else(|| panic!("{stem}: no 0 % note"))
            .split_once("--metrics ")
            .map(|(_, rest)| {
                rest.split(',')
                    .take(3)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
    };
    let asked = hint("h200_llama4L_memmetrics_525kernels.raw_baseunits").expect("asks");
    for metric in &asked {
        assert!(
            nsight_digest::ncu::metric_names::resolve_column(metric).is_some(),
            "{metric}"
        );
    }
    assert_eq!(asked.len(), 3);
    assert_eq!(
        hint("h200_llama4L_instcounts_525kernels.raw_baseunits"),
        None
    );
}

/// One kernel's verdicts as a base-unit raw page's cells give them.
#[derive(Default)]
struct CellVerdicts {
    duration_ns: f64,
    /// Duration-weighted sums of DRAM %, memory % and SM %, and their weights.
    sol: [(f64, f64); 3],
    load_paths: Option<BTreeSet<&'static str>>,
}

impl CellVerdicts {
    fn add(&mut self, row: &HashMap<String, String>) {
        let d = number(&row["gpu__time_duration.sum"]).unwrap();
        self.duration_ns += d;
        let sol = [
            "dram__throughput.avg.pct_of_peak_sustained_elapsed",
            "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
            "sm__throughput.avg.pct_of_peak_sustained_elapsed",
        ];
        for (sum, metric) in self.sol.iter_mut().zip(sol) {
            if let Some(v) = row.get(metric).and_then(|c| number(c)) {
                *sum = (sum.0 + v * d, sum.1 + d);
            }
        }
        if row.contains_key("smsp__sass_inst_executed_op_global_ld.sum") {
            let paths = self.load_paths.get_or_insert_with(BTreeSet::new);
            paths.extend(load_paths_in_cells(row));
        }
    }

    /// Bound-ness by the digest's rule, from this file's own means.
    fn bound(&self) -> Option<String> {
        let [dram, memory, sm] = self.sol.map(|(num, den)| (den > 0.0).then(|| num / den));
        bound_of(dram, memory, sm).map(|b| b.as_str().to_string())
    }

    fn loads_via(&self) -> Option<String> {
        let order = ["LSU", "cp.async", "TMA"];
        let paths = self.load_paths.as_ref()?;
        let used: Vec<&str> = order.into_iter().filter(|p| paths.contains(p)).collect();
        Some(paths_label(&used))
    }
}

/// Each group's verdicts, from the raw cells of the launches the digest
/// puts in it, in the order of total duration.
fn verdicts_in_cells(stem: &str, group: Group) -> Vec<(String, CellVerdicts)> {
    let path = ncu_sample(&format!("{stem}.raw_baseunits"));
    let cells = raw_cells(&path);
    let by_id = cells_by_id(&cells);
    let opts = NcuOptions {
        group,
        ..Default::default()
    };
    let mut by: HashMap<String, CellVerdicts> = HashMap::new();
    for l in digest_file(&path, &opts).launches {
        let key = match group {
            Group::Nvtx => nvtx_key(&l),
            _ => l.kernel.clone(),
        };
        by.entry(key).or_default().add(by_id[&l.id]);
    }
    let mut groups: Vec<_> = by.into_iter().collect();
    groups.sort_by(|a, b| b.1.duration_ns.total_cmp(&a.1.duration_ns));
    groups
}

/// `ncu-digest diff` lists exactly the kernels (or ranges) found on both
/// sides whose bound-ness or load paths, as each file's raw cells give
/// them, differ; in the base's order. Three real pairs, each both ways: one
/// model at batch 8 and at batch 16; the two captures with load-path
/// counts; and one model with cuDNN's attention and with PyTorch's flash
/// attention, whose prefill attention ranges change load paths.
#[test]
fn diff_lists_each_kernel_whose_verdict_changed() {
    let pairs = [
        (
            "h200_llama2L_memmetrics_60kernels_batch8",
            "h200_llama2L_memmetrics_60kernels_batch16",
            Group::Kernel,
        ),
        (
            "h200_llama4L_instcounts_525kernels",
            "h200_llama2L_fullset_40kernels",
            Group::Kernel,
        ),
        (
            "h200_llama2L_instcounts_400kernels_cudnnattn",
            "h200_llama2L_instcounts_400kernels_flashattn",
            Group::Nvtx,
        ),
    ];
    let mut seen = HashMap::new();
    for (a, b, group) in pairs {
        for (base, new) in [(a, b), (b, a)] {
            let after: HashMap<_, _> = verdicts_in_cells(new, group).into_iter().collect();
            let mut want = Vec::new();
            for (name, v) in verdicts_in_cells(base, group) {
                let Some(n) = after.get(&name) else { continue };
                for (verdict, x, y) in [
                    ("bound", v.bound(), n.bound()),
                    ("loads via", v.loads_via(), n.loads_via()),
                ] {
                    if let (Some(x), Some(y)) = (x, y) {
                        if x != y {
                            want.push((name.clone(), verdict.to_string(), x, y));
                        }
                    }
                }
            }
            let opts = NcuOptions {
                group,
                ..Default::default()
            };
            let digest_of =
                |stem: &str| digest_file(&ncu_sample(&format!("{stem}.raw_baseunits")), &opts);
            let report = compare(&digest_of(base), &digest_of(new), 5.0);
            let rows = if group == Group::Nvtx {
                "NVTX ranges"
            } else {
                "kernels"
            };
            let how = format!("per launch, {rows} matched by name");
            assert_eq!(report.normalisation, how);
            let got: Vec<_> = report
                .verdict_changes
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.verdict.clone(),
                        c.base.clone(),
                        c.new.clone(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{base} → {new}");
            for (_, verdict, _, _) in got {
                *seen.entry(verdict).or_insert(0) += 1;
            }
        }
    }
    assert!(
        seen.get("bound") > Some(&0) && seen.get("loads via") > Some(&0),
        "{seen:?}"
    );
}

/// The changed verdicts reach every format: a count in the summary line, a
/// Markdown table of their own, rows of the CSV, and a JSON list; none of
/// it where nothing changed.
#[test]
fn verdict_changes_render_in_every_format() {
    let [base, new] = ["batch8", "batch16"]
        .map(|b| ncu_arg(&format!("h200_llama2L_memmetrics_60kernels_{b}.details")));
    let diff = |format: &str, new: &str| {
        let (code, out, err) = run("ncu-digest", &["diff", &base, new, "-f", format]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let json: serde_json::Value = serde_json::from_str(&diff("json", &new)).unwrap();
    let changes = json["verdict_changes"].as_array().unwrap();
    assert!(!changes.is_empty());
    let count = format!("; {} verdict change(s)", changes.len());
    assert!(
        json["summary"].as_str().unwrap().ends_with(&count),
        "{json}"
    );
    let markdown = diff("markdown", &new);
    let section = markdown.split("verdict changes").nth(1).unwrap();
    let csv = csv_rows(diff("csv", &new).as_bytes());
    let csv_changes: Vec<_> = csv
        .iter()
        .filter(|r| r["section"] == "verdict changes")
        .collect();
    assert_eq!(csv_changes.len(), changes.len());
    for (c, row) in changes.iter().zip(csv_changes) {
        let text = |k: &str| c[k].as_str().unwrap().to_string();
        let cells = [text("verdict"), text("base"), text("new")];
        assert_eq!(
            [&row["metric"], &row["base"], &row["new"]],
            cells.each_ref()
        );
        assert_eq!(row["name"], text("name"));
        assert!(section.contains(&format!("| {} | {} | {} |", cells[0], cells[1], cells[2])));
    }
    let same: serde_json::Value = serde_json::from_str(&diff("json", &base)).unwrap();
    assert!(same.get("verdict_changes").is_none());
    assert!(!same["summary"].as_str().unwrap().contains("verdict"));
    assert!(!diff("markdown", &base).contains("verdict changes"));
}

/// Mean `gpu__time_duration.sum` per kernel name, from a base-unit raw
/// page's cells.
fn mean_ns_by_kernel(stem: &str) -> HashMap<String, f64> {
    let cells = raw_cells(&ncu_sample(&format!("{stem}.raw_baseunits")));
    let mut sums: HashMap<String, (f64, f64)> = HashMap::new();
    for row in &cells[1..] {
        let e = sums.entry(row["Kernel Name"].clone()).or_default();
        *e = (
            e.0 + number(&row["gpu__time_duration.sum"]).unwrap(),
            e.1 + 1.0,
        );
    }
    sums.into_iter().map(|(k, (t, n))| (k, t / n)).collect()
}

fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Name(s) | Cell::Text(s) => s,
        _ => "",
    }
}

/// A kernel found on one side only is a change of its whole time. The
/// attention pair swaps cuDNN's attention kernels for PyTorch's flash ones:
/// each is flagged `gone` or `new` with its mean from the raw cells, and
/// each outranks the matched kernels, whose changes are all smaller here,
/// in the table a reviewer sees by default.
#[test]
fn kernels_on_one_side_only_rank_by_their_time_and_say_new_or_gone() {
    let [base, new] =
        ["cudnnattn", "flashattn"].map(|b| format!("h200_llama2L_instcounts_400kernels_{b}"));
    let (before, after) = (mean_ns_by_kernel(&base), mean_ns_by_kernel(&new));
    let only = |side: &HashMap<String, f64>, other: &HashMap<String, f64>, flag: &'static str| {
        let names = side.keys().filter(|k| !other.contains_key(*k));
        names
            .map(|k| (k.clone(), (flag, side[k])))
            .collect::<Vec<_>>()
    };
    let one_sided: HashMap<String, (&str, f64)> = only(&before, &after, "gone")
        .into_iter()
        .chain(only(&after, &before, "new"))
        .collect();
    let flags: BTreeSet<&str> = one_sided.values().map(|v| v.0).collect();
    assert_eq!(flags.len(), 2, "{one_sided:?}");
    let digest_of = |stem: &str| {
        let path = ncu_sample(&format!("{stem}.raw_baseunits"));
        digest_file(&path, &NcuOptions::default())
    };
    let report = compare(&digest_of(&base), &digest_of(&new), 5.0);
    let doc = document(&report, Some(DEFAULT_DIFF_TOP));
    let kernels = doc.tables.iter().find(|t| t.title == "kernels").unwrap();
    let times: Vec<&Vec<Cell>> = kernels
        .rows
        .iter()
        .filter(|r| text(&r[1]) == "mean ns per launch")
        .collect();
    let matched_largest = report
        .rows
        .iter()
        .filter(|r| r.section == "kernels" && r.metric == "mean ns per launch")
        .filter_map(|r| r.delta)
        .fold(0.0, |m: f64, d| m.max(d.abs()));
    assert!(one_sided.values().all(|(_, mean)| *mean > matched_largest));
    for (row, rank) in times.iter().zip(0..one_sided.len()) {
        let (flag, mean) = one_sided[text(&row[0])];
        assert_eq!(text(&row[6]), flag, "rank {rank}");
        let Cell::Float(shown, _) = row[if flag == "new" { 3 } else { 2 }] else {
            panic!("rank {rank}: no value")
        };
        assert!((shown - mean).abs() <= 1e-9 * mean, "{shown} vs {mean}");
    }
    assert!(times[one_sided.len()..]
        .iter()
        .all(|r| text(&r[6]).is_empty()));
    // A bandwidth on one side only moved nowhere: it ranks last, past the
    // rows shown by default.
    let rates = kernels
        .rows
        .iter()
        .filter(|r| text(&r[1]) != "mean ns per launch");
    assert!(rates.clone().count() > 0);
    assert!(rates.into_iter().all(|r| text(&r[6]).is_empty()));
}

/// The streamed aggregates equal the ones recomputed from the per-launch
/// rows, also where a launch's % of peak comes from the file's shared peak.
#[test]
fn streamed_aggregates_equal_the_launch_rows() {
    for stem in [
        "h200_llama2L_fullset_40kernels.details",
        "h200_llama4L_memmetrics_525kernels.raw",
    ] {
        let d = digest_file(&ncu_sample(stem), &NcuOptions::default());
        for k in &d.kernels {
            let members: Vec<_> = d
                .launches
                .iter()
                .filter(|l| Some(&l.kernel) == k.kernel.as_ref())
                .collect();
            let (mut num, mut den) = (0.0, 0.0);
            for l in &members {
                if let (Some(p), Some(t)) = (l.dram_peak_pct, l.duration_ns) {
                    num += p * t;
                    den += t;
                }
            }
            let want = (den > 0.0).then(|| num / den);
            match (k.dram_peak_pct, want) {
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{stem} {:?}: {a} vs {b}",
                    k.kernel
                ),
                (a, b) => assert_eq!(a, b, "{stem} {:?}", k.kernel),
            }
            let lo = members
                .iter()
                .filter_map(|l| l.dram_peak_pct)
                .fold(f64::MAX, f64::min);
            assert_eq!(
                k.dram_peak_pct_min,
                (lo != f64::MAX).then_some(lo),
                "{stem}"
            );
        }
        let without = digest_file(
            &ncu_sample(stem),
            &NcuOptions {
                keep_launches: false,
                ..Default::default()
            },
        );
        assert!(without.launches.is_empty());
        assert_eq!(without.kernels.len(), d.kernels.len());
    }
}

/// Split into records on a second thread from the start (the path of files
/// from 16 MB on),
/// every real export digests the same as in one thread, per kernel and per
/// range, launch by launch.
#[test]
fn splitting_on_a_second_thread_reads_the_same() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("samples/ncu"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.extend(shared_ncu_files());
    let mut read = 0;
    for path in &files {
        for group in [Group::Kernel, Group::Nvtx] {
            let one = NcuOptions {
                group,
                ..NcuOptions::default()
            };
            let mut two = one.clone();
            two.read.split_apart_from_bytes = 0;
            let (a, b) = (digest(path, &one), digest(path, &two));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    let json = |d: &NcuDigest| serde_json::to_string(d).unwrap();
                    assert_eq!(json(&a), json(&b), "{}", path.display());
                    read += 1;
                }
                (a, b) => assert_eq!(
                    a.err().map(|e| e.to_string()),
                    b.err().map(|e| e.to_string()),
                    "{}",
                    path.display()
                ),
            }
        }
    }
    assert!(read >= 14, "only {read} digests compared");
}

/// A text that turns out long (a pipe, a report's import, a `.gz` much
/// smaller than its text) is read in one thread at first and handed to a
/// splitting thread part way through: here, half way through the text of
/// each committed sample, which as stored is under that half. Each digests
/// as it does in one thread, launch by launch.
#[test]
fn handing_over_to_a_splitting_thread_part_way_reads_the_same() {
    let mut compared = 0;
    for entry in std::fs::read_dir(repo().join("samples/ncu")).unwrap() {
        let path = entry.unwrap().path();
        let text_len = inflate(&path).len() as u64;
        let stored_len = std::fs::metadata(&path).unwrap().len();
        assert!(stored_len < text_len / 2, "{}", path.display());
        for group in [Group::Kernel, Group::Nvtx] {
            let mut one = NcuOptions {
                group,
                ..NcuOptions::default()
            };
            one.read.split_apart_from_bytes = u64::MAX;
            let mut handed_over = one.clone();
            handed_over.read.split_apart_from_bytes = text_len / 2;
            let json = |o: &NcuOptions| serde_json::to_string(&digest_file(&path, o)).unwrap();
            assert_eq!(json(&one), json(&handed_over), "{}", path.display());
            compared += 1;
        }
    }
    assert!(compared >= 26, "only {compared} digests compared");
}

/// The errors of a real export cut short, met after thousands of rows,
/// come through from the splitting thread: the gzip stream's, and the
/// inflated text's missing line break.
#[test]
fn a_cut_export_split_on_a_second_thread_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.csv.gz");
    std::fs::write(
        &p,
        cut_in_half("h200_llama4L_memmetrics_525kernels.details"),
    )
    .unwrap();
    let mut opts = NcuOptions::default();
    opts.read.split_apart_from_bytes = 0;
    let err = digest(&p, &opts).unwrap_err().to_string();
    assert!(err.contains("gzip") && err.contains("cut.csv.gz"), "{err}");
    let p = dir.path().join("cut.csv");
    std::fs::write(
        &p,
        cut_mid_row("h200_llama4L_memmetrics_525kernels.details"),
    )
    .unwrap();
    let err = digest(&p, &opts).unwrap_err().to_string();
    assert!(
        err.contains("cut short") && err.contains("cut.csv"),
        "{err}"
    );
}

/// A folder's row for one file sums its launches: bandwidth and % of peak
/// count only the launches that have both the value and a duration, as the
/// per-kernel rows do. No real export lacks DRAM metrics on some launches
/// only, so besides the committed samples this takes one made by hand:
/// the 525-launch details page without launch 0's DRAM rows.
#[test]
fn folder_row_sums_the_launches_that_have_each_value() {
    let dir = tempfile::tempdir().unwrap();
    let stem = "h200_llama4L_memmetrics_525kernels.details";
    let text = String::from_utf8(inflate(&ncu_sample(stem))).unwrap();
    let partial = dir.path().join("without_launch0_dram.csv");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with("\"0\",") && l.contains("\"dram__")))
        .collect();
    assert!(kept.len() < text.lines().count());
    std::fs::write(&partial, kept.join("\n") + "\n").unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("samples/ncu"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.push(partial.clone());
    for path in &files {
        let d = digest_file(path, &NcuOptions::default());
        let row = nsight_digest::batch::NcuRow::from_digest(&d);
        let both =
            |l: &&nsight_digest::ncu::derive::LaunchMetrics, v: Option<f64>| v.zip(l.duration_ns);
        let sum = |f: &dyn Fn(&nsight_digest::ncu::derive::LaunchMetrics) -> Option<f64>| {
            let v: Vec<f64> = d.launches.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>())
        };
        let timed_bytes = sum(&|l| both(&l, l.dram_bytes).map(|(b, _)| b));
        let timed_ns = sum(&|l| both(&l, l.dram_bytes).map(|(_, t)| t));
        let pct_ns = sum(&|l| both(&l, l.dram_peak_pct).map(|(p, t)| p * t));
        let pct_den = sum(&|l| both(&l, l.dram_peak_pct).map(|(_, t)| t));
        let close = |what: &str, got: Option<f64>, want: Option<f64>| match (got, want) {
            (Some(a), Some(b)) => assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{}: {what} {a} vs {b}",
                path.display()
            ),
            (a, b) => assert_eq!(a, b, "{}: {what}", path.display()),
        };
        assert_eq!(row.launches, d.launches.len() as u64);
        close("duration", row.duration_ns, sum(&|l| l.duration_ns));
        close("bytes", row.dram_bytes, sum(&|l| l.dram_bytes));
        close(
            "bandwidth",
            row.dram_bandwidth_bytes_per_s,
            timed_bytes.zip(timed_ns).map(|(b, t)| b / (t / 1e9)),
        );
        close(
            "% of peak",
            row.dram_peak_pct,
            pct_ns.zip(pct_den).map(|(n, t)| n / t),
        );
    }
    let d = digest_file(&partial, &NcuOptions::default());
    assert!(
        d.launches
            .iter()
            .any(|l| l.duration_ns.is_some() && l.dram_bytes.is_none()),
        "the hand-made file has a timed launch without DRAM bytes"
    );
}

/// The `total` line above the table is the JSON's `total`, in the table's
/// units: what a `--kernel` selection costs and how near the peak it runs.
#[test]
fn total_line_prints_the_selection_total() {
    let arg = ncu_arg("h200_llama4L_memmetrics_525kernels.raw_baseunits");
    let (code, json, err) = run(
        "ncu-digest",
        &[&arg, "--kernel", "attention", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let t = &v["total"];
    let value = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k}"));
    let want = format!(
        "{:.2} us {:.2} MB DRAM {:.1} GB/s {:.1} % of DRAM peak",
        value("duration_ns") / 1e3,
        value("dram_bytes") / 1e6,
        value("dram_bandwidth_bytes_per_s") / 1e9,
        value("dram_peak_pct"),
    );
    for format in ["table", "markdown"] {
        let (code, text, err) = run("ncu-digest", &[&arg, "--kernel", "attention", "-f", format]);
        assert_eq!(code, 0, "{err}");
        let line = text
            .lines()
            .find(|l| l.contains("total") && l.contains(" us"))
            .unwrap_or_else(|| panic!("no total line in\n{text}"))
            .replace(',', "");
        assert!(line.contains(&want), "{line:?} lacks {want:?}");
    }
}

/// A filter that keeps nothing says so under the empty table, in place of
/// the legend of columns it does not show.
#[test]
fn an_empty_selection_says_that_nothing_passed_the_filters() {
    let name = "h200_llama2L_memmetrics_60kernels_batch8.raw_baseunits";
    let file = ncu_arg(name);
    // Row 0 is the units row.
    let read = raw_cells(&ncu_sample(name)).len() - 1;
    let expected = format!("none of the {read} launches read passed --kernel and --nvtx");
    for extra in [&[][..], &["--per-launch"], &["--format", "markdown"]] {
        let mut args = vec![file.as_str(), "--kernel", "no-kernel-is-named-so"];
        args.extend_from_slice(extra);
        let (code, out, err) = run("ncu-digest", &args);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&expected), "{args:?}: {out}");
        assert!(!out.contains("bound: from"), "{args:?}: {out}");
    }
}

/// `--top N` keeps the aggregated table's first N rows (the largest total
/// duration) in CSV and in the terminal, which says how many it left out.
#[test]
fn top_keeps_the_longest_kernels() {
    let f = ncu_arg("h200_llama4L_memmetrics_525kernels.raw_baseunits");
    let csv = |top: &[&str]| {
        let (code, out, err) = run("ncu-digest", &[&[f.as_str(), "-f", "csv"], top].concat());
        assert_eq!(code, 0, "{err}");
        out.lines().map(String::from).collect::<Vec<_>>()
    };
    let all = csv(&[]);
    assert!(all.len() > 4);
    assert_eq!(csv(&["--top", "3"]), all[..4]);
    let (_, out, _) = run("ncu-digest", &[&f, "--top", "3"]);
    assert!(
        out.contains(&format!("3 of {} rows", all.len() - 1)),
        "{out}"
    );
    let (_, out, _) = run("ncu-digest", &[&f]);
    assert!(!out.contains(" rows; "), "every row by default");
}

/// The part of `docs/json.md` under a top-level heading.
fn json_doc_section(heading: &str) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/json.md")).unwrap();
    let start = doc.find(&format!("\n# {heading}\n")).unwrap() + 1;
    let rest = &doc[start + 2..];
    let end = rest.find("\n# ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_string()
}

/// The backticked words in `text`.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys a section's table names in its first column, and the words of
/// the row whose first cell is `key`.
fn documented(section: &str, key: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let rows = section.lines().filter(|l| l.starts_with("| `"));
    let first = |l: &str| l.split('|').nth(1).unwrap_or("").to_string();
    let roots = rows.clone().flat_map(|l| backticked(&first(l))).collect();
    let row = rows
        .into_iter()
        .find(|l| first(l).trim() == format!("`{key}`"));
    (roots, row.map(backticked).unwrap_or_default())
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn assert_documented(found: &BTreeSet<String>, doc: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = found.difference(doc).collect();
    assert!(
        missing.is_empty(),
        "docs/json.md lacks {what} keys {missing:?}"
    );
}

/// `docs/json.md` names every key that ncu-digest's JSON and its diff's
/// JSON print, on captures that print the optional ones (load paths, NVTX
/// ranges, verdict changes).
#[test]
fn json_doc_names_every_key() {
    let section = json_doc_section("ncu-digest");
    let capture = ncu_arg("h200_llama2L_instcounts_400kernels_cudnnattn.raw_baseunits");
    for group in ["kernel", "nvtx", "kernel+nvtx"] {
        let d = per_launch_json(&capture, &["-g", group]);
        let (roots, _) = documented(&section, "kernels");
        assert_documented(&keys(&d), &roots, "ncu root");
        for (key, rows) in [("kernels", &d["kernels"]), ("launches", &d["launches"])] {
            let (_, words) = documented(&section, key);
            for row in rows.as_array().unwrap() {
                assert_documented(&keys(row), &words, key);
            }
        }
        let (_, words) = documented(&section, "source");
        assert_documented(&keys(&d["source"]), &words, "source");
        // `total` has a kernels row's keys.
        let (_, words) = documented(&section, "kernels");
        assert_documented(&keys(&d["total"]), &words, "total");
    }
    let section = json_doc_section("diff");
    let [base, new] = ["cudnnattn", "flashattn"].map(|b| {
        ncu_arg(&format!(
            "h200_llama2L_instcounts_400kernels_{b}.raw_baseunits"
        ))
    });
    let (code, out, err) = run(
        "ncu-digest",
        &["diff", &base, &new, "-g", "nvtx", "-f", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (roots, _) = documented(&section, "rows");
    assert_documented(&keys(&d), &roots, "diff root");
    for key in ["rows", "verdict_changes"] {
        let (_, words) = documented(&section, key);
        let rows = d[key].as_array().unwrap();
        assert!(!rows.is_empty(), "{key}");
        for row in rows {
            assert_documented(&keys(row), &words, key);
        }
    }
}

/// The CUDA-core FLOP weights are ncu's own: its roofline's derived metrics
/// (`derived__smsp__sass_thread_inst_executed_op_<op>_pred_on_x<N>`, on the
/// `--set full` raw page) are N times the op's rate per cycle, launch by
/// launch, and ops it derives no metric for (add and multiply in FP32 and
/// FP64) count once.
#[test]
fn cuda_core_flop_weights_are_ncus_derived_multiples() {
    use nsight_digest::ncu::metric_names::CUDA_CORE_FLOP_INST;
    let cells = raw_cells(&ncu_sample("h200_llama2L_fullset_40kernels.raw_baseunits"));
    let header: Vec<&String> = cells[0].keys().collect();
    let mut checked = 0;
    for (metric, weight) in CUDA_CORE_FLOP_INST {
        let op = metric
            .trim_start_matches("smsp__sass_thread_inst_executed_op_")
            .trim_end_matches("_pred_on.sum");
        let prefix = format!("derived__smsp__sass_thread_inst_executed_op_{op}_pred_on_x");
        let Some(derived) = header.iter().find(|h| h.starts_with(&prefix)) else {
            assert_eq!(
                weight, 1.0,
                "{op}: ncu derives no multiple, so it counts once"
            );
            continue;
        };
        let multiple: f64 = derived[prefix.len()..].parse().unwrap();
        assert_eq!(weight, multiple, "{op}");
        let rate = format!("{metric}.per_cycle_elapsed");
        for row in &cells[1..] {
            let (d, r) = (
                number(&row[*derived]).unwrap(),
                number(&row[&rate]).unwrap(),
            );
            // Both printed to 2 decimals.
            assert!(
                (d - multiple * r).abs() <= 0.005 * (multiple + 1.0),
                "{op}: {d} vs {r}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// The sum of `weight × count` over the nine CUDA-core counts, and of the
/// six floating-point tensor counts, from a launch's raw cells; `None`
/// where the page lacks one of them.
fn flops_in_cells(row: &HashMap<String, String>) -> (Option<f64>, Option<f64>) {
    use nsight_digest::ncu::metric_names::{CUDA_CORE_FLOP_INST, TENSOR_FLOP_OPS};
    let cell = |m: &str| {
        let sm = m.replacen("smsp__", "sm__", 1);
        row.get(m).or_else(|| row.get(&sm)).and_then(|c| number(c))
    };
    let cuda_core = CUDA_CORE_FLOP_INST
        .iter()
        .map(|(m, w)| cell(m).map(|n| n * w))
        .sum();
    let tensor = TENSOR_FLOP_OPS.iter().map(|m| cell(m)).sum();
    (cuda_core, tensor)
}

/// NERSC's roofline capture counts CUDA-core instructions but no
/// tensor-core work, and the `--set full` raw page the other way round:
/// each part equals its cells, launch by launch and summed per kernel, on
/// both pages of the roofline capture; neither has a total, no FLOP column
/// is shown, and the legend says what to add.
#[test]
fn flops_are_the_counted_parts_and_no_total_from_one_part() {
    let cases = [
        ("h200_llama2L_roofline_60kernels.raw_baseunits", true),
        ("h200_llama2L_roofline_60kernels.details_baseunits", true),
        ("h200_llama2L_fullset_40kernels.raw_baseunits", false),
    ];
    let raw = |stem: &str| stem.replace("details_baseunits", "raw_baseunits");
    for (stem, cuda_core_counted) in cases {
        let d = digest_file(&ncu_sample(stem), &NcuOptions::default());
        let cells = raw_cells(&ncu_sample(&raw(stem)));
        let by_id = cells_by_id(&cells);
        let mut per_kernel: HashMap<&str, f64> = HashMap::new();
        for l in &d.launches {
            let (cuda_core, tensor) = flops_in_cells(by_id[&l.id]);
            let part = if cuda_core_counted { cuda_core } else { tensor };
            assert!(part.is_some(), "{stem}: the part it counted");
            let got = if cuda_core_counted {
                assert_eq!(l.flops.tensor_flops, None, "{stem}");
                l.flops.cuda_core_flops
            } else {
                assert_eq!(l.flops.cuda_core_flops, None, "{stem}");
                l.flops.tensor_flops
            };
            assert_eq!(got, part, "{stem} id {}", l.id);
            assert_eq!(l.flops.flops, None, "{stem}");
            assert_eq!((l.flop_per_s, l.flop_per_dram_byte), (None, None));
            *per_kernel.entry(&l.kernel).or_default() += part.unwrap();
        }
        for k in &d.kernels {
            let name = k.kernel.as_deref().unwrap();
            let sum = if cuda_core_counted {
                k.flops.cuda_core_flops
            } else {
                k.flops.tensor_flops
            };
            assert_eq!(sum, Some(per_kernel[name]), "{stem}: {name}");
            assert_eq!(k.flops.flops, None);
        }
        let (code, out, err) = run("ncu-digest", &[&ncu_arg(stem)]);
        assert_eq!(code, 0, "{err}");
        let wanted = if cuda_core_counted {
            "the CUDA-core instruction counts leave out tensor-core work"
        } else {
            "the tensor-core counts leave out CUDA-core work"
        };
        assert!(out.contains(wanted), "{stem}: {out}");
        assert!(!out.contains("GFLOP/s"), "{stem}: {out}");
    }
    // A capture with neither part is not told about FLOPs at all.
    let (_, out, _) = run(
        "ncu-digest",
        &[&ncu_arg("h200_llama4L_memmetrics_525kernels.raw_baseunits")],
    );
    assert!(!out.contains("FLOP"), "{out}");
}

/// Why the tensor-pipe instruction count cannot stand in for tensor-core
/// work on Hopper, as the legend says: in the roofline capture, every
/// launch but the GEMM issued exactly one tensor-pipe instruction per 32
/// half-precision thread instructions (HADD2, HMUL2, HFMA2), and had no
/// matrix work.
#[test]
fn tensor_pipe_count_holds_half_precision_instructions() {
    let cells = raw_cells(&ncu_sample("h200_llama2L_roofline_60kernels.raw_baseunits"));
    let categories = Categories::default();
    let mut elementwise_with_half = 0;
    for row in &cells[1..] {
        let count = |op: &str| {
            number(&row[&format!("sm__sass_thread_inst_executed_op_{op}_pred_on.sum")]).unwrap()
        };
        let half = count("hadd") + count("hmul") + count("hfma");
        let pipe = number(&row["sm__inst_executed_pipe_tensor.sum"]).unwrap();
        if categories.classify(&row["Kernel Name"]) == "gemm" {
            assert!(pipe * 32.0 > half, "{}", row["Kernel Name"]);
        } else {
            assert_eq!(pipe * 32.0, half, "{}", row["Kernel Name"]);
            elementwise_with_half += usize::from(half > 0.0);
        }
    }
    assert!(elementwise_with_half > 10, "{elementwise_with_half}");
}

/// Relative difference, for quotients computed in another order.
fn relative_gap(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// The `flops` capture counted both parts (the nine CUDA-core counts in
/// ncu's `smsp__` spelling, and the six tensor counts): per launch, the
/// FLOPs are the cells' sums and FLOP/s and FLOP/B follow from the
/// duration and DRAM byte cells; per kernel, sums, and quotients of sums;
/// the details page gives the same counts; the table shows both columns
/// and its legend says what they hold.
#[test]
fn flops_per_second_and_per_byte_from_a_capture_with_both_parts() {
    let stem = "h200_llama2L_flops_200kernels";
    let raw = digest_file(
        &ncu_sample(&format!("{stem}.raw_baseunits")),
        &NcuOptions::default(),
    );
    let details = digest_file(
        &ncu_sample(&format!("{stem}.details_baseunits")),
        &NcuOptions::default(),
    );
    let cells = raw_cells(&ncu_sample(&format!("{stem}.raw_baseunits")));
    let by_id = cells_by_id(&cells);
    let mut sums: HashMap<&str, (f64, f64, f64)> = HashMap::new();
    for l in &raw.launches {
        let row = by_id[&l.id];
        let (cuda_core, tensor) = flops_in_cells(row);
        let (cuda_core, tensor) = (cuda_core.unwrap(), tensor.unwrap());
        let flops = cuda_core + tensor;
        assert_eq!(l.flops.cuda_core_flops, Some(cuda_core), "id {}", l.id);
        assert_eq!(l.flops.tensor_flops, Some(tensor), "id {}", l.id);
        assert_eq!(l.flops.flops, Some(flops), "id {}", l.id);
        let ns = number(&row["gpu__time_duration.sum"]).unwrap();
        let bytes = number(&row["dram__bytes.sum"]).unwrap();
        assert!(relative_gap(l.flop_per_s.unwrap(), flops / (ns / 1e9)) < 1e-12);
        assert!(relative_gap(l.flop_per_dram_byte.unwrap(), flops / bytes) < 1e-12);
        let s = sums.entry(&l.kernel).or_default();
        *s = (s.0 + flops, s.1 + ns, s.2 + bytes);
    }
    let launches = |f: fn(&&nsight_digest::ncu::derive::LaunchMetrics) -> bool| {
        raw.launches.iter().filter(f).count()
    };
    assert!(launches(|l| l.flops.tensor_flops > Some(0.0)) > 0);
    assert!(launches(|l| l.flops.cuda_core_flops > Some(0.0)) > 0);
    for k in &raw.kernels {
        let (flops, ns, bytes) = sums[k.kernel.as_deref().unwrap()];
        assert!(relative_gap(k.flops.flops.unwrap(), flops) < 1e-12);
        assert!(relative_gap(k.flop_per_s.unwrap(), flops / (ns / 1e9)) < 1e-12);
        assert!(relative_gap(k.flop_per_dram_byte.unwrap(), flops / bytes) < 1e-12);
    }
    let flops_by_id =
        |d: &NcuDigest| -> Vec<(u64, _)> { d.launches.iter().map(|l| (l.id, l.flops)).collect() };
    assert_eq!(flops_by_id(&details), flops_by_id(&raw));
    let (code, out, err) = run("ncu-digest", &[&ncu_arg(&format!("{stem}.raw_baseunits"))]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GFLOP/s") && out.contains("FLOP/B"), "{out}");
    assert!(out.contains("FLOP/B: FLOPs per DRAM byte"), "{out}");
    assert!(!out.contains("leave out"), "{out}");
    let (_, csv, _) = run(
        "ncu-digest",
        &[&ncu_arg(&format!("{stem}.raw_baseunits")), "-f", "csv"],
    );
    let rows = csv_rows(csv.as_bytes());
    assert_eq!(rows.len(), raw.kernels.len());
    for row in &rows {
        let (flops, ns, bytes) = sums[row["kernel"].as_str()];
        let cell = |c: &str| number(&row[c]).unwrap();
        assert!(relative_gap(cell("flop_per_s"), flops / (ns / 1e9)) < 1e-9);
        // Printed to 2 decimals.
        assert!((cell("flop_per_dram_byte") - flops / bytes).abs() <= 0.005 + 1e-9);
    }
}

/// FLOPs per L2 byte, as per DRAM byte, from the capture that counted both
/// FLOP parts and the L2 and L1/TEX bytes: per launch from its own cells,
/// per kernel from their sums; the details page gives the same bytes.
#[test]
fn flops_per_l2_byte_and_cache_bytes_equal_the_raw_cells() {
    let stem = "h200_llama2L_flops_200kernels";
    let raw_path = ncu_sample(&format!("{stem}.raw_baseunits"));
    let raw = digest_file(&raw_path, &NcuOptions::default());
    let details = digest_file(
        &ncu_sample(&format!("{stem}.details_baseunits")),
        &NcuOptions::default(),
    );
    let cells = raw_cells(&raw_path);
    let by_id = cells_by_id(&cells);
    let mut sums: HashMap<&str, (f64, f64, f64)> = HashMap::new();
    for l in &raw.launches {
        let row = by_id[&l.id];
        let l2 = number(&row["lts__t_bytes.sum"]).unwrap();
        let l1 = number(&row["l1tex__t_bytes.sum"]).unwrap();
        let flops = l.flops.flops.unwrap();
        assert_eq!(
            (l.l2_bytes, l.l1_bytes),
            (Some(l2), Some(l1)),
            "id {}",
            l.id
        );
        if l2 > 0.0 {
            assert!(relative_gap(l.flop_per_l2_byte.unwrap(), flops / l2) < 1e-12);
        }
        let s = sums.entry(&l.kernel).or_default();
        *s = (s.0 + flops, s.1 + l2, s.2 + l1);
    }
    for k in &raw.kernels {
        let (flops, l2, l1) = sums[k.kernel.as_deref().unwrap()];
        assert!(relative_gap(k.l2_bytes.unwrap(), l2) < 1e-12);
        assert!(relative_gap(k.l1_bytes.unwrap(), l1) < 1e-12);
        assert!(relative_gap(k.flop_per_l2_byte.unwrap(), flops / l2) < 1e-12);
    }
    let bytes_by_id = |d: &NcuDigest| -> Vec<(u64, Option<f64>, Option<f64>)> {
        d.launches
            .iter()
            .map(|l| (l.id, l.l2_bytes, l.l1_bytes))
            .collect()
    };
    assert_eq!(bytes_by_id(&details), bytes_by_id(&raw));
    let (code, out, err) = run("ncu-digest", &[&ncu_arg(&format!("{stem}.raw_baseunits"))]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("FLOP/L2 B: FLOPs per byte requested of L2"),
        "{out}"
    );
    let (_, csv, _) = run(
        "ncu-digest",
        &[&ncu_arg(&format!("{stem}.raw_baseunits")), "-f", "csv"],
    );
    for row in &csv_rows(csv.as_bytes()) {
        let (flops, l2, _) = sums[row["kernel"].as_str()];
        // Printed to 2 decimals.
        assert!((number(&row["flop_per_l2_byte"]).unwrap() - flops / l2).abs() <= 0.005 + 1e-9);
    }
}

/// Why no FLOPs per L1 byte: the kernels that load through the TMA (the
/// nvjet GEMMs, cuDNN's flash attention) count almost no L1/TEX bytes, far
/// fewer than they read from DRAM, while the elementwise kernels count
/// more than that.
#[test]
fn tma_kernels_count_almost_no_l1_bytes() {
    let d = digest_file(
        &ncu_sample("h200_llama2L_flops_200kernels.raw_baseunits"),
        &NcuOptions::default(),
    );
    let share = |pattern: &str| -> Vec<f64> {
        d.kernels
            .iter()
            .filter(|k| k.kernel.as_deref().unwrap().contains(pattern))
            .map(|k| k.l1_bytes.unwrap() / k.dram_bytes.unwrap())
            .collect()
    };
    let tma: Vec<f64> = ["nvjet_sm90", "flash_fprop_wgmma"]
        .iter()
        .flat_map(|p| share(p))
        .collect();
    assert!(tma.len() >= 4, "{tma:?}");
    assert!(tma.iter().all(|s| *s < 0.01), "{tma:?}");
    let elementwise = share("vectorized_elementwise_kernel<8");
    assert!(!elementwise.is_empty() && elementwise.iter().all(|s| *s > 1.0));
}

/// A capture with L2 bytes but no FLOP total (NERSC's recipe counts no
/// tensor work) keeps its bytes and shows no L2 intensity.
#[test]
fn l2_bytes_without_a_flop_total_give_no_intensity() {
    let stem = "h200_llama2L_roofline_60kernels.raw_baseunits";
    let d = digest_file(&ncu_sample(stem), &NcuOptions::default());
    assert_eq!(d.launches.len(), 60);
    assert!(d
        .launches
        .iter()
        .all(|l| l.l2_bytes.is_some() && l.l1_bytes.is_some()));
    assert!(d.launches.iter().all(|l| l.flop_per_l2_byte.is_none()));
    assert!(d.kernels.iter().all(|k| k.flop_per_l2_byte.is_none()));
    let (code, out, err) = run("ncu-digest", &[&ncu_arg(stem)]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("FLOP/L2 B"), "{out}");
}
