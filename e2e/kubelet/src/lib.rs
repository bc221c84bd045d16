//! millpond-kubelet: a "process kubelet" for end-to-end tests.
//!
//! It plays the kubelet (and the scheduler) for one node of a real
//! Kubernetes control plane that has neither: it registers a Ready node,
//! binds unscheduled pods to it, and runs every container of those pods as a
//! local process, with its environment resolved, its own loopback IP, its
//! service-account identity handed over through a per-pod kubeconfig, probes,
//! restarts with back-off and graceful termination.
//!
//! Pure logic (image map, IP allocation, env resolution, status building,
//! back-off) lives in its own modules and is unit tested; the modules that
//! talk to the API server or to processes are thin around them.

pub mod binder;
pub mod config;
pub mod context;
pub mod env;
pub mod error;
pub mod identity;
pub mod images;
pub mod ip;
pub mod manager;
pub mod node;
pub mod pod;
pub mod probes;
pub mod process;
pub mod quantity;
pub mod status;

pub use error::{Error, Result};

/// The field manager / component name used for every write.
pub const MANAGER: &str = "millpond-kubelet";
