//! Summary statistics computed the way `nsys stats` computes them: sample
//! standard deviation (n−1, 0 for one value), median as the mean of the two
//! middle values, and results rounded half away from zero to one decimal
//! when printed. The deviation comes from an exact integer sum of squares,
//! so it is the same whatever order a report collected its durations in.

use serde::Serialize;

/// Count, sum and spread of a set of nanosecond durations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DurationStats {
    #[serde(rename = "instances")]
    pub count: u64,
    pub total_ns: i64,
    pub avg_ns: f64,
    pub median_ns: f64,
    pub min_ns: i64,
    pub max_ns: i64,
    pub stddev_ns: f64,
}

/// Sample standard deviation from the count, sum and sum of squares, as
/// `sqrt((n·Σv² − (Σv)²) / (n·(n − 1)))` with the numerator in exact
/// integers. `None` where `n²` times the `largest` square might pass 128
/// bits: then the sum of squares may have wrapped.
fn exact_stddev(n: usize, total: i128, squares: u128, largest: u64) -> Option<f64> {
    let n_wide = n as u128;
    (u128::from(largest) * u128::from(largest))
        .checked_mul(n_wide)?
        .checked_mul(n_wide)?;
    let spread = squares * n_wide - total.unsigned_abs() * total.unsigned_abs();
    Some((spread as f64 / (n as f64 * (n as f64 - 1.0))).sqrt())
}

/// Sample standard deviation in two passes of floating point, for sums of
/// squares that might pass 128 bits (a million durations of hours each).
fn two_pass_stddev<T: Copy + Into<i64>>(values: &[T], avg: f64) -> f64 {
    let ss: f64 = values
        .iter()
        .map(|&v| {
            let d = v.into() as f64 - avg;
            d * d
        })
        .sum();
    (ss / (values.len() as f64 - 1.0)).sqrt()
}

impl DurationStats {
    /// Summarise `values`; reorders them. `None` when empty. Generic so the
    /// 4-byte lists of [`DurationList`] are summarised where they lie:
    /// widening 35 M durations at 1 GB cost a copy larger than the cache.
    pub fn from_values<T: Copy + Ord + Into<i64>>(values: &mut [T]) -> Option<DurationStats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let (total, squares, min, max) = moments(values);
        let avg = total as f64 / n as f64;
        let largest = min.unsigned_abs().max(max.unsigned_abs());
        let stddev = if n == 1 {
            0.0
        } else {
            exact_stddev(n, total, squares, largest).unwrap_or_else(|| two_pass_stddev(values, avg))
        };
        let median = median(values);
        Some(DurationStats {
            count: n as u64,
            total_ns: total as i64,
            avg_ns: avg,
            median_ns: median,
            min_ns: min,
            max_ns: max,
            stddev_ns: stddev,
        })
    }
}

/// Sum, sum of squares, minimum and maximum, in one pass: past the cache
/// every pass is a read of the whole list. The squares are summed exactly,
/// so the deviation does not depend on the list's order.
fn moments<T: Copy + Into<i64>>(values: &[T]) -> (i128, u128, i64, i64) {
    values.iter().fold(
        (0i128, 0u128, i64::MAX, i64::MIN),
        |(sum, sq, lo, hi), &v| {
            let v: i64 = v.into();
            let square = u128::from(v.unsigned_abs()) * u128::from(v.unsigned_abs());
            (
                sum + i128::from(v),
                sq.wrapping_add(square),
                lo.min(v),
                hi.max(v),
            )
        },
    )
}

/// The median of a non-empty list, which it reorders. Selection, not a
/// sort: linear time on the large groups.
fn median<T: Copy + Ord + Into<i64>>(values: &mut [T]) -> f64 {
    let n = values.len();
    let (below, &mut upper, _) = values.select_nth_unstable(n / 2);
    let upper: i64 = upper.into();
    if n % 2 == 1 {
        upper as f64
    } else {
        let lower = below.iter().copied().max().map_or(upper, Into::into);
        (lower as f64 + upper as f64) / 2.0
    }
}

/// Durations as a report collects them, 4 bytes each where they fit (up to
/// 4.29 s, not negative), 8 for the rare rest: the per-group lists of the
/// big reports hold one entry per kernel or call, millions at 1 GB.
#[derive(Debug, Clone, Default)]
pub struct DurationList {
    short: Vec<u32>,
    long: Vec<i64>,
}

