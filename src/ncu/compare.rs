//! `ncu-digest diff BASE NEW`: kernels (or NVTX ranges, per `--group`)
//! matched by name, compared per launch (mean duration, bandwidth, % of
//! peak, load/store efficiency), so runs that profiled a different number of
//! launches compare fairly. A matched kernel whose bound-ness or load paths
//! changed is listed as well.

use super::{Group, KernelAggregate, NcuDigest};
use crate::diff::{finish, DiffReport, DiffRow, VerdictChange, Worse};
use std::collections::BTreeMap;

/// A kernel's duration change gates only when it moves the file's total
/// duration per launch by at least this many percent.
pub const MIN_IMPACT_PCT: f64 = 1.0;

fn per_launch(k: &KernelAggregate) -> Option<f64> {
    k.duration_ns.map(|d| d / k.launches as f64)
}

fn key(k: &KernelAggregate) -> String {
    match (&k.kernel, &k.nvtx) {
        (Some(kernel), Some(nvtx)) => format!("{nvtx}: {kernel}"),
        (Some(kernel), None) => kernel.clone(),
        (None, Some(nvtx)) => nvtx.clone(),
        (None, None) => String::new(),
    }
}

fn total_per_launch(d: &NcuDigest) -> Option<f64> {
    let total = d.total.duration_ns?;
    (d.source.launches_selected > 0).then(|| total / d.source.launches_selected as f64)
}

pub fn compare(base: &NcuDigest, new: &NcuDigest, threshold_pct: f64) -> DiffReport {
    let mut rows = vec![DiffRow::new(
        "total",
        "all kernels",
        "mean ns per launch",
        total_per_launch(base),
        total_per_launch(new),
        Worse::Higher,
        true,
    )];
    let index = |d: &NcuDigest| -> BTreeMap<String, KernelAggregate> {
        d.kernels.iter().map(|k| (key(k), k.clone())).collect()
    };
    let (kb, kn) = (index(base), index(new));
    let base_total = base.total.duration_ns.unwrap_or(0.0);
    let names: std::collections::BTreeSet<&String> = kb.keys().chain(kn.keys()).collect();
    for name in names {
        rows.extend(kernel_rows(name, kb.get(name), kn.get(name), base_total));
    }
    rows.retain(|r| r.base.is_some() || r.new.is_some());
    finish(
        &base.source.file,
        &new.source.file,
        format!("per launch, {} matched by name", matched(new.group)),
        threshold_pct,
        rows,
        &[0],
    )
    .with_verdict_changes(verdict_changes(base, &kn))
}

/// What a row is, as the group-by flag made it.
fn matched(group: Group) -> &'static str {
    match group {
        Group::Kernel => "kernels",
        Group::Nvtx => "NVTX ranges",
        Group::KernelNvtx => "kernels in NVTX ranges",
    }
}

/// Kernels on both sides whose verdicts both sides know and disagree on,
/// in the base's order (by total duration).
fn verdict_changes(
    base: &NcuDigest,
    new: &BTreeMap<String, KernelAggregate>,
) -> Vec<VerdictChange> {
    let mut changes = Vec::new();
    for b in &base.kernels {
        let name = key(b);
        let Some(n) = new.get(&name) else { continue };
        let mut note = |verdict: &str, pair: Option<(String, String)>| {
            if let Some((base, new)) = pair.filter(|(x, y)| x != y) {
                changes.push(VerdictChange {
                    name: name.clone(),
                    verdict: verdict.into(),
                    base,
                    new,
                });
            }
        };
        note(
            "bound",
            b.bound
                .zip(n.bound)
                .map(|(x, y)| (x.as_str().into(), y.as_str().into())),
        );
        note(
            "loads via",
            b.load_paths
                .zip(n.load_paths)
                .map(|(x, y)| (x.label(), y.label())),
        );
    }
    changes
}

/// One kernel's rows: time per launch, DRAM bandwidth and the two
/// efficiencies. Only a material change in time counts as a regression,
/// and an efficiency only where the kernel ran on both sides.
fn kernel_rows(
    name: &str,
    b: Option<&KernelAggregate>,
    n: Option<&KernelAggregate>,
    base_total: f64,
) -> [DiffRow; 4] {
    let material = is_material(b, n, base_total);
    let both = b.is_some() && n.is_some();
    let get = |k: Option<&KernelAggregate>, f: fn(&KernelAggregate) -> Option<f64>| k.and_then(f);
    let efficiency = |metric: &str, f: fn(&KernelAggregate) -> Option<f64>| {
        DiffRow::new(
            "efficiency",
            name,
            metric,
            get(b, f),
            get(n, f),
            Worse::Lower,
            both && material,
        )
    };
    [
        DiffRow::new(
            "kernels",
            name,
            "mean ns per launch",
            get(b, per_launch),
            get(n, per_launch),
            Worse::Higher,
            material,
        ),
        DiffRow::new(
            "kernels",
            name,
            "DRAM GB/s",
            get(b, |k| k.dram_bandwidth_bytes_per_s.map(|v| v / 1e9)),
            get(n, |k| k.dram_bandwidth_bytes_per_s.map(|v| v / 1e9)),
            Worse::Lower,
            false,
        ),
        efficiency("ld efficiency %", |k| k.ld_efficiency_pct),
        efficiency("st efficiency %", |k| k.st_efficiency_pct),
    ]
}

/// Does the change in time per launch move the base's total by at least
/// `MIN_IMPACT_PCT`?
fn is_material(b: Option<&KernelAggregate>, n: Option<&KernelAggregate>, base_total: f64) -> bool {
    match (b.and_then(per_launch), n.and_then(per_launch), b) {
        (Some(x), Some(y), Some(bk)) if base_total > 0.0 => {
            100.0 * (y - x).abs() * bk.launches as f64 / base_total >= MIN_IMPACT_PCT
        }
        _ => false,
    }
}
