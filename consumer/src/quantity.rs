//! Byte quantities written the way Kubernetes writes them (`64Mi`, `1G`, `512`).

use crate::{Error, Result};

/// Parses a byte quantity: a plain number of bytes or a number with a
/// Kubernetes suffix (`Ki`, `Mi`, `Gi`, `Ti` binary; `k`, `M`, `G`, `T` decimal).
pub fn parse_bytes(input: &str) -> Result<u64> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let multiplier: u64 = match suffix.trim() {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        other => {
            return Err(Error::Config(format!(
                "`{input}` is not a byte quantity: unknown suffix `{other}` (use Ki, Mi, Gi, Ti, k, M, G, T or none)"
            )))
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        Error::Config(format!(
            "`{input}` is not a byte quantity (expected e.g. 512, 64Mi, 1G)"
        ))
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(Error::Config(format!("`{input}` must be a positive size")));
    }
    Ok((value * multiplier as f64).round() as u64)
}

/// Formats bytes as the largest binary unit that keeps one decimal (`16.0Mi`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{:.1}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

/// clap value parser for byte quantities.
pub fn clap_bytes(input: &str) -> std::result::Result<u64, String> {
    parse_bytes(input).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("2k").unwrap(), 2000);
        assert_eq!(parse_bytes(" 1G ").unwrap(), 1_000_000_000);
    }

    #[test]
    fn rejects_garbage_with_the_input_in_the_message() {
        let err = parse_bytes("64MB").unwrap_err().to_string();
        assert!(
            err.contains("64MB") && err.contains("unknown suffix"),
            "{err}"
        );
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1Mi").is_err());
    }

    #[test]
    fn formats_in_binary_units() {
        assert_eq!(format_bytes(16 << 20), "16.0Mi");
        assert_eq!(format_bytes(100), "100B");
    }
}
