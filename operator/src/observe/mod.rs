//! What the operator observes each interval: the group's offsets in Kafka and
//! the consumer pods' metrics. I/O lives here; the decision does not.

pub mod credentials;
pub mod kafka;
pub mod pod_health;
pub mod pods;
