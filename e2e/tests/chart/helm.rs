//! Running helm and kubectl as a user does, and reading the objects
//! `helm template` renders.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The chart, relative to the repository's root.
pub const CHART: &str = "charts/millpond-operator";
/// The release the rendering tests render (its objects are named
/// `mp-chart-millpond-operator`).
pub const RELEASE: &str = "mp-chart";
/// The namespace the rendering tests render into.
pub const NAMESPACE: &str = "millpond-chart";

/// The repository's root, where helm and kubectl run.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The name of the operator's objects of `release`: its Deployment,
/// ServiceAccount, ClusterRole or Roles.
pub fn fullname(release: &str) -> String {
    format!("{release}-millpond-operator")
}

/// The chart's `appVersion`, the default tag of the operator and consumer
/// images.
pub fn app_version() -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Chart {
        app_version: String,
    }
    let file = repo().join(CHART).join("Chart.yaml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let chart: Chart =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    chart.app_version
}

/// What a command printed and whether it succeeded.
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Both streams, for a failure message.
    pub fn both(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program` with `args` in the repository's root (helm and kubectl
/// are on PATH from `e2e/stack env`); fails the test when it cannot start.
pub fn run(program: &str, args: &[&str]) -> Output {
    try_run(program, args)
        .unwrap_or_else(|e| panic!("running {program} (on PATH from `e2e/stack env`): {e}"))
}

fn try_run(program: &str, args: &[&str]) -> std::io::Result<Output> {
    let out = Command::new(program)
        .current_dir(repo())
        .args(args)
        .output()?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The chart as `helm template` renders it for [`RELEASE`] in
/// [`NAMESPACE`] with `args` (e.g. `--set`s); fails the test with helm's
/// message when it does not render.
pub fn render(args: &[&str]) -> Rendered {
    render_as(RELEASE, NAMESPACE, args)
}

/// The chart as `helm template` renders it for `release` in `namespace`
/// with `args`.
pub fn render_as(release: &str, namespace: &str, args: &[&str]) -> Rendered {
    let mut all = vec!["template", release, CHART, "-n", namespace];
    all.extend(args);
    let out = run("helm", &all);
    assert!(
        out.ok,
        "helm {} does not render:\n{}",
        all.join(" "),
        out.stderr
    );
    Rendered::parse(out.stdout)
}

/// The YAML text `helm template` printed and its objects, in order.
pub struct Rendered {
    pub text: String,
    pub objects: Vec<Value>,
}

impl Rendered {
    fn parse(text: String) -> Rendered {
        let objects = serde_yaml::Deserializer::from_str(&text)
            .map(|doc| {
                Value::deserialize(doc)
                    .unwrap_or_else(|e| panic!("helm template printed YAML that is not: {e}"))
            })
            .filter(|v| !v.is_null())
            .collect();
        Rendered { text, objects }
    }

    /// The kinds of the objects, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or("(no kind)"))
            .collect();
        kinds.sort_unstable();
        kinds
    }

    /// Every object of `kind`, in the order rendered.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The one object of `kind` named `name`, as a `K`; fails the test
    /// unless there is exactly one.
    pub fn one<K: DeserializeOwned>(&self, kind: &str, name: &str) -> K {
        let found: Vec<&Value> = self
            .of_kind(kind)
            .into_iter()
            .filter(|o| o["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "{kind} {name}: one rendered, got {found:?}");
        serde_json::from_value(found[0].clone())
            .unwrap_or_else(|e| panic!("{kind} {name} as rendered: {e}"))
    }

    /// The rules of every Role and ClusterRole, each with the role's
    /// `Kind namespace/name` (`Kind name` for a ClusterRole).
    pub fn rules(&self) -> Vec<(String, PolicyRule)> {
        let mut out = Vec::new();
        for role in self
            .of_kind("Role")
            .into_iter()
            .chain(self.of_kind("ClusterRole"))
        {
            let (kind, meta) = (role["kind"].as_str().unwrap_or(""), &role["metadata"]);
            let role_name = meta["name"].as_str().unwrap_or("");
            let name = match meta["namespace"].as_str() {
                Some(ns) => format!("{kind} {ns}/{role_name}"),
                None => format!("{kind} {role_name}"),
            };
            let rules: Vec<PolicyRule> = serde_json::from_value(role["rules"].clone())
                .unwrap_or_else(|e| panic!("the rules of {name}: {e}"));
            out.extend(rules.into_iter().map(|r| (name.clone(), r)));
        }
        out
    }
}

/// Fails the test unless the objects of `chart` are of `kinds` (sorted).
pub fn assert_kinds(chart: &Rendered, kinds: &[&str], what: &str) {
    assert_eq!(chart.kinds(), kinds, "the objects {what}");
}

/// A release of the chart installed for one test, uninstalled when
/// dropped, also when the test fails: no operator release outlives the
/// test (the operator scenarios assume none runs).
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Release {
    /// `helm install <name> charts/millpond-operator -n <namespace> <args>
    /// --wait`, as a user installs it; fails the test with helm's output.
    pub fn install(name: &str, namespace: &str, args: &[&str]) -> Release {
        let release = Release {
            name: name.to_string(),
            namespace: namespace.to_string(),
        };
        let mut all = vec!["install", name, CHART, "-n", namespace];
        all.extend(args);
        all.extend(["--wait", "--timeout", "120s"]);
        let out = run("helm", &all);
        assert!(out.ok, "helm {}:\n{}", all.join(" "), out.both());
        release
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let (name, ns) = (self.name.as_str(), self.namespace.as_str());
        let args = ["uninstall", name, "-n", ns, "--wait", "--timeout", "60s"];
        match try_run("helm", &args) {
            Ok(out) if out.ok => {}
            Ok(out) => eprintln!("clean-up: helm uninstall {name} -n {ns}: {}", out.both()),
            Err(e) => eprintln!("clean-up: running helm uninstall {name} -n {ns}: {e}"),
        }
    }
}
