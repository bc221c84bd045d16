//! Kubernetes resource quantities ("500m", "256Mi", "1.5G", "2e3"), just
//! enough for `resourceFieldRef` env values and node capacity.

/// Parses a quantity into its value in base units (cores, bytes).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
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
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * factor)
}

/// `value / divisor`, rounded up, as the kubelet renders a
/// `resourceFieldRef` (so `limits.cpu` 250m with divisor 1 is "1").
pub fn divide_ceil(value: f64, divisor: f64) -> Option<i64> {
    if divisor <= 0.0 {
        return None;
    }
    // Round away float noise (0.25 / 0.001 = 250.00000000000003) before ceil.
    let ratio = value / divisor;
    let rounded = (ratio * 1e6).round() / 1e6;
    Some(rounded.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_binary_and_exponent_suffixes() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("256Mi"), Some(268_435_456.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("1.5Ki"), Some(1536.0));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("12Qi"), None);
        assert_eq!(parse("abc"), None);
    }

    #[test]
    fn divides_rounding_up_like_the_kubelet() {
        assert_eq!(divide_ceil(0.25, 1.0), Some(1));
        assert_eq!(divide_ceil(0.25, 0.001), Some(250));
        assert_eq!(divide_ceil(268_435_456.0, 1.0), Some(268_435_456));
        assert_eq!(divide_ceil(268_435_456.0, 1_048_576.0), Some(256));
        assert_eq!(divide_ceil(1.0, 0.0), None);
    }
}
