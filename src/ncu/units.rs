//! Numbers and units as ncu prints them. Values are converted to base units
//! (byte, ns, byte/s, Hz, %, cycle, …) whatever the export path chose:
//! auto-scaled (`Mbyte`, `us`, `Tbyte/s`, `Ghz`), base (`byte`, `ns`, `hz`),
//! or the 2020-era spellings (`nsecond`, `cycle/second`). Thousands
//! separators follow the exporting locale: `1,234.5`, `1.234,5`, `1234.5`.

/// How a number's separators are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalStyle {
    /// `1,234.5`; a lone comma is read as a decimal comma only when it
    /// cannot be a thousands separator (`1,5`).
    #[default]
    Auto,
    /// `1.234,5` (`--decimal-comma`).
    Comma,
}

/// Text that means "no value".
pub fn is_missing(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || t.eq_ignore_ascii_case("n/a")
        || t.eq_ignore_ascii_case("no data")
        || t.eq_ignore_ascii_case("nan")
        || t.eq_ignore_ascii_case("-nan")
        || t.eq_ignore_ascii_case("inf")
        || t.eq_ignore_ascii_case("-inf")
        || t.eq_ignore_ascii_case("infinity")
}

fn is_grouped(digits: &str, sep: char) -> bool {
    let mut parts = digits.split(sep);
    let first = parts.next().unwrap_or("");
    let first = first.strip_prefix('-').unwrap_or(first);
    !first.is_empty()
        && first.len() <= 3
        && first.bytes().all(|b| b.is_ascii_digit())
        && parts.all(|p| p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Parse one value cell. `--print-metric-instances` tails (`1,024 (512; 512)`)
/// are dropped; missing markers, NaN and infinities give `None`.
pub fn parse_number(text: &str, style: DecimalStyle) -> Option<f64> {
    let mut t = text.trim();
    if let Some(i) = t.find(" (") {
        t = &t[..i];
    }
    if t.starts_with('(') || is_missing(t) {
        return None;
    }
    let normalised: String = match style {
        DecimalStyle::Comma => t.replace('.', "").replace(',', "."),
        DecimalStyle::Auto => {
            let (commas, dots) = (t.matches(',').count(), t.matches('.').count());
            match (commas, dots) {
                (0, 0) | (0, 1) => t.to_string(),
                (0, _) if is_grouped(t, '.') => t.replace('.', ""),
                (_, 0) if is_grouped(t, ',') => t.replace(',', ""),
                (1, 0) => t.replace(',', "."),
                (_, 1) if t.rfind(',') < t.rfind('.') => t.replace(',', ""),
                (1, _) if t.rfind('.') < t.rfind(',') => t.replace('.', "").replace(',', "."),
                _ => return None,
            }
        }
    };
    let v: f64 = normalised.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A base unit after conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUnit(pub String);

/// Factor to base units and the base unit's name, e.g. `Mbyte` → (1e6, byte),
/// `us` → (1e3, ns), `Tbyte/s` → (1e12, byte/s), `Ghz` → (1e9, Hz),
/// `cycle/nsecond` → (1e9, Hz), `Kbyte/cycle` → (1e3, byte/cycle).
/// Unknown units keep factor 1 and their own name.
pub fn to_base(unit: &str) -> (f64, String) {
    let unit = unit.trim();
    if unit.is_empty() || unit == "%" {
        return (1.0, unit.to_string());
    }
    if let Some(t) = time_factor(unit) {
        return (t, "ns".into());
    }
    if let Some(f) = frequency_factor(unit) {
        return (f, "Hz".into());
    }
    let (num, den) = match unit.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (unit, None),
    };
    let (nf, nbase) = split_prefix(num);
    match den {
        None => (nf, nbase.to_string()),
        Some(d) => match per_time_factor(d) {
            Some(df) => (nf * df, format!("{nbase}/s")),
            None => {
                let (df, dbase) = split_prefix(d);
                (nf / df, format!("{nbase}/{dbase}"))
            }
        },
    }
}

/// ns per unit of a duration unit.
fn time_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" | "nsecond" | "nsec" => 1.0,
        "us" | "usecond" | "usec" => 1e3,
        "ms" | "msecond" | "msec" => 1e6,
        "s" | "second" | "sec" => 1e9,
        _ => return None,
    })
}

