//! The librdkafka properties Millpond owns, and `key=value` lists of
//! properties. One table drives the API server's CEL rules, the operator's
//! check of `kafka.config` and the pod's check of `KAFKA_CONFIG`, so all
//! three refuse the same properties for the same reason.

use std::collections::BTreeMap;

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
    /// A credential: refused in the spec (it must come from a Secret), but
    /// the pods read it from the file the operator mounts from that Secret.
    pub credential: bool,
}

/// Properties that would break at-least-once delivery or contradict a spec
/// field, and credentials, which must come from Secrets.
pub const GUARDED: &[Guarded] = &[
    Guarded {
        key: "enable.auto.commit",
        allowed: Some("false"),
        why: "offsets are committed only after the sink acknowledged a batch (at-least-once)",
        credential: false,
    },
    Guarded {
        key: "enable.auto.offset.store",
        allowed: Some("false"),
        why: "offsets are stored only after the sink acknowledged a batch (at-least-once)",
        credential: false,
    },
    Guarded {
        key: "partition.assignment.strategy",
        allowed: Some("cooperative-sticky"),
        why: "the consumer hands partitions over incrementally (cooperative-sticky)",
        credential: false,
    },
    Guarded {
        key: "group.protocol",
        allowed: Some("classic"),
        why: "the hand-off on rebalance relies on the classic group protocol",
        credential: false,
    },
    Guarded {
        key: "enable.partition.eof",
        allowed: None,
        why: "the consumer manages end-of-partition events itself",
        credential: false,
    },
    Guarded {
        key: "group.id",
        allowed: None,
        why: "the group is a setting of its own: kafka.groupId (KAFKA_GROUP_ID in the pod)",
        credential: false,
    },
    Guarded {
        key: "bootstrap.servers",
        allowed: None,
        why: "the brokers are a setting of their own: kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS in the pod)",
        credential: false,
    },
    Guarded {
        key: "metadata.broker.list",
        allowed: None,
        why: "the brokers are a setting of their own: kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS in the pod)",
        credential: false,
    },
    Guarded {
        key: "sasl.username",
        allowed: None,
        why: "credentials come from a Secret: set kafka.sasl.usernameSecretRef",
        credential: true,
    },
    Guarded {
        key: "sasl.password",
        allowed: None,
        why: "credentials come from a Secret: set kafka.sasl.passwordSecretRef",
        credential: true,
    },
    Guarded {
        key: "sasl.oauthbearer.client.secret",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
        credential: true,
    },
    Guarded {
        key: "ssl.key.pem",
        allowed: None,
        why: "credentials come from a Secret: set kafka.tls.keySecretRef",
        credential: true,
    },
    Guarded {
        key: "ssl.key.password",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
        credential: true,
    },
    Guarded {
        key: "ssl.keystore.password",
        allowed: None,
        why: "credentials never appear in the spec; keep them in a Secret",
        credential: true,
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

/// The first property of `props` that [`GUARDED`] refuses, with its value;
/// credentials are refused only with `credentials_refused` (the spec).
pub fn refused(
    props: &BTreeMap<String, String>,
    credentials_refused: bool,
) -> Option<(&'static Guarded, &str)> {
    GUARDED
        .iter()
        .filter(|g| credentials_refused || !g.credential)
        .find_map(|g| {
            let value = props.get(g.key)?;
            (!g.allowed.is_some_and(|a| a.eq_ignore_ascii_case(value)))
                .then_some((g, value.as_str()))
        })
}

/// Parses `key=value` pairs separated by commas or newlines; `#` starts a
/// comment line. Used for `KAFKA_CONFIG` and the `KAFKA_CONFIG_FILE` contents.
pub fn parse_properties(source: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for raw in text.split(['\n', ',']) {
        let item = raw.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(Error::Config(format!(
                "{source}: `{item}` is not a `key=value` librdkafka property"
            )));
        };
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

/// Reads an optional numeric property the budget needs to know about.
pub fn numeric(props: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>> {
    props
        .get(key)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                Error::Config(format!("librdkafka property `{key}={v}` must be a number"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties("KAFKA_CONFIG", text).unwrap()
    }

    #[test]
    fn parses_commas_newlines_and_comments() {
        let p = props(
            "security.protocol=SASL_SSL, sasl.mechanism = PLAIN\n# comment\nfetch.wait.max.ms=100",
        );
        assert_eq!(p["sasl.mechanism"], "PLAIN");
        assert_eq!(p.len(), 3);
        let err = parse_properties("KAFKA_CONFIG", "fetch.wait.max.ms").unwrap_err();
        assert!(err.to_string().contains("not a `key=value`"), "{err}");
    }

    #[test]
    fn refuses_what_breaks_at_least_once_and_accepts_the_values_set_anyway() {
        let auto_commit = props("enable.auto.commit=true");
        let (g, value) = refused(&auto_commit, false).unwrap();
        assert_eq!((g.key, value), ("enable.auto.commit", "true"));
        assert!(g.why.contains("at-least-once"));
        assert!(refused(
            &props("enable.auto.commit=FALSE,partition.assignment.strategy=cooperative-sticky"),
            false
        )
        .is_none());
        for bad in [
            "partition.assignment.strategy=range",
            "group.id=other",
            "bootstrap.servers=k:9092",
        ] {
            assert!(refused(&props(bad), false).is_some(), "{bad}");
        }
    }

    #[test]
    fn credentials_are_refused_in_the_spec_only() {
        let p = props("sasl.password=hunter2");
        assert!(
            refused(&p, false).is_none(),
            "the pod reads it from the mounted Secret"
        );
        let (g, _) = refused(&p, true).unwrap();
        assert!(g.why.contains("passwordSecretRef"), "{}", g.why);
    }
}
