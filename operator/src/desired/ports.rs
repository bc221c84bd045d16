//! The consumer container's ports, which the Deployment, the pods'
//! environment, the metrics Service and the NetworkPolicy all name.

/// Port of `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT: i32 = 9090;
/// Port of `/admin/limits` alone (only the operator may reach it, see
/// [`super::admin_network_policy`]).
pub const ADMIN_PORT: i32 = 9091;
/// Name of [`ADMIN_PORT`] on the container.
pub const ADMIN_PORT_NAME: &str = "admin";
/// Name of that port on the container and the Service.
pub const METRICS_PORT_NAME: &str = "metrics";
