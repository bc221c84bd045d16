//! Byte sizes written as Kubernetes quantities (`256Mi`, `1G`, `1.5Gi`, `1e6`, `4096`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::{Error, Result};

/// The largest value a Kubernetes quantity can hold (2^63 - 1).
const MAX: u128 = i64::MAX as u128;

/// Parses a quantity of bytes the way the API server reads it: a
/// non-negative decimal number followed by a binary suffix (`Ki` .. `Ei`), a
/// decimal suffix (`k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent
/// (`e6`). The result must be a whole number of bytes, so `100m`
/// (thousandths) and `0.5` are refused. `field` names the spec field in the
/// error.
pub fn parse_bytes(field: &str, value: &Quantity) -> Result<u64> {
    let text = value.0.trim();
    let err = |why: &str| Error::Quantity {
        field: field.to_string(),
        value: value.0.clone(),
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

/// Like [`parse_bytes`], and the size must be above zero.
pub fn parse_positive_bytes(field: &str, value: &Quantity) -> Result<u64> {
    match parse_bytes(field, value)? {
        0 => Err(Error::Quantity {
            field: field.to_string(),
            value: value.0.clone(),
            why: "must be larger than zero".to_string(),
        }),
        bytes => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Result<u64> {
        parse_bytes("resources.memory", &Quantity(s.to_string()))
    }

    #[test]
    fn reads_binary_decimal_and_exponent_forms() {
        assert_eq!(bytes("4096"), Ok(4096));
        assert_eq!(bytes("256Mi"), Ok(256 << 20));
        assert_eq!(bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("64k"), Ok(64_000));
        assert_eq!(bytes("1e6"), Ok(1_000_000));
        assert_eq!(bytes("+2Ki"), Ok(2048));
        assert_eq!(bytes("0.5Ki"), Ok(512));
        assert_eq!(bytes("8000m"), Ok(8));
        assert_eq!(bytes("0"), Ok(0));
    }

    #[test]
    fn refuses_negative_fractional_and_malformed_sizes() {
        let why = |s: &str| match bytes(s) {
            Err(Error::Quantity { why, .. }) => why,
            other => panic!("{s}: expected an error, got {other:?}"),
        };
        assert!(why("-1Mi").contains("negative"));
        assert!(why("256m").contains("whole number of bytes"));
        assert!(why("0.5").contains("whole number of bytes"));
        assert!(why("12MB").contains("unknown suffix"));
        assert!(why("Mi").contains("expected a number"));
        assert!(why("1.2.3").contains("expected a number"));
        assert!(why("9Ei").contains("too large"));
    }

    #[test]
    fn names_the_field_in_the_error() {
        let err = parse_positive_bytes("limits.flushBytes", &Quantity("0".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "limits.flushBytes: `0` is not a byte size: must be larger than zero"
        );
    }
}
