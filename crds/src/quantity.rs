//! Byte sizes of the spec, written as Kubernetes quantities (`256Mi`, `1G`,
//! `1.5Gi`, `1e6`, `4096`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::{Error, Result};

/// Parses a quantity of bytes the way the API server reads it (the grammar
/// of [`millpond_core::quantity::parse_bytes`], which the operator and the
/// pods use too); `field` names the spec field in the error.
pub fn parse_bytes(field: &str, value: &Quantity) -> Result<u64> {
    millpond_core::quantity::parse_bytes(&value.0).map_err(|e| match e {
        millpond_core::Error::Quantity { value, why } => Error::Quantity {
            field: field.to_string(),
            value,
            why,
        },
        other => Error::Quantity {
            field: field.to_string(),
            value: value.0.clone(),
            why: other.to_string(),
        },
    })
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

    #[test]
    fn the_grammar_is_the_cores_and_the_field_is_named() {
        let q = |s: &str| Quantity(s.to_string());
        assert_eq!(
            parse_bytes("resources.memory", &q("1e9")),
            Ok(1_000_000_000)
        );
        let err = parse_bytes("resources.memory", &q("256m")).unwrap_err();
        assert!(
            err.to_string().starts_with("resources.memory: `256m`"),
            "{err}"
        );
        let err = parse_positive_bytes("limits.flushBytes", &q("0")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "limits.flushBytes: `0` is not a byte size: must be larger than zero"
        );
    }
}
