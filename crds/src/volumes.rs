//! `spec.template.volumes`: volumes of the consumer pods, and the rule that a
//! `file://` sink writes onto one.
//!
//! The consumer container runs with a read-only root file system, so a file
//! sink only works on a volume: its directory must be the mountPath of a
//! volume that is not readOnly, or lie below it. Paths are compared
//! component by component (`/data2` is not below `/data`), and the deepest
//! mount holding the directory is the one the files land on.

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Name of the volume the operator adds for the `kafka.tls` material.
pub const TLS_VOLUME_NAME: &str = "kafka-tls";
/// Where the operator mounts the `kafka.tls` material, read-only.
pub const TLS_MOUNT_PATH: &str = "/etc/millpond/kafka-tls";
/// Most entries of `spec.template.volumes`.
pub const MAX_VOLUMES: usize = 16;

// Refusals, in the same words from the API server and from `validate`.
const ONE_SOURCE: &str = "a volume needs exactly one source, emptyDir or persistentVolumeClaim";
const NO_MEMORY_MEDIUM: &str = "emptyDir.medium Memory is refused: files in memory count against resources.memory, the budget the pods are sized to";
const ABSOLUTE: &str = "mountPath must be an absolute path other than /, such as /data";
const CLEAN: &str = "mountPath must not contain '//', '.' or '..' segments";

/// CEL: a mount path that is neither the TLS mount path nor below it.
fn outside_tls_rule() -> String {
    format!("self != '{TLS_MOUNT_PATH}' && !self.startsWith('{TLS_MOUNT_PATH}/')")
}

fn outside_tls_message() -> String {
    format!("mountPath {TLS_MOUNT_PATH} and below are taken by the Kafka TLS material the operator mounts")
}

fn reserved_name_message() -> String {
    format!(
        "the volume name {TLS_VOLUME_NAME} is taken by the Kafka TLS material the operator mounts"
    )
}

/// A volume of the consumer pods, mounted into the consumer container.
/// The container's root file system is read-only: a file:// sink writes
/// only onto a volume, so its directory must be the mountPath of a volume
/// that is not readOnly, or lie below it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.emptyDir) != has(self.persistentVolumeClaim)").message(ONE_SOURCE))]
#[x_kube(validation = Rule::new(
    "!has(self.emptyDir) || !has(self.emptyDir.medium) || self.emptyDir.medium != 'Memory'"
).message(NO_MEMORY_MEDIUM).field_path(".emptyDir.medium"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerVolume {
    /// Name of the volume, a DNS label (lower-case letters, digits and
    /// '-'), unique among the volumes. kafka-tls is taken by the Kafka TLS
    /// material the operator mounts.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new(format!("self != '{TLS_VOLUME_NAME}'")).message(&*reserved_name_message()))]
    pub name: String,

    /// Absolute path in the consumer container where the volume is mounted,
    /// such as /data; unique among the volumes. A file:// sink must write
    /// into this directory or below it (sink.url file:///data/orders with
    /// mountPath /data or /data/orders), on a volume that is not readOnly:
    /// the rest of the container's file system is read-only.
    /// /etc/millpond/kafka-tls and below are taken by the Kafka TLS
    /// material the operator mounts.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(
        validation = Rule::new("self.startsWith('/') && self != '/'").message(ABSOLUTE),
        validation = Rule::new("!self.matches('//|(^|/)[.][.]?(/|$)')").message(CLEAN),
        validation = Rule::new(outside_tls_rule()).message(&*outside_tls_message()),
    )]
    pub mount_path: String,

    /// Mount the volume read-only. A file:// sink cannot write onto a
    /// read-only volume (nor onto a persistentVolumeClaim with readOnly).
    #[serde(default)]
    pub read_only: bool,

    /// A directory created empty for each pod and deleted with it. Files a
    /// file:// sink writes here live only as long as the pod; use
    /// persistentVolumeClaim to keep them. medium Memory is refused: files
    /// in memory would count against resources.memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,

    /// A PersistentVolumeClaim of the consumer's namespace. Every pod of the
    /// consumer mounts the same claim, so with more than one replica it needs
    /// an access mode that lets several pods write (ReadWriteMany, or
    /// ReadWriteOnce with all pods on one node). The pods own different
    /// partitions, and the file names carry topic, partition and offsets, so
    /// they never write the same file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

impl ConsumerVolume {
    /// The container can write onto the volume: neither `readOnly` nor
    /// `persistentVolumeClaim.readOnly` (which forces the mount read-only).
    fn writable(&self) -> bool {
        let claim_read_only = self
            .persistent_volume_claim
            .as_ref()
            .and_then(|c| c.read_only);
        !self.read_only && claim_read_only != Some(true)
    }

