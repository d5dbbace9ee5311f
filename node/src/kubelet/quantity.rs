//! Parsing Kubernetes resource quantities (`100m`, `1.5`, `64Mi`, `1e3`)
//! into numbers, as `resource.Quantity` does (k8s-openapi keeps them as
//! strings).

/// A quantity in base units (cores, bytes), or `None` if malformed.
#[must_use]
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(value * factor)
}

/// CPU in millicores (rounded up, as the kubelet does).
#[must_use]
pub fn millicores(q: &str) -> Option<i64> {
    // Rounded up to whole millicores, as `MilliValue` does.
    parse(q).map(|v| (v * 1000.0 - 1e-9).ceil() as i64)
}

/// Bytes (rounded up).
#[must_use]
pub fn bytes(q: &str) -> Option<i64> {
    parse(q).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
