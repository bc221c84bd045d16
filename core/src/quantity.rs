//! Byte sizes written as Kubernetes quantities (`256Mi`, `1G`, `1.5Gi`,
//! `1e6`, `4096`): one exact parser for the API, the operator and the pods,
//! so a size one of them accepts is never refused by another.

use crate::{Error, Result};

/// The largest value a Kubernetes quantity can hold (2^63 - 1).
const MAX: u128 = i64::MAX as u128;

/// Parses a quantity of bytes the way the API server reads it: a
/// non-negative decimal number followed by a binary suffix (`Ki` .. `Ei`), a
/// decimal suffix (`k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent
/// (`e6`). The result must be a whole number of bytes, so `100m`
/// (thousandths) and `0.5` are refused.
pub fn parse_bytes(value: &str) -> Result<u64> {
    let text = value.trim();
    let err = |why: &str| Error::Quantity {
        value: value.to_string(),
        why: why.to_string(),
    };
    if text.starts_with('-') {
        return Err(err("sizes cannot be negative"));
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(err("expected a number such as 256Mi, 1G or 4096"));
    }
    if fraction.contains('.') {
        return Err(err("expected a number such as 256Mi, 1G or 4096"));
    }

    // value = digits / 10^scale * multiplier / 10^down
    let digits: u128 = format!("{whole}{fraction}")
        .trim_start_matches('0')
        .chars()
        .try_fold(0u128, |acc, c| {
            acc.checked_mul(10)?.checked_add(u128::from(c as u8 - b'0'))
        })
        .filter(|d| *d <= MAX)
        .ok_or_else(|| err("too large (a quantity holds at most 2^63-1)"))?;
    let mut scale = u32::try_from(fraction.len()).map_err(|_| err("too many digits"))?;
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 10u128.pow(3),
        "M" => 10u128.pow(6),
        "G" => 10u128.pow(9),
        "T" => 10u128.pow(12),
        "P" => 10u128.pow(15),
        "E" => 10u128.pow(18),
        "m" => {
            scale += 3;
            1
        }
        exponent if exponent.starts_with(['e', 'E']) => {
            let exp: i32 = exponent[1..]
                .parse()
                .map_err(|_| err("the exponent must be a whole number, as in 1e6"))?;
            if exp < 0 {
                scale += exp.unsigned_abs();
                1
            } else {
                10u128
                    .checked_pow(exp.unsigned_abs())
                    .filter(|m| *m <= MAX)
                    .ok_or_else(|| err("too large (a quantity holds at most 2^63-1)"))?
            }
        }
        _ => {
            return Err(err(
                "unknown suffix (use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or none)",
            ))
        }
    };
    let scaled = digits
        .checked_mul(multiplier)
        .ok_or_else(|| err("too large (a quantity holds at most 2^63-1)"))?;
    let divisor = 10u128
        .checked_pow(scale)
        .ok_or_else(|| err("too many decimal places"))?;
    if scaled % divisor != 0 {
        return Err(err(
            "not a whole number of bytes (`m` means thousandths; write Mi or M for megabytes)",
        ));
    }
    let bytes = scaled / divisor;
    if bytes > MAX {
        return Err(err("too large (a quantity holds at most 2^63-1)"));
    }
    Ok(bytes as u64)
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

    /// The one table for every user of the grammar: the API (CRD fields),
    /// the operator (budget planning) and the pods (MEMORY_BUDGET,
    /// FLUSH_BYTES). `Err`: refused, with a reason containing the text.
    const TABLE: &[(&str, Result<u64, &str>)] = &[
        ("4096", Ok(4096)),
        (" 512 ", Ok(512)),
        ("256Mi", Ok(256 << 20)),
        ("1.5Gi", Ok(3 << 29)),
        ("1G", Ok(1_000_000_000)),
        ("500M", Ok(500_000_000)),
        ("64k", Ok(64_000)),
        ("1e9", Ok(1_000_000_000)),
        ("1E6", Ok(1_000_000)),
        ("20e-1", Ok(2)),
        ("15e-1Ki", Err("exponent")),
        ("+2Ki", Ok(2048)),
        ("0.5Ki", Ok(512)),
        ("8000m", Ok(8)),
        ("0", Ok(0)),
        ("-1Mi", Err("negative")),
        ("256m", Err("whole number of bytes")),
        ("0.5", Err("whole number of bytes")),
        ("12MB", Err("unknown suffix")),
        ("2K", Err("unknown suffix")),
        ("Mi", Err("expected a number")),
        ("lots", Err("expected a number")),
        ("1.2.3", Err("expected a number")),
        ("9Ei", Err("too large")),
        ("1e19", Err("too large")),
    ];

    #[test]
    fn the_kubernetes_grammar_one_table_for_api_operator_and_pods() {
        for (input, expected) in TABLE {
            match (parse_bytes(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(Error::Quantity { value, why }), Err(reason)) => {
                    assert_eq!(value, *input);
                    assert!(why.contains(reason), "{input}: {why}");
                }
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_message_names_the_value() {
        assert_eq!(
            parse_bytes("64MB").unwrap_err().to_string(),
            "`64MB` is not a byte quantity: unknown suffix (use Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or none)"
        );
    }

    #[test]
    fn formats_in_binary_units() {
        assert_eq!(format_bytes(16 << 20), "16.0Mi");
        assert_eq!(format_bytes(100), "100B");
    }
}
