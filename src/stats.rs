//! Summary statistics computed the way `nsys stats` computes them: sample
//! standard deviation (n−1, 0 for one value), median as the mean of the two
//! middle values, and results rounded half away from zero to one decimal
//! when printed.

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

impl DurationStats {
    /// Summarise `values`; reorders them. `None` when empty.
    pub fn from_values(values: &mut [i64]) -> Option<DurationStats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len();
        let total: i128 = values.iter().map(|&v| v as i128).sum();
        let avg = total as f64 / n as f64;
        let (min, max) = values
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        // Selection, not a sort: linear time on the large groups.
        let (below, &mut upper, _) = values.select_nth_unstable(n / 2);
        let median = if n % 2 == 1 {
            upper as f64
        } else {
            let lower = below.iter().copied().max().unwrap_or(upper);
            (lower as f64 + upper as f64) / 2.0
        };
        let stddev = if n > 1 {
            let ss: f64 = values
                .iter()
                .map(|&v| {
                    let d = v as f64 - avg;
                    d * d
                })
                .sum();
            (ss / (n as f64 - 1.0)).sqrt()
        } else {
            0.0
        };
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

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`DurationStats::from_values`] over the list, widened into
    /// `scratch` (reused across groups); `None` when empty.
    pub fn stats(&self, scratch: &mut Vec<i64>) -> Option<DurationStats> {
        scratch.clear();
        scratch.extend(self.short.iter().map(|&v| i64::from(v)));
        scratch.extend_from_slice(&self.long);
        DurationStats::from_values(scratch)
    }
}

/// Round half away from zero to one decimal, as SQLite's `round(x, 1)` does
/// in the report scripts.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Percentage `part / whole`, 0 when `whole` is 0.
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        100.0 * part / whole
    }
}

/// Round half away from zero to `decimals` places.
pub fn round_to(x: f64, decimals: usize) -> f64 {
    let scale = 10f64.powi(decimals as i32);
    (x * scale).round() / scale
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

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round1(0.25), 0.3);
        assert_eq!(round1(2.5), 2.5);
        assert_eq!(round1(-0.25), -0.3);
    }
}
