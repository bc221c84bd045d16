//! The operator installed as a user installs it, on the real local stack
//! (Kafka, a Kubernetes control plane and a real node running the
//! project's images).
//!
//! Starts: nothing but Kubernetes objects. Once per run, `kubectl apply` of
//! the CRD (`crds/`) and `helm upgrade --install` of the chart (two operator
//! replicas, leader election, the chart's RBAC and nothing more; release
//! [`support::RELEASE`] in [`support::OPERATOR_NAMESPACE`], deciding every 3
//! s), which stays installed for the next run (`e2e/test` uninstalls it
//! before and after). Then each scenario works in a namespace of its own, deleted
//! at its end, with its own topics and sink directory. What the pods did is
//! read where they did it: the sink's files, the group's commits in Kafka,
//! the kubelet's pod status, the pods' and the operator's own metrics.
//!
//! Needs the stack and its images (`e2e/stack up`, `eval "$(e2e/stack env)"`);
//! `e2e/test` runs these with
//! `cargo test --release -p millpond-e2e --test operator -- --include-ignored --test-threads=2`.

mod crash_loop;
mod credentials;
mod dead_sink;
mod degraded;
mod delivery;
mod edits;
mod garbage_collection;
mod iceberg_table;
mod kafka_outage;
mod lag;
mod leader;
mod object_storage;
mod partitions_added;
#[path = "../support/mod.rs"]
mod support;
mod watch_namespaces;
