//! What every pod worker shares: the API client, settings, the IP
//! allocator and facts about the node.

use std::sync::Mutex;

use crate::config::Settings;
use crate::ip::IpAllocator;
use crate::node::Machine;

/// Shared state of the kubelet.
pub struct Context {
    /// Client with the kubelet's own (admin) identity. Never handed to pods.
    pub client: kube::Client,
    pub settings: Settings,
    /// API server URL and CA written into pods' kubeconfigs.
    pub api_url: String,
    pub ca_pem: String,
    /// Host and port of the API server, for `KUBERNETES_SERVICE_HOST/PORT`.
    pub api_host: String,
    pub api_port: u16,
    pub ips: Mutex<IpAllocator>,
    /// Client for HTTP probes (accepts any certificate, like the kubelet).
    pub http: reqwest::Client,
    pub machine: Machine,
    /// `PATH` given to containers (the kubelet's own).
    pub path_env: String,
}

/// Splits an `https://host:port` URL into host and port (443 by default).
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .split('/')
        .next()
        .unwrap_or_default();
    if let Some(v6) = rest.strip_prefix('[') {
        if let Some((host, port)) = v6.split_once(']') {
            let port = port.trim_start_matches(':').parse().unwrap_or(443);
            return (host.to_string(), port);
        }
    }
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(443)),
        None => (rest.to_string(), 443),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_split_into_host_and_port() {
        assert_eq!(
            host_port("https://127.0.0.1:16443"),
            ("127.0.0.1".into(), 16443)
        );
        assert_eq!(
            host_port("https://example.com/"),
            ("example.com".into(), 443)
        );
        assert_eq!(host_port("https://[::1]:6443"), ("::1".into(), 6443));
    }
}
