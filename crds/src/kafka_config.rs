//! The librdkafka properties `kafka.config` may not set, and the CEL rules
//! that make the API server refuse them.
//!
//! The same tables drive the CEL rules in the CRD and [`check`], so the API
//! server and the operator refuse exactly the same properties.

use std::collections::BTreeMap;

use kube::core::Rule;

use crate::{Error, Result};

/// A property Millpond owns: `allowed` is the only value accepted (compared
/// without regard to case), or `None` when the property may not be set at all.
#[derive(Debug, Clone, Copy)]
pub struct Guarded {
    /// The librdkafka property.
    pub key: &'static str,
    /// The one value that may be written, if any.
    pub allowed: Option<&'static str>,
    /// Why it is refused and what to do instead.
    pub why: &'static str,
}

/// Properties that would break at-least-once delivery or contradict a spec
/// field, and credentials, which must come from Secrets.
pub const GUARDED: &[Guarded] = &[
    Guarded {
        key: "enable.auto.commit",
        allowed: Some("false"),
        why: "offsets are committed only after the sink acknowledged a batch (at-least-once)",
    },
    Guarded {
        key: "enable.auto.offset.store",
        allowed: Some("false"),
        why: "offsets are stored only after the sink acknowledged a batch (at-least-once)",
    },
    Guarded {
        key: "partition.assignment.strategy",
        allowed: Some("cooperative-sticky"),
        why: "the consumer hands partitions over incrementally (cooperative-sticky)",
    },
    Guarded {
        key: "group.protocol",
        allowed: Some("classic"),
        why: "the hand-off on rebalance relies on the classic group protocol",
    },
    Guarded {
        key: "enable.partition.eof",
        allowed: None,
        why: "the consumer manages end-of-partition events itself",
    },
    Guarded {
        key: "group.id",
        allowed: None,
        why: "set kafka.groupId instead",
    },
    Guarded {
        key: "bootstrap.servers",
        allowed: None,
        why: "set kafka.bootstrapServers instead",
    },
    Guarded {
        key: "metadata.broker.list",
        allowed: None,
        why: "set kafka.bootstrapServers instead",
    },
    Guarded {
        key: "sasl.username",
        allowed: None,
        why: "credentials come from a Secret: set kafka.sasl.usernameSecretRef",
    },
    Guarded {
        key: "sasl.password",
        allowed: None,
        why: "credentials come from a Secret: set kafka.sasl.passwordSecretRef",
    },
    Guarded {
        key: "sasl.oauthbearer.client.secret",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
    },
    Guarded {
        key: "ssl.key.pem",
        allowed: None,
        why: "credentials come from a Secret: set kafka.tls.keySecretRef",
    },
    Guarded {
        key: "ssl.key.password",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
    },
    Guarded {
        key: "ssl.keystore.password",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
    },
];

/// Properties the operator derives from `kafka.sasl` and `kafka.tls`; they may
/// be written in `kafka.config` only when neither is set.
pub const FROM_SASL_AND_TLS: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
];

/// Refuses the properties of [`GUARDED`], and those of [`FROM_SASL_AND_TLS`]
/// when `sasl_or_tls` (the spec sets `kafka.sasl` or `kafka.tls`).
pub fn check(config: &BTreeMap<String, String>, sasl_or_tls: bool) -> Result<()> {
    for g in GUARDED {
        if let Some(value) = config.get(g.key) {
            if !g.allowed.is_some_and(|a| a.eq_ignore_ascii_case(value)) {
                return Err(Error::KafkaConfig {
                    key: g.key.to_string(),
                    why: g.why.to_string(),
                });
            }
        }
    }
    if sasl_or_tls {
        if let Some(key) = FROM_SASL_AND_TLS.iter().find(|k| config.contains_key(**k)) {
            return Err(Error::KafkaConfig {
                key: key.to_string(),
                why: "it is derived from kafka.sasl and kafka.tls".to_string(),
            });
        }
    }
    Ok(())
}

/// CEL string literal (the keys and values above hold no quotes).
fn lit(s: &str) -> String {
    format!("'{s}'")
}

fn cel_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!("[{}]", items.map(lit).collect::<Vec<_>>().join(", "))
}

/// The CEL rule on `kafka.config` that refuses [`GUARDED`] properties.
pub fn guarded_rule() -> Rule {
    let allowed = format!(
        "{{{}}}",
        GUARDED
            .iter()
            .filter_map(|g| g.allowed.map(|a| format!("{}: {}", lit(g.key), lit(a))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let never = cel_list(
        GUARDED
            .iter()
            .filter(|g| g.allowed.is_none())
            .map(|g| g.key),
    );
    let refused = format!("(k in {allowed} ? self[k].lowerAscii() != {allowed}[k] : k in {never})");
    Rule::new(format!("!self.exists(k, {refused})")).message(guarded_message().as_str())
}

/// The message of [`guarded_rule`]: every refused property, and what to use.
fn guarded_message() -> String {
    let pinned = GUARDED
        .iter()
        .filter_map(|g| g.allowed.map(|a| format!("{}={a}", g.key)))
        .collect::<Vec<_>>()
        .join(", ");
    let never = GUARDED
        .iter()
        .filter(|g| g.allowed.is_none())
        .map(|g| g.key)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "kafka.config may set {pinned} only to these values (at-least-once delivery) \
         and must not set {never}: use kafka.groupId, kafka.bootstrapServers, and Secrets \
         through kafka.sasl and kafka.tls"
    )
}

/// The CEL rule on `kafka` that refuses [`FROM_SASL_AND_TLS`] properties in
/// `config` when `sasl` or `tls` is set.
pub fn sasl_tls_rule() -> Rule {
    let keys = cel_list(FROM_SASL_AND_TLS.iter().copied());
    Rule::new(format!(
        "!(has(self.sasl) || has(self.tls)) || !has(self.config) || !self.config.exists(k, k in {keys})"
    ))
    .message(format!(
        "kafka.config must not set {} when kafka.sasl or kafka.tls is used: they are derived from them",
        FROM_SASL_AND_TLS.join(", ")
    ).as_str())
    .field_path(".config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn refuses_auto_commit_but_accepts_the_value_we_set_anyway() {
        let err = check(&config(&[("enable.auto.commit", "true")]), false).unwrap_err();
        assert!(err.to_string().contains("at-least-once"), "{err}");
        check(&config(&[("enable.auto.commit", "FALSE")]), false).unwrap();
    }

    #[test]
    fn refuses_credentials_in_plain_text() {
        let err = check(&config(&[("sasl.password", "hunter2")]), false).unwrap_err();
        assert_eq!(err.metric_label(), "kafka_config");
        assert!(err.to_string().contains("passwordSecretRef"), "{err}");
    }

    #[test]
    fn security_protocol_is_free_only_without_sasl_and_tls() {
        let c = config(&[("security.protocol", "SSL"), ("fetch.min.bytes", "1")]);
        check(&c, false).unwrap();
        assert!(check(&c, true).is_err());
    }

    #[test]
    fn the_cel_rule_names_every_guarded_property() {
        let rule = guarded_rule();
        for g in GUARDED {
            assert!(rule.rule.contains(&format!("'{}'", g.key)), "{}", g.key);
        }
    }
}
