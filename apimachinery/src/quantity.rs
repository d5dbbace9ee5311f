//! `resource.Quantity` (k8s.io/apimachinery/pkg/api/resource/quantity.go):
//! parsing, exact comparison and the canonical string form the API server
//! stores and returns (`0.5` → `500m`, `1024Mi` → `1Gi`).
//!
//! Hand-written because k8s-openapi's `Quantity` is only a string wrapper and
//! no maintained crate reproduces the canonical form; the arithmetic is exact
//! on a 128-bit decimal mantissa, which covers every value a resource list
//! can sensibly hold (larger ones are reported as unparseable numbers).

use std::cmp::Ordering;

/// How the quantity was written, which decides how it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `e3`/`E6` exponents.
    DecimalExponent,
    /// `Ki`, `Mi`, … suffixes.
    BinarySI,
    /// `m`, `k`, `M`, … suffixes or none.
    DecimalSI,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// An exact quantity: `unscaled × 10^-scale`, as upstream's `inf.Dec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    unscaled: i128,
    scale: i32,
    pub format: Format,
}

/// Values finer than nano are rounded up to it (upstream's `Nano` scale).
const NANO_SCALE: i32 = 9;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Divides by 10^n rounding away from zero.
fn div_pow10_away(v: i128, n: u32) -> Option<i128> {
    let d = pow10(n)?;
    let q = v / d;
    Some(if v % d == 0 { q } else { q + v.signum() })
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// `parseQuantityString`, including its leniencies (`1.G`, a lone sign).
fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    if pos < end {
        match b[0] {
            b'-' => {
                positive = false;
                pos += 1;
            }
            b'+' => pos += 1,
            _ => {}
        }
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// `suffixer.interpret`: (base, exponent, format).
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let dec = |e| Some((10, e, Format::DecimalSI));
    let bin = |e| Some((2, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let e: i32 = s[1..].parse().ok()?;
            Some((10, e, Format::DecimalExponent))
        }
        _ => None,
    }
}

impl Quantity {
    /// `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        let parts = split(s)?;
        let (base, exponent, mut format) = interpret(parts.suffix).ok_or(QuantityError::Suffix)?;
        let digits = format!("{}{}", parts.num, parts.denom);
        let mut unscaled: i128 = digits.parse().map_err(|_| QuantityError::Numeric)?;
        let mut scale = i32::try_from(parts.denom.len()).map_err(|_| QuantityError::Numeric)?;
        if base == 10 {
            scale -= exponent;
        } else {
            let shift = u32::try_from(exponent).map_err(|_| QuantityError::Numeric)?;
            unscaled = unscaled
                .checked_mul(1i128 << shift)
                .ok_or(QuantityError::Numeric)?;
        }
        if !parts.positive {
            unscaled = -unscaled;
        }
        if scale > NANO_SCALE {
            let n = u32::try_from(scale - NANO_SCALE).map_err(|_| QuantityError::Numeric)?;
            unscaled = div_pow10_away(unscaled, n).unwrap_or(unscaled.signum());
            scale = NANO_SCALE;
        }
        if format == Format::BinarySI && unscaled != 0 && unscaled.abs() < pow10_i(scale) {
            format = Format::DecimalSI;
        }
        Ok(Quantity {
            unscaled,
            scale,
            format,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.unscaled == 0
    }

    pub fn is_negative(&self) -> bool {
        self.unscaled < 0
    }

    /// Exact comparison (`Quantity.Cmp`).
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        let s = self.scale.max(other.scale);
        match (self.rescaled(s), other.rescaled(s)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self
                .as_approximate_f64()
                .partial_cmp(&other.as_approximate_f64())
                .unwrap_or(Ordering::Equal),
        }
    }

    fn rescaled(&self, scale: i32) -> Option<i128> {
        let up = u32::try_from(scale - self.scale).ok()?;
        self.unscaled.checked_mul(pow10(up)?)
    }

    /// `Quantity.Add`: the exact sum, keeping this quantity's format.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let scale = self.scale.max(other.scale);
        Some(Quantity {
            unscaled: self.rescaled(scale)?.checked_add(other.rescaled(scale)?)?,
            scale,
            format: self.format,
        })
    }

    /// `Quantity.MilliValue`, rounded up.
    pub fn milli_value(&self) -> i128 {
        self.value_at_scale(3)
    }

    /// `Quantity.Value`, rounded up.
    pub fn value(&self) -> i128 {
        self.value_at_scale(0)
    }

    /// [`Self::milli_value`] as upstream's `int64`, saturating at its bounds
    /// (CPU in millicores for the container runtime).
    pub fn milli_value_i64(&self) -> i64 {
        saturate(self.milli_value())
    }

    /// [`Self::value`] as upstream's `int64`, saturating at its bounds
    /// (memory and storage in bytes).
    pub fn value_i64(&self) -> i64 {
        saturate(self.value())
    }

    /// `Quantity.AsApproximateFloat64`: the value in base units (cores,
    /// bytes), for arithmetic that upstream does in floating point.
    pub fn as_approximate_f64(&self) -> f64 {
        self.unscaled as f64 / 10f64.powi(self.scale)
    }

    fn value_at_scale(&self, scale: i32) -> i128 {
        if self.scale <= scale {
            self.rescaled(scale).unwrap_or(i128::MAX)
        } else {
            let n = u32::try_from(self.scale - scale).unwrap_or(0);
            div_pow10_away(self.unscaled, n).unwrap_or(self.unscaled.signum())
        }
    }

    /// `Quantity.RoundUp(resource.Milli)`: what `SetDefaults_ResourceList`
    /// does to every resource list value.
    pub fn round_up_to_milli(&mut self) {
        if self.scale > 3 {
            self.unscaled = self.value_at_scale(3);
            self.scale = 3;
        }
    }

    /// The canonical string (`Quantity.String()` / `CanonicalizeBytes`).
    pub fn canonical(&self) -> String {
        if self.unscaled == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self.cmp_value(&Quantity::from_int(-1024)) == Ordering::Greater
                && self.cmp_value(&Quantity::from_int(1024)) == Ordering::Less;
            if small || self.scale > 0 && self.unscaled % pow10_i(self.scale) != 0 {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            let mut v = if self.scale > 0 {
                self.unscaled / pow10_i(self.scale)
            } else {
                self.rescaled(0).unwrap_or(self.unscaled)
            };
            let mut exp = 0;
            while exp < 6 && v % 1024 == 0 {
                v /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{v}{suffix}");
        }
        // Mantissa without trailing zeros, exponent lowered to a multiple of 3.
        let mut mantissa = self.unscaled;
        let mut exp = -self.scale;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exp += 1;
        }
        while exp.rem_euclid(3) != 0 {
            match mantissa.checked_mul(10) {
                Some(m) => mantissa = m,
                None => break,
            }
            exp -= 1;
        }
        let suffix = match (format, exp) {
            (Format::DecimalExponent, 0) => String::new(),
            (Format::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".into(),
            (_, -6) => "u".into(),
            (_, -3) => "m".into(),
            (_, 0) => String::new(),
            (_, 3) => "k".into(),
            (_, 6) => "M".into(),
            (_, 9) => "G".into(),
            (_, 12) => "T".into(),
            (_, 15) => "P".into(),
            (_, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{mantissa}{suffix}")
    }

    fn from_int(v: i128) -> Quantity {
        Quantity {
            unscaled: v,
            scale: 0,
            format: Format::DecimalSI,
        }
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn pow10_i(scale: i32) -> i128 {
    u32::try_from(scale).ok().and_then(pow10).unwrap_or(1)
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        Quantity::parse(s)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The canonical form of a quantity string, or `None` when it does not
/// parse (validation reports that).
pub fn canonicalize(s: &str) -> Option<String> {
    Quantity::parse(s).ok().map(|q| q.canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    // quantity_test.go TestQuantityParse / canonical table (subset).
    #[test]
    fn canonical_forms() {
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("100m"), "100m");
        assert_eq!(canon("1500"), "1500");
        assert_eq!(canon("1000"), "1k");
        assert_eq!(canon("1.5k"), "1500");
        assert_eq!(canon("128Mi"), "128Mi");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("0.5Ki"), "512");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("12E"), "12E");
        assert_eq!(canon("1n"), "1n");
        assert_eq!(canon("0.0000000001"), "1n");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon("1.G"), "1G");
        assert_eq!(canon("500Mi"), "500Mi");
        assert_eq!(canon("2000Ki"), "2000Ki");
    }

    // ParseQuantity errors.
    #[test]
    fn parse_errors() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::FormatWrong));
        assert_eq!(Quantity::parse("1x"), Err(QuantityError::FormatWrong));
        assert_eq!(Quantity::parse("1Gb"), Err(QuantityError::FormatWrong));
        assert_eq!(Quantity::parse("1Ki2"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1.2.3"), Err(QuantityError::FormatWrong));
        assert_eq!(
            QuantityError::FormatWrong.to_string(),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn compare_and_values() {
        let a = Quantity::parse("500m").unwrap();
        let b = Quantity::parse("1").unwrap();
        assert_eq!(a.cmp_value(&b), Ordering::Less);
        assert_eq!(
            Quantity::parse("1Gi")
                .unwrap()
                .cmp_value(&Quantity::parse("1073741824").unwrap()),
            Ordering::Equal
        );
        assert_eq!(Quantity::parse("1.5").unwrap().milli_value(), 1500);
        let sum = Quantity::parse("500m")
            .unwrap()
            .checked_add(&Quantity::parse("1.5").unwrap())
            .unwrap();
        assert_eq!(sum.canonical(), "2");
        assert_eq!(Quantity::parse("1.5").unwrap().value(), 2);
        let mut q = Quantity::parse("0.0001").unwrap();
        q.round_up_to_milli();
        assert_eq!(q.canonical(), "1m");
    }

    // What the kubelet reads from a container's resources: CPU in
    // millicores and memory in bytes, both rounded up, and plain values.
    fn millicores(s: &str) -> Option<i64> {
        Quantity::parse(s).ok().map(|q| q.milli_value_i64())
    }

    fn bytes(s: &str) -> Option<i64> {
        Quantity::parse(s).ok().map(|q| q.value_i64())
    }

    fn parse(s: &str) -> Option<f64> {
        Quantity::parse(s).ok().map(|q| q.as_approximate_f64())
    }

    #[test]
    fn parses_the_common_forms() {
        assert_eq!(millicores("100m"), Some(100));
        assert_eq!(millicores("1"), Some(1000));
        assert_eq!(millicores("1.5"), Some(1500));
        assert_eq!(millicores("0.1"), Some(100));
        assert_eq!(bytes("64Mi"), Some(64 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("128974848"), Some(128_974_848));
        assert_eq!(parse("12x"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn kubelet_values_are_rounded_up_and_saturate() {
        assert_eq!(millicores("500m"), Some(500));
        assert_eq!(millicores("250m"), Some(250));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("1e3"), Some(1_000_000));
        // Finer than a millicore: rounded up to one.
        assert_eq!(millicores("0.0001"), Some(1));
        assert_eq!(millicores("1500u"), Some(2));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("1.5Gi"), Some(1_610_612_736));
        assert_eq!(bytes("500m"), Some(1));
        assert_eq!(bytes("2.5"), Some(3));
        assert_eq!(bytes("1k"), Some(1000));
        assert_eq!(bytes("1Ki"), Some(1024));
        // Past int64 a value saturates, as a float converted to it does.
        assert_eq!(millicores("1E"), Some(i64::MAX));
        assert_eq!(bytes("-1E"), Some(-1_000_000_000_000_000_000));
        assert_eq!(millicores("-1E"), Some(i64::MIN));
    }

    #[test]
    fn approximate_floats_are_base_units() {
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("1.5Gi"), Some(1_610_612_736.0));
        assert_eq!(parse("1Mi"), Some(1_048_576.0));
        assert_eq!(parse("0"), Some(0.0));
        assert_eq!(parse("1500m"), Some(1.5));
    }

    #[test]
    fn equal_amounts_in_different_forms_compare_equal() {
        let eq = |a: &str, b: &str| {
            Quantity::parse(a)
                .unwrap()
                .cmp_value(&Quantity::parse(b).unwrap())
                .is_eq()
        };
        assert!(eq("1", "1000m"));
        assert!(eq("0.5", "500m"));
        assert!(eq("1Gi", "1024Mi"));
        assert!(eq("1e3", "1k"));
        assert!(!eq("1G", "1Gi"));
        assert_eq!("1Gi".parse::<Quantity>().unwrap().to_string(), "1Gi");
        assert_eq!("0.5".parse::<Quantity>().unwrap().to_string(), "500m");
    }
}