    /// Repeats the API server's rules for the volume at `field`
    /// (`template.volumes[i]`).
    fn check(&self, field: &str) -> Result<()> {
        let invalid = |at: &str, message: String| Error::Invalid {
            field: format!("{field}.{at}"),
            message,
        };
        if !is_dns_label(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "`{}` is not a DNS label (lower-case letters, digits and '-', at most 63)",
                    self.name
                ),
            ));
        }
        if self.name == TLS_VOLUME_NAME {
            return Err(invalid("name", reserved_name_message()));
        }
        check_mount_path(&self.mount_path).map_err(|m| invalid("mountPath", m))?;
        if self.empty_dir.is_some() == self.persistent_volume_claim.is_some() {
            return Err(Error::Invalid {
                field: field.to_string(),
                message: ONE_SOURCE.to_string(),
            });
        }
        let medium = self.empty_dir.as_ref().and_then(|e| e.medium.as_deref());
        if medium == Some("Memory") {
            return Err(invalid("emptyDir.medium", NO_MEMORY_MEDIUM.to_string()));
        }
        Ok(())
    }
}

/// A DNS label (RFC 1123, as Kubernetes names volumes and namespaces): 1 to
/// 63 lower-case letters, digits and '-', starting and ending with a letter
/// or digit.
pub fn is_dns_label(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 63
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The mountPath rules of the schema; the error is the message.
fn check_mount_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path == "/" {
        return Err(format!("`{path}`: {ABSOLUTE}"));
    }
    if path.contains("//") || path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("`{path}`: {CLEAN}"));
    }
    if components(path).starts_with(&components(TLS_MOUNT_PATH)) {
        return Err(outside_tls_message());
    }
    Ok(())
}

/// Checks `spec.template.volumes`: every volume, then that names and mount
/// paths are unique.
pub(crate) fn check_volumes(volumes: &[ConsumerVolume]) -> Result<()> {
    for (i, v) in volumes.iter().enumerate() {
        let field = format!("template.volumes[{i}]");
        v.check(&field)?;
        let earlier = &volumes[..i];
        if earlier.iter().any(|e| e.name == v.name) {
            return Err(Error::Invalid {
                field: format!("{field}.name"),
                message: format!("volume names must be unique: {} is used twice", v.name),
            });
        }
        if earlier
            .iter()
            .any(|e| components(&e.mount_path) == components(&v.mount_path))
        {
            return Err(Error::Invalid {
                field: format!("{field}.mountPath"),
                message: format!(
                    "volume mountPaths must be unique: {} is used twice",
                    v.mount_path
                ),
            });
        }
    }
    Ok(())
}

/// Checks that a `file://` sink writes onto a volume that is not readOnly:
/// the deepest volume whose mountPath is the sink's directory or one of its
/// parents. Other sinks pass.
pub(crate) fn check_sink_on_volume(url: &str, volumes: &[ConsumerVolume]) -> Result<()> {
    let Some(decoded) = file_sink_path(url)? else {
        return Ok(());
    };
    let dir = components(&decoded);
    let holder = volumes
        .iter()
        .filter(|v| dir.starts_with(&components(&v.mount_path)))
        .max_by_key(|v| components(&v.mount_path).len());
    match holder {
        Some(v) if v.writable() => Ok(()),
        holder => Err(Error::SinkNotOnVolume {
            url: url.to_string(),
            dir: format!("/{}", dir.join("/")),
            read_only_volume: holder.map(|v| v.name.clone()),
        }),
    }
}

/// The directory of a `file://` URL, as the consumer reads it: the path
/// without query or fragment, percent-decoded (`file://localhost/x` is
/// `/x`). `None` for other schemes; an error when the path is not absolute
/// (`file://data/x` names the host `data`).
fn file_sink_path(url: &str) -> Result<Option<String>> {
    let Some(rest) = url.strip_prefix("file://") else {
        return Ok(None);
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let path = match path.strip_prefix("localhost") {
        Some(p) if p.starts_with('/') => p,
        _ => path,
    };
    if !path.starts_with('/') {
        return Err(Error::Invalid {
            field: "sink.url".to_string(),
            message: format!(
                "{url}: a file sink needs an absolute path after file://, such as file:///data/orders (three slashes)"
            ),
        });
    }
    Ok(Some(percent_decode(path)))
}

/// `%XX` escapes replaced by their bytes; malformed escapes are kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The components of an absolute path as the kernel walks it (symbolic
/// links aside): empty and `.` segments dropped, `..` going up.
fn components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    out
}

