//! The `<name>-limits` ConfigMap: the limits new pods start with.
//!
//! Running pods receive new limits through their admin endpoint; the pods
//! read this ConfigMap once, through `envFrom`, when they start. The operator
//! writes it whenever the limits change, so a pod started later (scale-up,
//! restart, rollout) runs the current limits and reports their generation.
//! A change here therefore does not restart pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use millpond_core::pod::env;
use millpond_crds::{CurrentLimits, MillpondConsumer};

use super::{limits_config_map_name, object_meta, BuildContext, Error, Result};

/// The env vars the ConfigMap holds, read by the consumer at start.
pub const LIMIT_KEYS: [&str; 5] = [
    env::FLUSH_BYTES,
    env::FLUSH_INTERVAL_MS,
    env::MAX_IN_FLIGHT,
    env::CONSUME_BATCH_SIZE,
    env::LIMITS_GENERATION,
];

/// The limits as the consumer's env vars. A `flush_bytes` of zero leaves
/// `FLUSH_BYTES` out, so the pod derives it from its memory budget.
pub fn limits_env(limits: &CurrentLimits) -> Result<BTreeMap<String, String>> {
    let invalid = |field: &str, message: &str| Error::Invalid {
        field: format!("status.limits.{field}"),
        message: message.to_string(),
    };
    if limits.flush_bytes < 0 {
        return Err(invalid("flushBytes", "must not be negative"));
    }
    if limits.flush_interval_ms < 1 {
        return Err(invalid("flushIntervalMs", "must be at least 1"));
    }
    if limits.max_in_flight < 1 {
        return Err(invalid("maxInFlight", "must be at least 1"));
    }
    if limits.consume_batch_size < 10 {
        return Err(invalid("consumeBatchSize", "must be at least 10"));
    }
    if limits.generation < 0 {
        return Err(invalid("generation", "must not be negative"));
    }
    let values = [
        (limits.flush_bytes > 0).then(|| limits.flush_bytes.to_string()),
        Some(limits.flush_interval_ms.to_string()),
        Some(limits.max_in_flight.to_string()),
        Some(limits.consume_batch_size.to_string()),
        Some(limits.generation.to_string()),
    ];
    Ok(LIMIT_KEYS
        .iter()
        .zip(values)
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect())
}

/// The `<name>-limits` ConfigMap holding `limits` ([`limits_env`]).
pub fn limits_config_map(
    mpc: &MillpondConsumer,
    _ctx: &BuildContext,
    limits: &CurrentLimits,
) -> Result<ConfigMap> {
    Ok(ConfigMap {
        metadata: object_meta(mpc, limits_config_map_name(mpc))?,
        data: Some(limits_env(limits)?),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_config_map_carries_the_current_limits_as_env_vars() {
        let cm = limits_config_map(&mpc(MINIMAL), &ctx(), &limits()).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("orders-limits"));
        let data = cm.data.unwrap();
        let want = [
            ("CONSUME_BATCH_SIZE", "1000"),
            ("FLUSH_BYTES", "4194304"),
            ("FLUSH_INTERVAL_MS", "5000"),
            ("LIMITS_GENERATION", "3"),
            ("MAX_IN_FLIGHT", "4"),
        ];
        let got: Vec<_> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_unknown_flush_size_is_left_to_the_pod() {
        let l = CurrentLimits {
            flush_bytes: 0,
            ..limits()
        };
        let data = limits_env(&l).unwrap();
        assert!(!data.contains_key("FLUSH_BYTES"));
        assert_eq!(data.len(), 4);
    }

    #[test]
    fn limits_a_pod_would_refuse_are_not_written() {
        let l = CurrentLimits {
            max_in_flight: 0,
            ..limits()
        };
        let err = limits_env(&l).unwrap_err();
        assert_eq!(
            err.to_string(),
            "status.limits.maxInFlight: must be at least 1"
        );
    }

    #[test]
    fn the_config_map_holds_no_credentials() {
        let cm = limits_config_map(&mpc(FULL), &ctx(), &limits()).unwrap();
        let json = serde_json::to_string(&cm).unwrap();
        assert!(!json.contains(TOKEN));
        for word in ["sasl", "password", "kafka-user", "ssl"] {
            assert!(!json.contains(word), "{word} in {json}");
        }
    }
}
