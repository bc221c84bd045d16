//! A container's environment, resolved the way the kubelet does it.
//!
//! Order (later wins): the base variables every container gets (`PATH`,
//! `HOSTNAME`, `KUBERNETES_SERVICE_HOST/PORT`, `KUBECONFIG`, ...), then each
//! `envFrom` source in order (with its `prefix`), then each `env` entry in
//! order. `env` values expand `$(VAR)` references to variables defined
//! before them (`$$` escapes a `$`; unknown references stay as written);
//! `valueFrom` values are taken verbatim. A reference that cannot be resolved
//! and is not `optional` fails the container with `CreateContainerConfigError`
//! and the message the kubelet would give.
//!
//! Everything here is pure: the ConfigMaps and Secrets a container needs are
//! fetched by the caller (see [`references`]) and passed in.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret};

use crate::quantity;

/// What `fieldRef`s read that is not in the pod object itself (yet).
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The pod's IP (the status may not carry it yet at first start).
    pub pod_ip: String,
    /// The node's IP.
    pub host_ip: String,
    /// The node's name.
    pub node_name: String,
    /// Node allocatable CPU (cores) and memory (bytes): the value of
    /// `resourceFieldRef` `limits.*` when the container sets no limit.
    pub allocatable_cpu: f64,
    pub allocatable_memory: f64,
    pub allocatable_ephemeral_storage: f64,
}

/// The ConfigMaps and Secrets of the pod's namespace a container refers to;
/// `None` means "not found".
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    pub secrets: BTreeMap<String, Option<Secret>>,
}

