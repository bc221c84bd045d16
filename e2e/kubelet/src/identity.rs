//! A pod's service-account identity, handed to its processes.
//!
//! A real kubelet projects a token into
//! `/var/run/secrets/kubernetes.io/serviceaccount/`. Processes here share
//! one file system, so each pod gets its own directory instead:
//!
//! ```text
//! <pod dir>/serviceaccount/token      bound token from the TokenRequest API
//! <pod dir>/serviceaccount/ca.crt     the API server's CA
//! <pod dir>/serviceaccount/namespace  the pod's namespace
//! <pod dir>/kubeconfig                server + ca.crt + tokenFile, namespace
//! ```
//!
//! and every container gets `KUBECONFIG=<pod dir>/kubeconfig` (clients such
//! as kube-rs' `Config::infer` and client-go read it before trying the
//! in-cluster paths). The kubeconfig names the token by `tokenFile`, which
//! both clients re-read, so the kubelet can refresh the token in place
//! before it expires. The token is bound to the pod: it stops working when
//! the pod is deleted.

use std::path::{Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// Lifetime asked for pod tokens (the API server may shorten it).
pub const TOKEN_SECONDS: i64 = 3600;

/// Files of one pod's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub dir: PathBuf,
    pub token: PathBuf,
    pub ca: PathBuf,
    pub namespace: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Paths {
    /// The layout under a pod's directory.
    pub fn under(pod_dir: &Path) -> Self {
        let dir = pod_dir.join("serviceaccount");
        Paths {
            token: dir.join("token"),
            ca: dir.join("ca.crt"),
            namespace: dir.join("namespace"),
            kubeconfig: pod_dir.join("kubeconfig"),
            dir,
        }
    }
}

/// A token and when it expires.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: String,
    pub issued: Timestamp,
    pub expires: Timestamp,
}

impl Token {
    /// When to refresh: after 80% of the token's lifetime, like the kubelet.
    pub fn refresh_at(&self) -> Timestamp {
        let lifetime = self.expires.duration_since(self.issued);
        let at = lifetime.as_secs() * 8 / 10;
        self.issued + SignedDuration::from_secs(at)
    }
}

/// Asks the TokenRequest API for a token of `service_account`, bound to the
/// pod, for the API server's default audience.
pub async fn request_token(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    pod_name: &str,
    pod_uid: &str,
) -> Result<Token> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name.into()),
                uid: Some(pod_uid.into()),
            }),
        },
        ..TokenRequest::default()
    };
    let issued = Timestamp::now();
    let answer = api
        .create_token_request(service_account, &PostParams::default(), &request)
        .await?;
    let status = answer
        .status
        .ok_or_else(|| Error::Serde("TokenRequest answer without status".into()))?;
    Ok(Token {
        token: status.token,
        issued,
        expires: status.expiration_timestamp.0,
    })
}

/// The kubeconfig handed to a pod's processes.
pub fn render_kubeconfig(
    server: &str,
    ca: &Path,
    token: &Path,
    namespace: &str,
    service_account: &str,
) -> String {
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "millpond", "cluster": {
            "server": server,
            "certificate-authority": ca.display().to_string(),
        }}],
        "users": [{"name": user, "user": {"tokenFile": token.display().to_string()}}],
        "contexts": [{"name": "pod", "context": {
            "cluster": "millpond", "user": user, "namespace": namespace,
        }}],
        "current-context": "pod",
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// PEM text of DER certificates.
pub fn der_to_pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Writes a file atomically (temporary file + rename), readable only by
/// the owner.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        f.write_all(contents)
            .map_err(|e| Error::io("writing", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming into", path, e))
}

/// Writes every file of the identity except the token.
pub fn write_static_files(
    paths: &Paths,
    server: &str,
    ca_pem: &str,
    namespace: &str,
    service_account: &str,
) -> Result<()> {
    std::fs::create_dir_all(&paths.dir).map_err(|e| Error::io("creating", &paths.dir, e))?;
    write_atomic(&paths.ca, ca_pem.as_bytes())?;
    write_atomic(&paths.namespace, namespace.as_bytes())?;
    let kubeconfig = render_kubeconfig(server, &paths.ca, &paths.token, namespace, service_account);
    write_atomic(&paths.kubeconfig, kubeconfig.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_points_at_the_token_file_and_namespace() {
        let p = Paths::under(Path::new("/s/pods/ns_p_u"));
        let text = render_kubeconfig("https://127.0.0.1:16443", &p.ca, &p.token, "ns", "app");
        let kc: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("pod"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:16443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/s/pods/ns_p_u/serviceaccount/ca.crt")
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some("/s/pods/ns_p_u/serviceaccount/token")
        );
        assert_eq!(
            kc.contexts[0]
                .context
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("ns")
        );
    }

    #[test]
    fn tokens_refresh_after_eighty_percent_of_their_lifetime() {
        let issued = Timestamp::from_second(1_000_000).unwrap();
        let t = Token {
            token: "t".into(),
            issued,
            expires: issued + SignedDuration::from_secs(3600),
        };
        assert_eq!(t.refresh_at(), issued + SignedDuration::from_secs(2880));
    }

    #[test]
    fn der_certificates_become_wrapped_pem() {
        let pem = der_to_pem(&[vec![0u8; 100]]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
    }
}
