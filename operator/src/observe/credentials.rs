//! The operator's own Kafka client connects the way the pods do: with the
//! user's librdkafka overrides and the `kafka.sasl` / `kafka.tls` settings.
//! The pods get the credentials as env vars and files; the operator reads the
//! same Secret keys and hands them to librdkafka in memory (`sasl.*`,
//! `ssl.*.pem`), for the client it opens each interval.

use std::collections::BTreeMap;

use millpond_crds::{MillpondConsumerSpec, SecretKeyRef};
use thiserror::Error;

use crate::desired::security_settings;

/// A Secret key the spec refers to is missing or not text.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field} refers to key `{key}` of Secret `{name}`, which does not exist or is not UTF-8 text; create it in the consumer's namespace")]
pub struct MissingSecret {
    /// The spec field, e.g. `kafka.sasl.passwordSecretRef`.
    pub field: &'static str,
    pub name: String,
    pub key: String,
}

/// Every Secret key the client needs: `(spec field, librdkafka property, reference)`.
pub fn secret_refs(
    spec: &MillpondConsumerSpec,
) -> Vec<(&'static str, &'static str, &SecretKeyRef)> {
    let kafka = &spec.kafka;
    let mut refs = Vec::new();
    if let Some(sasl) = &kafka.sasl {
        refs.push((
            "kafka.sasl.usernameSecretRef",
            "sasl.username",
            &sasl.username_secret_ref,
        ));
        refs.push((
            "kafka.sasl.passwordSecretRef",
            "sasl.password",
            &sasl.password_secret_ref,
        ));
    }
    if let Some(tls) = &kafka.tls {
        for (field, property, r) in [
            ("kafka.tls.caSecretRef", "ssl.ca.pem", &tls.ca_secret_ref),
            (
                "kafka.tls.certSecretRef",
                "ssl.certificate.pem",
                &tls.cert_secret_ref,
            ),
            ("kafka.tls.keySecretRef", "ssl.key.pem", &tls.key_secret_ref),
        ] {
            if let Some(r) = r {
                refs.push((field, property, r));
            }
        }
    }
    refs
}

/// The client properties for `spec`; `secret` returns the text of a Secret
/// key, `None` when it is missing.
pub fn client_properties(
    spec: &MillpondConsumerSpec,
    secret: impl Fn(&SecretKeyRef) -> Option<String>,
) -> Result<BTreeMap<String, String>, MissingSecret> {
    let kafka = &spec.kafka;
    let mut props: BTreeMap<String, String> = kafka
        .config
        .iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    props.extend(
        security_settings(kafka)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    for (field, property, r) in secret_refs(spec) {
        let value = secret(r).ok_or_else(|| MissingSecret {
            field,
            name: r.name.clone(),
            key: r.key.clone(),
        })?;
        props.insert(property.into(), value);
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::fixtures::{edit, mpc, FULL, MINIMAL};

    fn secrets(r: &SecretKeyRef) -> Option<String> {
        match (r.name.as_str(), r.key.as_str()) {
            ("kafka-user", "username") => Some("orders".into()),
            ("kafka-user", "password") => Some("s3cret".into()),
            ("kafka-ca", "ca.crt") => Some("-----BEGIN CERTIFICATE-----".into()),
            ("kafka-client", "tls.crt") => Some("client certificate".into()),
            ("kafka-client", "tls.key") => Some("client key".into()),
            _ => None,
        }
    }

    #[test]
    fn sasl_over_tls_carries_the_credentials_and_the_overrides() {
        let s = mpc(FULL).spec;
        let props = client_properties(&s, secrets).unwrap();
        let get = |k: &str| props.get(k).map(String::as_str);
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("orders"));
        assert_eq!(get("sasl.password"), Some("s3cret"));
        assert_eq!(get("ssl.ca.pem"), Some("-----BEGIN CERTIFICATE-----"));
        assert_eq!(get("ssl.certificate.pem"), Some("client certificate"));
        assert_eq!(get("ssl.key.pem"), Some("client key"));
        assert_eq!(get("auto.offset.reset"), Some("earliest"));
        assert_eq!(secret_refs(&s).len(), 5);
    }

    #[test]
    fn a_missing_secret_key_names_the_field_and_the_secret() {
        let s = edit(FULL, "key: ca.crt", "key: ca.pem").spec;
        let err = client_properties(&s, secrets).unwrap_err();
        assert_eq!(err.field, "kafka.tls.caSecretRef");
        assert!(
            err.to_string()
                .contains("key `ca.pem` of Secret `kafka-ca`"),
            "{err}"
        );
    }

    #[test]
    fn plaintext_needs_nothing() {
        let s = mpc(MINIMAL).spec;
        assert!(client_properties(&s, |_| None).unwrap().is_empty());
        assert!(secret_refs(&s).is_empty());
    }
}
