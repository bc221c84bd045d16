//! Command line and the settings derived from it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::images::{self, ImageMap};
use crate::{Error, Result};

/// A process kubelet: registers a node, binds unscheduled pods to it and
/// runs their containers as local processes.
#[derive(Debug, Clone, Parser)]
#[command(name = "millpond-kubelet", version)]
pub struct Args {
    /// Kubeconfig of the kubelet itself (an admin identity). Pods never see
    /// it: they get their service account's token.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Name of the node to register.
    #[arg(long, default_value = "millpond-node")]
    pub node_name: String,

    /// Directory searched for `millpond-<name>` binaries (built-in image
    /// rule). Repeatable, searched in order. Default: the directory of this
    /// executable (target/release for a release build).
    #[arg(long = "bin-dir")]
    pub bin_dirs: Vec<PathBuf>,

    /// Explicit image mapping IMAGE=PATH (IMAGE with or without tag).
    /// Repeatable; wins over the built-in rule.
    #[arg(long = "image-map")]
    pub image_map: Vec<String>,

    /// YAML file mapping image references to program paths.
    #[arg(long)]
    pub image_map_file: Option<PathBuf>,

    /// Where logs, pod directories and pid files go (`<state>/kubelet/...`).
    /// Default: $MILLPOND_STATE_DIR, else ~/.local/state/millpond.
    #[arg(long, env = "MILLPOND_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// API server URL written into pods' kubeconfigs. Default: the one the
    /// kubelet's own kubeconfig uses.
    #[arg(long)]
    pub api_server_url: Option<String>,

    /// PEM CA bundle written into pods' kubeconfigs. Default: the CA of the
    /// kubelet's own kubeconfig.
    #[arg(long)]
    pub api_server_ca_file: Option<PathBuf>,

    /// Loopback range pod IPs come from.
    #[arg(long, default_value = "127.1.0.0/16")]
    pub pod_cidr: String,

    /// The node's IP (`status.hostIP` of its pods).
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: String,

    /// Cap of the restart back-off in seconds (a real kubelet uses 300).
    #[arg(long, default_value_t = 30)]
    pub max_backoff_seconds: u64,

    /// On shutdown of the kubelet, how long containers get between SIGTERM
    /// and SIGKILL at most (their pod's grace period, if shorter, wins).
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
}

/// Settings of a running kubelet.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub node_ip: String,
    pub images: ImageMap,
    pub state: StateDirs,
    pub pod_cidr: String,
    pub max_backoff: Duration,
    pub shutdown_grace: Duration,
}

/// The kubelet's directories under the state directory.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDirs {
    /// `<state>/kubelet`
    pub root: PathBuf,
    /// `<state>/kubelet/logs`: `<namespace>_<pod>_<container>.log`
    pub logs: PathBuf,
    /// `<state>/kubelet/pods`: `<namespace>_<pod>_<uid>/` per pod
    pub pods: PathBuf,
}

impl StateDirs {
    /// The layout under `state` (the stack's state directory).
    pub fn new(state: &Path) -> Self {
        let root = state.join("kubelet");
        StateDirs {
            logs: root.join("logs"),
            pods: root.join("pods"),
            root,
        }
    }

    /// Creates the directories.
    pub fn create(&self) -> Result<()> {
        for d in [&self.root, &self.logs, &self.pods] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("creating", d, e))?;
        }
        Ok(())
    }

    /// Log file of one container.
    pub fn log_file(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.logs.join(format!("{namespace}_{pod}_{container}.log"))
    }

    /// Directory of one pod.
    pub fn pod_dir(&self, namespace: &str, pod: &str, uid: &str) -> PathBuf {
        self.pods.join(format!("{namespace}_{pod}_{uid}"))
    }
}

impl Settings {
    /// Validates the arguments and loads the image map.
    pub fn from_args(args: &Args) -> Result<Self> {
        let state = match &args.state_dir {
            Some(d) => d.clone(),
            None => {
                let home = std::env::var_os("HOME")
                    .ok_or_else(|| Error::Config("neither --state-dir nor HOME is set".into()))?;
                PathBuf::from(home).join(".local/state/millpond")
            }
        };
        let mut explicit = match &args.image_map_file {
            Some(f) => {
                let text = std::fs::read_to_string(f).map_err(|e| Error::io("reading", f, e))?;
                images::parse_yaml(&text)?
            }
            None => Default::default(),
        };
        for entry in &args.image_map {
            let (image, path) = images::parse_flag(entry)?;
            explicit.insert(image, path);
        }
        let explicit = explicit
            .into_iter()
            .map(|(i, p)| (i, absolute(&p)))
            .collect();
        let bin_dirs = if args.bin_dirs.is_empty() {
            let exe = std::env::current_exe()
                .map_err(|e| Error::io("locating", "the kubelet executable", e))?;
            vec![exe
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))]
        } else {
            args.bin_dirs.iter().map(|d| absolute(d)).collect()
        };
        crate::ip::IpAllocator::new(&args.pod_cidr)?;
        Ok(Settings {
            node_name: args.node_name.clone(),
            node_ip: args.node_ip.clone(),
            images: ImageMap::new(explicit, bin_dirs),
            state: StateDirs::new(&state),
            pod_cidr: args.pod_cidr.clone(),
            max_backoff: Duration::from_secs(args.max_backoff_seconds.max(1)),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        })
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_layout_names_logs_and_pod_dirs() {
        let d = StateDirs::new(Path::new("/s"));
        assert_eq!(
            d.log_file("ns", "web-1", "app"),
            PathBuf::from("/s/kubelet/logs/ns_web-1_app.log")
        );
        assert_eq!(
            d.pod_dir("ns", "web-1", "u"),
            PathBuf::from("/s/kubelet/pods/ns_web-1_u")
        );
    }

    #[test]
    fn settings_merge_flags_over_the_map_file_and_check_the_cidr() {
        let args = Args::parse_from([
            "millpond-kubelet",
            "--state-dir",
            "/tmp/x",
            "--bin-dir",
            "/bins",
            "--image-map",
            "busybox=/usr/bin/busybox",
        ]);
        let s = Settings::from_args(&args).unwrap();
        assert_eq!(s.images.bin_dirs(), &[PathBuf::from("/bins")]);
        assert_eq!(
            s.images.resolve("busybox:latest", |_| true).unwrap(),
            PathBuf::from("/usr/bin/busybox")
        );
        assert_eq!(s.state.root, PathBuf::from("/tmp/x/kubelet"));
        let bad = Args::parse_from([
            "millpond-kubelet",
            "--state-dir",
            "/x",
            "--pod-cidr",
            "10.0.0.0/8",
        ]);
        assert!(Settings::from_args(&bad).is_err());
    }
}
