//! Why a reconciliation could not decide: one variant per `Degraded`
//! reason, each with the message a person acts on.
//!
//! The steps return these with `?`; [`super::reconcile`] turns one into the
//! `Degraded` condition (the rest of the status stays as it was) and waits:
//! for a change of the spec when only the spec can fix it, for the next
//! interval otherwise.

use std::time::Duration;

use kube::runtime::controller::Action;
use millpond_crds::condition::reason;

use crate::observe::kafka::KafkaObserveError;

/// A `Degraded` reason with its message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Degraded {
    /// The spec is refused.
    #[error("fix the spec: {0}")]
    InvalidSpec(String),
    /// A file sink off the pod's volumes (the root file system is read-only).
    #[error("fix the spec: {0}")]
    SinkNotOnVolume(String),
    /// The memory limit cannot hold a pod with every partition.
    #[error("{0}")]
    MemoryBudget(String),
    /// A Secret or key the spec names is missing.
    #[error("{0}")]
    SecretNotFound(String),
    /// The topic is not there.
    #[error("{0}")]
    TopicNotFound(String),
    /// The brokers do not answer.
    #[error("{0}")]
    KafkaUnreachable(String),
    /// The TLS handshake failed.
    #[error("{0}")]
    KafkaTlsFailed(String),
    /// The brokers refused the credentials.
    #[error("{0}")]
    KafkaAuthenticationFailed(String),
    /// Ready pods whose metrics could not be read, and none that could.
    #[error("{0}")]
    MetricsUnavailable(String),
}

impl Degraded {
    /// A refused spec, under the reason the validation chose.
    pub fn spec(why: &str, message: String) -> Self {
        if why == reason::SINK_NOT_ON_VOLUME {
            Degraded::SinkNotOnVolume(message)
        } else {
            Degraded::InvalidSpec(message)
        }
    }

    /// Kafka could not be observed; `keeping` says what stays as it is.
    pub fn kafka(e: &KafkaObserveError, keeping: &str) -> Self {
        let message = format!("{e}; {keeping}");
        match e.reason() {
            reason::KAFKA_TLS_FAILED => Degraded::KafkaTlsFailed(message),
            reason::KAFKA_AUTHENTICATION_FAILED => Degraded::KafkaAuthenticationFailed(message),
            reason::TOPIC_NOT_FOUND => Degraded::TopicNotFound(message),
            _ => Degraded::KafkaUnreachable(message),
        }
    }

    /// The condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Degraded::InvalidSpec(_) => reason::INVALID_SPEC,
            Degraded::SinkNotOnVolume(_) => reason::SINK_NOT_ON_VOLUME,
            Degraded::MemoryBudget(_) => reason::MEMORY_BUDGET,
            Degraded::SecretNotFound(_) => reason::SECRET_NOT_FOUND,
            Degraded::TopicNotFound(_) => reason::TOPIC_NOT_FOUND,
            Degraded::KafkaUnreachable(_) => reason::KAFKA_UNREACHABLE,
            Degraded::KafkaTlsFailed(_) => reason::KAFKA_TLS_FAILED,
            Degraded::KafkaAuthenticationFailed(_) => reason::KAFKA_AUTHENTICATION_FAILED,
            Degraded::MetricsUnavailable(_) => reason::METRICS_UNAVAILABLE,
        }
    }

    /// Only a new spec can fix it: wait for a change instead of retrying.
    pub fn needs_new_spec(&self) -> bool {
        matches!(
            self,
            Degraded::InvalidSpec(_) | Degraded::SinkNotOnVolume(_) | Degraded::MemoryBudget(_)
        )
    }

    /// Kafka, not the spec or the pods, is the trouble (counted as a
    /// reconcile error of kind `kafka`).
    pub fn is_kafka(&self) -> bool {
        matches!(
            self,
            Degraded::TopicNotFound(_)
                | Degraded::KafkaUnreachable(_)
                | Degraded::KafkaTlsFailed(_)
                | Degraded::KafkaAuthenticationFailed(_)
        )
    }

    /// The owned objects are put back as last decided meanwhile (the pods
    /// run; only their metrics are missing).
    pub fn keeps_objects(&self) -> bool {
        matches!(self, Degraded::MetricsUnavailable(_))
    }

    /// What the controller does next.
    pub fn action(&self, interval: Duration) -> Action {
        if self.needs_new_spec() {
            Action::await_change()
        } else {
            Action::requeue(interval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spec_problems_wait_for_a_new_spec() {
        let m = || "m".to_string();
        for d in [
            Degraded::InvalidSpec(m()),
            Degraded::SinkNotOnVolume(m()),
            Degraded::MemoryBudget(m()),
        ] {
            assert!(d.needs_new_spec(), "{d:?}");
        }
        for d in [
            Degraded::SecretNotFound(m()),
            Degraded::TopicNotFound(m()),
            Degraded::KafkaUnreachable(m()),
            Degraded::MetricsUnavailable(m()),
        ] {
            assert!(!d.needs_new_spec(), "{d:?}");
        }
    }

    #[test]
    fn a_refused_spec_keeps_the_reason_validation_chose() {
        let d = Degraded::spec(reason::SINK_NOT_ON_VOLUME, "sink.url ...".into());
        assert_eq!(d.reason(), "SinkNotOnVolume");
        assert_eq!(d.to_string(), "fix the spec: sink.url ...");
        let d = Degraded::spec(reason::INVALID_SPEC, "minReplicas".into());
        assert_eq!(d.reason(), "InvalidSpec");
    }
}
