//! The Parquet hand-off (feature `parquet`): files written by
//! `--export-parquet` open with polars and hold every profile's rows.

use crate::common::*;
use assert_cmd::Command;
use nsight_digest::export::polars::prelude::*;

fn read(path: &std::path::Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(file).finish().unwrap()
}

/// `nsys-digest INPUT --export-parquet DIR --quiet EXTRA...` into a temp folder.
fn export(input: &std::path::Path, extra: &[&str]) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let status = Command::cargo_bin("nsys-digest")
        .unwrap()
        .arg(input)
        .arg("--export-parquet")
        .arg(out.path())
        .arg("--quiet")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

#[test]
fn folder_export_opens_with_polars() {
    let out = export(&repo().join("samples"), &[]);
    // Both tables hold each sample's kernel time once: per name, and per
    // (phase, category).
    for (table, column) in [("kernels", "total_ns"), ("categories", "gpu_ns")] {
        let df = read(&out.path().join(format!("{table}.parquet")));
        let profiles = df.column("profile").unwrap().str().unwrap().clone();
        let totals = df.column(column).unwrap().i64().unwrap().clone();
        for s in SAMPLES {
            let want: i64 = groundtruth(s, "cuda_gpu_kern_sum")
                .iter()
                .map(|r| int(r, "Total Time (ns)"))
                .sum();
            let got: i64 = profiles
                .iter()
                .zip(totals.iter())
                .filter(|(p, _)| p.is_some_and(|p| p.ends_with(&format!("{s}.sqlite.gz"))))
                .map(|(_, t)| t.unwrap())
                .sum();
            assert_eq!(got, want, "{table} {s}");
        }
    }
    // The columns are what readers' queries name, so they are pinned here.
    for (table, columns) in [
        (
            "kernels",
            "profile,name,pid,device,instances,total_ns,avg_ns,median_ns,min_ns,max_ns,stddev_ns,share_pct",
        ),
        (
            "nvtx",
            "profile,range,style,instances,total_ns,median_ns,proj_total_ns,gpu_ops",
        ),
        (
            "phases",
            "profile,phase,steps,gpu_ns,tokens,gpu_ns_per_token,step_median_ns,step_p90_ns,gpu_busy_pct,api_calls_per_step,api_ns_per_step",
        ),
        (
            "steps",
            "profile,step,phase,range,filter_index,start_ns,duration_ns,gpu_ns,kernels,tokens,vs_phase_median,gpu_start_ns,gpu_end_ns,gpu_busy_ns,gpu_busy_pct,api_calls,api_ns",
        ),
        (
            "layers",
            "profile,layer_type,phase,layers,kernels,gpu_ns,share_pct",
        ),
        (
            "categories",
            "profile,phase,category,gpu_ns,share_of_phase_pct,instances,kernel_names",
        ),
        (
            "communication",
            "profile,device,kernels,gpu_ns,busy_ns,overlapped_ns,overlapped_pct,exposed_ns",
        ),
    ] {
        let df = read(&out.path().join(format!("{table}.parquet")));
        assert!(df.height() > 0, "{table}");
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names.join(","), columns, "{table}");
    }
    // One GPU of one sample runs NCCL: its row is the kernel table's sweep.
    let comm = read(&out.path().join("communication.parquet"));
    assert_eq!(comm.height(), 1);
    let profile = comm
        .column("profile")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap();
    assert!(profile.ends_with("h200_nccl_onerank_allreduce_overlap.sqlite.gz"));
    let (_dir, conn) = sample_sql("h200_nccl_onerank_allreduce_overlap");
    let (kernels, gpu_ns, busy, overlapped) = crate::llm::comm_from_sql(&conn)[&0];
    let int_at = |c: &str| comm.column(c).unwrap().i64().unwrap().get(0).unwrap();
    assert_eq!(int_at("kernels"), kernels as i64);
    assert_eq!(int_at("gpu_ns"), gpu_ns);
    assert_eq!(int_at("busy_ns"), busy);
    assert_eq!(int_at("overlapped_ns"), overlapped);
    assert_eq!(int_at("exposed_ns"), busy - overlapped);
    let phases = read(&out.path().join("phases.parquet"));
    let want: usize = SAMPLES
        .iter()
        .map(|s| {
            digest_sample(s, &Default::default())
                .llm
                .phases
                .phases
                .len()
        })
        .sum();
    assert_eq!(phases.height(), want, "a row per phase of each sample");
    // A row per step, each step's GPU time as the digest has it.
    let steps = read(&out.path().join("steps.parquet"));
    let gpu: i64 = steps
        .column("gpu_ns")
        .unwrap()
        .i64()
        .unwrap()
        .sum()
        .unwrap();
    let want: i64 = SAMPLES
        .iter()
        .flat_map(|s| digest_sample(s, &Default::default()).llm.steps)
        .map(|s| s.gpu_ns)
        .sum();
    assert!(want > 0);
    assert_eq!(gpu, want);
}

/// With `--by-process`, the kernel rows of a two-process profile carry
/// their process and device, and each process's rows add up to its
/// kernels in the export; without it, both columns are null.
#[test]
fn kernel_rows_name_their_process_with_by_process() {
    let name = "h200_llama8_2procs_graphs_node_1step";
    let (_dir, conn) = sample_sql(name);
    let mut raw: Vec<(i64, i64)> = conn
        .prepare(
            "SELECT (globalPid >> 24) & 16777215, sum(end - start) \
             FROM CUPTI_ACTIVITY_KIND_KERNEL GROUP BY 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    raw.sort();
    let split = read(
        &export(&sample(name), &["--by-process"])
            .path()
            .join("kernels.parquet"),
    );
    let pids = split.column("pid").unwrap().i64().unwrap().clone();
    let totals = split.column("total_ns").unwrap().i64().unwrap().clone();
    let mut per_pid: std::collections::BTreeMap<i64, i64> = Default::default();
    for (p, t) in pids.iter().zip(totals.iter()) {
        *per_pid.entry(p.unwrap()).or_default() += t.unwrap();
    }
    assert_eq!(per_pid.into_iter().collect::<Vec<_>>(), raw);
    assert_eq!(split.column("device").unwrap().null_count(), 0);
    let merged = read(&export(&sample(name), &[]).path().join("kernels.parquet"));
    for column in ["pid", "device"] {
        assert_eq!(merged.column(column).unwrap().null_count(), merged.height());
    }
}
