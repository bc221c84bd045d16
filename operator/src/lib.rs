//! `millpond-operator`: runs `MillpondConsumer`s.
//!
//! * the pure scaling and tuning decision is the `millpond-policy` crate;
//! * [`desired`]: the desired Kubernetes objects of a `MillpondConsumer`, as pure functions;
//! * [`observe`]: the group's offsets from Kafka and the pods' metrics;
//! * [`leader`]: leader election on a Lease, so only one replica acts;
//! * [`controller`]: the reconciler that ties them together; [`metrics`]: its metrics;
//! * [`scope`]: the namespaces it watches (the cluster, or a list).

pub mod controller;
pub mod desired;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod scope;