/// The message of [`Error::SinkNotOnVolume`] after `sink.url <url>`.
pub(crate) fn sink_not_on_volume_hint(dir: &str, read_only_volume: Option<&str>) -> String {
    match read_only_volume {
        None => format!(
            "is not on a mounted volume: the pod's root file system is read-only; add spec.template.volumes with a mountPath of {dir} or a parent (emptyDir or persistentVolumeClaim)"
        ),
        Some(name) => format!(
            "is on volume {name}, which is mounted read-only: set its readOnly (and persistentVolumeClaim.readOnly) to false, or mount a writable volume (emptyDir or persistentVolumeClaim) at {dir}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volumes(yaml: &str) -> Vec<ConsumerVolume> {
        serde_yaml::from_str(yaml).expect("volumes parse")
    }

    const DATA: &str = "[{name: data, mountPath: /data, emptyDir: {}}]";

    #[test]
    fn a_volume_reads_with_the_documented_defaults() {
        let all =
            volumes("[{name: out, mountPath: /out, persistentVolumeClaim: {claimName: orders}}]");
        let v = &all[0];
        assert!(!v.read_only);
        assert!(v.empty_dir.is_none());
        assert_eq!(
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("orders")
        );
        check_volumes(&all).unwrap();
    }

    #[test]
    fn a_file_sink_on_or_below_a_writable_mount_is_accepted() {
        let v = volumes(DATA);
        for url in [
            "file:///data",
            "file:///data/",
            "file:///data/orders",
            "file:///data//orders/./x",
            "file://localhost/data/orders",
            "file:///data/orders?format=ndjson",
            "http://sink/in",
        ] {
            check_sink_on_volume(url, &v).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn paths_are_compared_component_by_component() {
        let v = volumes(DATA);
        for url in [
            "file:///data2/orders",
            "file:///dat",
            "file:///",
            "file:///data/../etc",
            "file:///tmp/orders",
        ] {
            let err = check_sink_on_volume(url, &v).unwrap_err();
            assert!(matches!(err, Error::SinkNotOnVolume { .. }), "{url}: {err}");
        }
        let spaced = volumes("[{name: data, mountPath: /my data, emptyDir: {}}]");
        check_sink_on_volume("file:///my%20data/orders", &spaced).unwrap();
    }

    #[test]
    fn the_message_says_what_to_add() {
        let err = check_sink_on_volume("file:///data/orders", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sink.url file:///data/orders is not on a mounted volume: the pod's root file system \
             is read-only; add spec.template.volumes with a mountPath of /data/orders or a parent \
             (emptyDir or persistentVolumeClaim)"
        );
    }

    #[test]
    fn the_deepest_mount_decides_and_must_be_writable() {
        let ro = volumes("[{name: data, mountPath: /data, readOnly: true, emptyDir: {}}]");
        let err = check_sink_on_volume("file:///data/orders", &ro).unwrap_err();
        assert!(
            err.to_string()
                .contains("is on volume data, which is mounted read-only"),
            "{err}"
        );
        let claim = volumes("[{name: out, mountPath: /data, persistentVolumeClaim: {claimName: c, readOnly: true}}]");
        let err = check_sink_on_volume("file:///data/orders", &claim).unwrap_err();
        assert!(err.to_string().contains("volume out"), "{err}");

        let nested = volumes(
            "[{name: data, mountPath: /data, emptyDir: {}},
              {name: ref, mountPath: /data/ref, readOnly: true, persistentVolumeClaim: {claimName: ref}}]",
        );
        check_sink_on_volume("file:///data/orders", &nested).unwrap();
        let err = check_sink_on_volume("file:///data/ref/orders", &nested).unwrap_err();
        assert!(err.to_string().contains("volume ref"), "{err}");
    }

    #[test]
    fn a_file_url_without_an_absolute_path_is_refused() {
        let err = check_sink_on_volume("file://data/orders", &volumes(DATA)).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "sink.url"),
            "{err:?}"
        );
        assert!(err.to_string().contains("three slashes"), "{err}");
    }

    #[test]
    fn volumes_repeat_the_api_servers_rules() {
        let cases = [
            ("[{name: Data, mountPath: /data, emptyDir: {}}]", "template.volumes[0].name"),
            ("[{name: kafka-tls, mountPath: /data, emptyDir: {}}]", "template.volumes[0].name"),
            ("[{name: data, mountPath: data, emptyDir: {}}]", "template.volumes[0].mountPath"),
            ("[{name: data, mountPath: /, emptyDir: {}}]", "template.volumes[0].mountPath"),
            ("[{name: data, mountPath: /a/../b, emptyDir: {}}]", "template.volumes[0].mountPath"),
            ("[{name: data, mountPath: /etc/millpond/kafka-tls, emptyDir: {}}]", "template.volumes[0].mountPath"),
            ("[{name: data, mountPath: /etc/millpond/kafka-tls/x, emptyDir: {}}]", "template.volumes[0].mountPath"),
            ("[{name: data, mountPath: /data}]", "template.volumes[0]"),
            (
                "[{name: data, mountPath: /data, emptyDir: {}, persistentVolumeClaim: {claimName: c}}]",
                "template.volumes[0]",
            ),
            ("[{name: data, mountPath: /data, emptyDir: {medium: Memory}}]", "template.volumes[0].emptyDir.medium"),
            (
                "[{name: data, mountPath: /data, emptyDir: {}}, {name: data, mountPath: /out, emptyDir: {}}]",
                "template.volumes[1].name",
            ),
            (
                "[{name: data, mountPath: /data, emptyDir: {}}, {name: out, mountPath: /data/, emptyDir: {}}]",
                "template.volumes[1].mountPath",
            ),
        ];
        for (yaml, want) in cases {
            match check_volumes(&volumes(yaml)) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, want, "{yaml}"),
                other => panic!("{yaml}: {other:?}"),
            }
        }
        check_volumes(&volumes(
            "[{name: millpond, mountPath: /etc/millpond, emptyDir: {}}]",
        ))
        .unwrap();
    }
}