impl DurationList {
    pub fn push(&mut self, ns: i64) {
        match u32::try_from(ns) {
            Ok(v) => self.short.push(v),
            Err(_) => self.long.push(ns),
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Moves `other`'s durations to the end of this list.
    pub fn append(&mut self, mut other: DurationList) {
        if self.is_empty() {
            *self = other;
        } else {
            self.short.append(&mut other.short);
            self.long.append(&mut other.long);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `other`'s durations to the end of this list.
    pub fn extend_from(&mut self, other: &DurationList) {
        self.short.extend_from_slice(&other.short);
        self.long.extend_from_slice(&other.long);
    }

    /// Empties the list, keeping its capacity for the next group.
    pub fn clear(&mut self) {
        self.short.clear();
        self.long.clear();
    }

    /// [`DurationStats::from_values`] over the list, in place when every
    /// duration is short, else widened into `scratch` (reused across
    /// groups); `None` when empty. Reorders the list.
    pub fn stats(&mut self, scratch: &mut Vec<i64>) -> Option<DurationStats> {
        if self.long.is_empty() {
            return DurationStats::from_values(&mut self.short);
        }
        scratch.clear();
        scratch.extend(self.short.iter().map(|&v| i64::from(v)));
        scratch.extend_from_slice(&self.long);
        DurationStats::from_values(scratch)
    }
}

/// Round to one decimal, as SQLite's `round(x, 1)` does in the report
/// scripts; see [`round_to`].
pub fn round1(x: f64) -> f64 {
    round_to(x, 1)
}

/// Percentage `part / whole`, 0 when `whole` is 0.
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        100.0 * part / whole
    }
}

/// Round to `decimals` places as SQLite's `round(x, n)` does since 3.43
/// (nsys 2025 bundles such a build): on the double's exact decimal value,
/// halves away from zero. Scaling first, `(x * 10.0).round()`, rounds
/// 786154383 / 20 (39307719.1499999985…) up to .2 where nsys prints .1.
pub fn round_to(x: f64, decimals: usize) -> f64 {
    let d = decimals as i32;
    // An exact half at `decimals` places is an odd multiple of 2^-(d+1);
    // Rust's formatting would take those to even.
    let halves = x * 2f64.powi(d + 1);
    let exact_half = halves.fract() == 0.0 && halves % 2.0 != 0.0;
    if exact_half || !x.is_finite() {
        let scale = 10f64.powi(d);
        return (x * scale).round() / scale;
    }
    format!("{x:.decimals$}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_value_has_zero_spread() {
        let s = DurationStats::from_values(&mut [42]).unwrap();
        assert_eq!((s.count, s.total_ns, s.min_ns, s.max_ns), (1, 42, 42, 42));
        assert_eq!(s.stddev_ns, 0.0);
        assert_eq!(s.median_ns, 42.0);
    }

    #[test]
    fn even_count_median_is_mean_of_middle_pair() {
        let s = DurationStats::from_values(&mut [4, 1, 3, 2]).unwrap();
        assert_eq!(s.median_ns, 2.5);
        // sample stddev of 1..=4
        assert!((s.stddev_ns - 1.2909944487358056).abs() < 1e-12);
    }

    /// Hand-made values on both sides of the 4-byte range: the list's
    /// stats equal those of the plain values.
    #[test]
    fn duration_list_keeps_values_that_do_not_fit_in_4_bytes() {
        let values = [5, -3, 1 << 33, 0, 4_294_967_295, 7];
        let mut list = DurationList::default();
        for v in values {
            list.push(v);
        }
        assert_eq!(list.len(), values.len());
        let got = list.stats(&mut Vec::new()).unwrap();
        let want = DurationStats::from_values(&mut values.to_vec()).unwrap();
        assert_eq!(
            (got.count, got.total_ns, got.min_ns, got.max_ns),
            (want.count, want.total_ns, want.min_ns, want.max_ns)
        );
        assert_eq!(got.median_ns, want.median_ns);
        assert!((got.stddev_ns - want.stddev_ns).abs() <= 1e-9 * want.stddev_ns);
        assert!(DurationList::default().stats(&mut Vec::new()).is_none());
    }

    /// Hand-made: a list of 4-byte durations only is summarised in place,
    /// and must give what the widened values give.
    #[test]
    fn short_list_in_place_equals_widened_values() {
        let values: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1009 + 3).collect();
        let mut list = DurationList::default();
        for &v in &values {
            list.push(v);
        }
        let got = list.stats(&mut Vec::new()).unwrap();
        let want = DurationStats::from_values(&mut values.clone()).unwrap();
        assert_eq!(got, want);
    }

    /// Hand-made values: the exact deviation does not depend on the
    /// order, and agrees with the two-pass definition.
    #[test]
    fn deviation_is_the_same_in_any_order() {
        let values: Vec<i64> = (0..5000).map(|i| (i * 7919) % 100_003 + 1_000).collect();
        let forward = DurationStats::from_values(&mut values.clone()).unwrap();
        let mut reversed: Vec<i64> = values.iter().rev().copied().collect();
        let backward = DurationStats::from_values(&mut reversed).unwrap();
        assert_eq!(forward.stddev_ns.to_bits(), backward.stddev_ns.to_bits());
        let two_pass = two_pass_stddev(&values, forward.avg_ns);
        assert!((forward.stddev_ns - two_pass).abs() <= 1e-12 * two_pass);
    }

    /// Hand-made durations of about 146 years, as no real file has: their
    /// squares could pass 128 bits, so the two-pass path answers.
    #[test]
    fn huge_durations_take_the_two_pass_path() {
        let values = [1i64 << 62, (1 << 62) - 12_345, (1 << 61) + 999, 5, 1 << 60];
        let n = values.len();
        let total: i128 = values.iter().map(|&v| i128::from(v)).sum();
        let squares = values.iter().fold(0u128, |s, &v| {
            s.wrapping_add(u128::from(v.unsigned_abs()).pow(2))
        });
        assert_eq!(exact_stddev(n, total, squares, 1 << 62), None);
        let got = DurationStats::from_values(&mut values.to_vec()).unwrap();
        assert_eq!(got.stddev_ns, two_pass_stddev(&values, got.avg_ns));
        assert!(got.stddev_ns > 1e18);
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round1(0.25), 0.3);
        assert_eq!(round1(2.5), 2.5);
        assert_eq!(round1(-0.25), -0.3);
        assert_eq!(round_to(0.125, 2), 0.13);
    }

    /// What SQLite 3.46 (rusqlite's bundled build) gives for `round(x, 1)`:
    /// a value just under a half goes down, one just over goes up.
    #[test]
    fn rounds_the_exact_value_like_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for x in [
            786154383.0 / 20.0,
            1.05,
            0.45,
            0.15,
            12345.65,
            -0.35,
            1.25,
            0.75,
            2.675,
            1e300,
            123456789012.95,
        ] {
            for d in [1, 2] {
                let sql: f64 = conn
                    .query_row("SELECT round(?1, ?2)", rusqlite::params![x, d], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(round_to(x, d as usize), sql, "round({x}, {d})");
            }
        }
    }
}
