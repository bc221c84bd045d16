//! The millpond-operator Helm chart as a user meets it: `helm lint`, the
//! objects `helm template` renders, and the chart installed on the real
//! Kubernetes API server of the local stack.
//!
//! Starts nothing but Kubernetes objects. The rendering tests only run
//! helm. The installing ones work in a namespace of their own (deleted at
//! the end) and install the chart there with 0 operator replicas, so no
//! operator process runs while the RBAC is real; each release is
//! uninstalled at the test's end, also when it fails. The CRD stays
//! installed, as helm leaves it.
//!
//! Needs the stack's control plane and helm (`e2e/stack up`, `eval "$(e2e/stack
//! env)"`); `e2e/test` runs these with
//! `cargo test --release -p millpond-e2e --test chart -- --include-ignored --test-threads=2`.

mod helm;
mod installed;
mod monitoring;
mod rbac;
mod rendering;
#[path = "../support/mod.rs"]
mod support;