/// Names of the ConfigMaps and Secrets a container's `env` and `envFrom`
/// refer to: what the caller must fetch before [`resolve`].
pub fn references(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(source) = &var.value_from {
            if let Some(r) = &source.config_map_key_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (config_maps, secrets)
}

/// Resolves the full environment of `container` in `pod`. `base` holds the
/// variables every container gets; the pod's own variables override them.
/// The error is the `CreateContainerConfigError` message.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    facts: &PodFacts,
    sources: &Sources,
    base: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = base.clone();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name).and_then(Option::as_ref) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        insert_valid(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name).and_then(Option::as_ref) {
                Some(secret) => {
                    for (k, v) in secret_entries(secret) {
                        insert_valid(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            Some(source) => {
                match value_from(pod, container, namespace, source, facts, sources)? {
                    Some(v) => v,
                    // An optional reference that is missing leaves the
                    // variable unset, as with the kubelet.
                    None => continue,
                }
            }
            None => {
                let raw = var.value.as_deref().unwrap_or("");
                expand(raw, |name| env.get(name).cloned())
            }
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` in a command or argument with the container's final
/// environment, like the kubelet does for `command` and `args`.
pub fn expand_args(args: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    args.iter()
        .map(|a| expand(a, |name| env.get(name).cloned()))
        .collect()
}

/// Kubernetes `$(VAR)` expansion: `$(NAME)` becomes the value of NAME if
/// `lookup` knows it and stays `$(NAME)` otherwise; `$$` becomes `$`; any
/// other `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if after.is_empty() {
            out.push('$');
            rest = after;
        } else if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(close) => {
                    let name = &body[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn insert_valid(env: &mut BTreeMap<String, String>, name: String, value: String) {
    // The kubelet skips keys that are not valid variable names (and records
    // an event); skip the ones no process could take.
    if !name.is_empty() && !name.contains(['=', '\0']) {
        env.insert(name, value);
    }
}

fn secret_entries(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

fn value_from(
    pod: &Pod,
    container: &Container,
    namespace: &str,
    source: &EnvVarSource,
    facts: &PodFacts,
    sources: &Sources,
) -> Result<Option<String>, String> {
    if let Some(f) = &source.field_ref {
        return field_value(pod, &f.field_path, facts).map(Some);
    }
    if let Some(r) = &source.resource_field_ref {
        return resource_value(
            container,
            &r.resource,
            r.divisor.as_ref().map(|d| &*d.0),
            facts,
        )
        .map(Some);
    }
    if let Some(r) = &source.config_map_key_ref {
        let optional = r.optional == Some(true);
        return match sources.config_maps.get(&r.name).and_then(Option::as_ref) {
            None if optional => Ok(None),
            None => Err(format!("configmap {:?} not found", r.name)),
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in ConfigMap {namespace}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    if let Some(r) = &source.secret_key_ref {
        let optional = r.optional == Some(true);
        return match sources.secrets.get(&r.name).and_then(Option::as_ref) {
            None if optional => Ok(None),
            None => Err(format!("secret {:?} not found", r.name)),
            Some(secret) => match secret_entries(secret).remove(&r.key) {
                Some(v) => Ok(Some(v)),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in Secret {namespace}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    Err("env var has valueFrom with no source set".to_string())
}

/// The value of a downward-API `fieldRef`.
pub fn field_value(pod: &Pod, path: &str, facts: &PodFacts) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| facts.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        other => {
            let keyed = |prefix: &str| {
                other
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
                    .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
                    .map(str::to_string)
            };
            if let Some(key) = keyed("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = keyed("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {other}"));
            }
        }
    };
    Ok(value)
}

fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`, ...),
/// divided by `divisor` and rounded up; an unset limit is the node's
/// allocatable amount.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    facts: &PodFacts,
) -> Result<String, String> {
    let resources = container.resources.as_ref();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {resource}"))?;
    let declared = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource: {resource}")),
    }
    .and_then(|m| m.get(name))
    .and_then(|q| quantity::parse(&q.0));
    let value = match (kind, name, declared) {
        (_, _, Some(v)) => v,
        ("limits", "cpu", None) => facts.allocatable_cpu,
        ("limits", "memory", None) => facts.allocatable_memory,
        ("limits", "ephemeral-storage", None) => facts.allocatable_ephemeral_storage,
        ("requests", "cpu" | "memory" | "ephemeral-storage", None) => 0.0,
        _ => return Err(format!("unsupported container resource: {resource}")),
    };
    let divisor = match divisor {
        Some(d) if !d.is_empty() => {
            quantity::parse(d).ok_or_else(|| format!("invalid divisor {d:?} for {resource}"))?
        }
        _ => 1.0,
    };
    quantity::divide_ceil(value, divisor)
        .map(|v| v.to_string())
        .ok_or_else(|| format!("invalid divisor for {resource}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ip: "127.1.0.7".into(),
            host_ip: "127.0.0.1".into(),
            node_name: "millpond-node".into(),
            allocatable_cpu: 2.0,
            allocatable_memory: 8.0 * 1024.0 * 1024.0 * 1024.0,
            allocatable_ephemeral_storage: 1e11,
        }
    }

    fn cm(name: &str, data: &[(&str, &str)]) -> (String, Option<ConfigMap>) {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        (name.into(), Some(c))
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> (String, Option<Secret>) {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        (name.into(), Some(s))
    }

    const POD: &str = r#"
metadata: {name: web-1, namespace: shop, uid: u-1, labels: {app: web, tier: "1"}}
spec:
  nodeName: millpond-node
  serviceAccountName: web
  containers:
  - name: app
    image: millpond/testapp
    resources: {limits: {memory: 256Mi, cpu: 250m}}
    envFrom:
    - configMapRef: {name: settings}
    - secretRef: {name: creds}
      prefix: DB_
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: LISTEN_ADDR, value: "$(POD_IP):8080"}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: settings, key: level}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MODE, value: "override"}
"#;

    fn sources() -> Sources {
        Sources {
            config_maps: [cm("settings", &[("level", "debug"), ("MODE", "from-cm")])].into(),
            secrets: [secret("creds", &[("password", "hunter2"), ("user", "svc")])].into(),
        }
    }

    #[test]
    fn resolves_field_resource_configmap_and_secret_references() {
        let p = pod(POD);
        let c = &p.spec.as_ref().unwrap().containers[0];
        let base = BTreeMap::from([("PATH".to_string(), "/usr/bin".to_string())]);
        let env = resolve(&p, c, &facts(), &sources(), &base).unwrap();
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("PATH"), Some("/usr/bin"));
        assert_eq!(get("POD_NAME"), Some("web-1"));
        assert_eq!(get("POD_NAMESPACE"), Some("shop"));
        assert_eq!(get("POD_IP"), Some("127.1.0.7"));
        assert_eq!(get("NODE"), Some("millpond-node"));
        assert_eq!(get("SA"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("LISTEN_ADDR"), Some("127.1.0.7:8080"));
        assert_eq!(get("MEM"), Some("256"));
        assert_eq!(get("CPU_M"), Some("250"));
        assert_eq!(get("LEVEL"), Some("debug"));
        assert_eq!(get("PASSWORD"), Some("hunter2"));
        assert_eq!(get("DB_user"), Some("svc"), "envFrom prefix");
        assert_eq!(get("level"), Some("debug"), "envFrom configmap");
        assert_eq!(get("MODE"), Some("override"), "env beats envFrom");
    }

    #[test]
    fn missing_required_references_fail_with_kubelet_messages() {
        let p = pod(POD);
        let c = &p.spec.as_ref().unwrap().containers[0];
        let base = BTreeMap::new();
        let mut s = sources();
        s.config_maps.insert("settings".into(), None);
        let err = resolve(&p, c, &facts(), &s, &base).unwrap_err();
        assert_eq!(err, "configmap \"settings\" not found");

        let mut s = sources();
        s.secrets = [secret("creds", &[("user", "svc")])].into();
        let err = resolve(&p, c, &facts(), &s, &base).unwrap_err();
        assert_eq!(err, "couldn't find key password in Secret shop/creds");

        let mut s = sources();
        s.config_maps = [cm("settings", &[])].into();
        let err = resolve(&p, c, &facts(), &s, &base).unwrap_err();
        assert_eq!(err, "couldn't find key level in ConfigMap shop/settings");
    }

    #[test]
    fn optional_references_that_are_missing_leave_the_variable_unset() {
        let p = pod(r#"
metadata: {name: p, namespace: ns}
spec:
  containers:
  - name: c
    envFrom:
    - {configMapRef: {name: nope, optional: true}}
    - {secretRef: {name: nope, optional: true}}
    env:
    - {name: A, valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}}
    - {name: B, valueFrom: {secretKeyRef: {name: s, key: missing, optional: true}}}
    - {name: C, value: "$(A)-x"}
"#);
        let c = &p.spec.as_ref().unwrap().containers[0];
        let s = Sources {
            config_maps: [("nope".to_string(), None)].into(),
            secrets: [("nope".to_string(), None), secret("s", &[("k", "v")])].into(),
        };
        let env = resolve(&p, c, &facts(), &s, &BTreeMap::new()).unwrap();
        assert!(!env.contains_key("A") && !env.contains_key("B"));
        assert_eq!(env["C"], "$(A)-x", "unknown references stay as written");
    }

    #[test]
    fn unsupported_field_paths_are_config_errors() {
        let p = pod(r#"
metadata: {name: p}
spec:
  containers:
  - name: c
    env: [{name: X, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}]
"#);
        let c = &p.spec.as_ref().unwrap().containers[0];
        let err = resolve(&p, c, &facts(), &Sources::default(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err, "unsupported fieldPath: spec.bogus");
    }

    #[test]
    fn unset_limits_fall_back_to_node_allocatable() {
        let p = pod("metadata: {name: p}\nspec: {containers: [{name: c}]}");
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            resource_value(c, "limits.cpu", None, &facts()).unwrap(),
            "2"
        );
        assert_eq!(
            resource_value(c, "limits.memory", Some("1Gi"), &facts()).unwrap(),
            "8"
        );
        assert_eq!(
            resource_value(c, "requests.cpu", None, &facts()).unwrap(),
            "0"
        );
        assert!(resource_value(c, "limits.gpu", None, &facts()).is_err());
    }

    #[test]
    fn references_lists_what_to_fetch() {
        let p = pod(POD);
        let (cms, secrets) = references(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["settings"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["creds"]);
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let lookup = |n: &str| (n == "A").then(|| "1".to_string());
        assert_eq!(expand("$(A)", lookup), "1");
        assert_eq!(expand("x$(A)y$(A)", lookup), "x1y1");
        assert_eq!(expand("$(B)", lookup), "$(B)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$", lookup), "$");
        assert_eq!(expand("$A", lookup), "$A");
        assert_eq!(expand("cost: 5$", lookup), "cost: 5$");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("", lookup), "");
        let env = BTreeMap::from([("IP".to_string(), "127.1.0.2".to_string())]);
        assert_eq!(
            expand_args(&["--listen=$(IP):80".to_string()], &env),
            vec!["--listen=127.1.0.2:80"]
        );
    }

    #[test]
    fn labels_without_key_render_as_lines() {
        let p = pod(POD);
        let v = field_value(&p, "metadata.labels", &facts()).unwrap();
        assert_eq!(v, "app=\"web\"\ntier=\"1\"");
    }
}
