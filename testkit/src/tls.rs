//! The stack's TLS listeners and their material, for tests of secure
//! connections and of their failures.

use std::path::{Path, PathBuf};

/// A variable of `e2e/stack env` naming a secure listener or its material.
pub fn stack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the local stack with `e2e/stack up kafka` and `eval \"$(e2e/stack env)\"`")
    })
}

/// A fresh self-signed CA in `dir` that did not sign the brokers'
/// certificate; returns its PEM file.
pub fn untrusted_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("untrusted-ca.crt");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=not-the-brokers-ca",
            "-keyout",
            "/dev/null",
            "-out",
        ])
        .arg(&ca)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    ca
}

/// The host of the listener whose certificate names another host.
pub fn wrong_name_host() -> String {
    let servers = stack_env("KAFKA_WRONG_NAME_BOOTSTRAP_SERVERS");
    servers.rsplit_once(':').expect("host:port").0.to_string()
}