/// Multiplier that turns "per this time unit" into "per second".
fn per_time_factor(unit: &str) -> Option<f64> {
    time_factor(unit).map(|ns| 1e9 / ns)
}

fn frequency_factor(unit: &str) -> Option<f64> {
    let lower = unit.to_ascii_lowercase();
    if let Some(den) = lower.strip_prefix("cycle/") {
        return per_time_factor(den);
    }
    Some(match lower.as_str() {
        "hz" => 1.0,
        "khz" => 1e3,
        "mhz" => 1e6,
        "ghz" => 1e9,
        _ => return None,
    })
}

/// Split an SI prefix (K, M, G, T, P; factor 1000) off a unit whose
/// remainder is a known counted unit.
fn split_prefix(unit: &str) -> (f64, &str) {
    const BASES: &[&str] = &[
        "byte", "cycle", "inst", "sector", "request", "warp", "thread", "block", "cluster",
        "register", "branches", "pass", "SM",
    ];
    let factor = |c: char| match c {
        'K' | 'k' => Some(1e3),
        'M' => Some(1e6),
        'G' => Some(1e9),
        'T' => Some(1e12),
        'P' => Some(1e15),
        _ => None,
    };
    let mut chars = unit.chars();
    if let (Some(c), rest) = (chars.next(), chars.as_str()) {
        if let Some(f) = factor(c) {
            if BASES.contains(&rest) {
                return (f, rest);
            }
        }
    }
    (1.0, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_locale_seen() {
        let a = DecimalStyle::Auto;
        assert_eq!(parse_number("61,796", a), Some(61796.0));
        assert_eq!(
            parse_number("3,432,900,296,150.05", a),
            Some(3432900296150.05)
        );
        assert_eq!(parse_number("27.595.520", a), Some(27595520.0));
        assert_eq!(parse_number("1.234,5", a), Some(1234.5));
        assert_eq!(parse_number("1,5", a), Some(1.5));
        assert_eq!(parse_number("0.000085", a), Some(0.000085));
        assert_eq!(
            parse_number("2,621,440 (131,072; 131,072)", a),
            Some(2621440.0)
        );
        assert_eq!(parse_number("1.234", DecimalStyle::Comma), Some(1234.0));
        assert_eq!(parse_number("12,5", DecimalStyle::Comma), Some(12.5));
        for missing in [
            "",
            "n/a",
            "N/A",
            "no data",
            "nan",
            "inf",
            "-inf",
            "(0.00; 0)",
            "1,2,3.4.5",
        ] {
            assert_eq!(parse_number(missing, a), None, "{missing}");
        }
    }

    #[test]
    fn units_to_base() {
        let cases = [
            ("Mbyte", 1e6, "byte"),
            ("byte", 1.0, "byte"),
            ("us", 1e3, "ns"),
            ("nsecond", 1.0, "ns"),
            ("usecond", 1e3, "ns"),
            ("Tbyte/s", 1e12, "byte/s"),
            ("byte/second", 1.0, "byte/s"),
            ("Ghz", 1e9, "Hz"),
            ("hz", 1.0, "Hz"),
            ("cycle/second", 1.0, "Hz"),
            ("cycle/nsecond", 1e9, "Hz"),
            ("Kbyte/cycle", 1e3, "byte/cycle"),
            ("%", 1.0, "%"),
            ("Ksector", 1e3, "sector"),
            ("register/thread", 1.0, "register/thread"),
        ];
        for (unit, f, base) in cases {
            let (gf, gb) = to_base(unit);
            assert!((gf - f).abs() < f * 1e-12, "{unit}: {gf}");
            assert_eq!(gb, base, "{unit}");
        }
    }
}
