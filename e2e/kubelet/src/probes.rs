//! Container probes: `httpGet`, `tcpSocket` and `exec` handlers, and the
//! pure threshold logic (`successThreshold` / `failureThreshold`) that turns
//! single results into "ready", "alive" and "started".

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    /// The probe of this kind in a container spec.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Startup => container.startup_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
        }
    }

    /// Lower-case name, as in the kubelet's messages.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Liveness => "liveness",
        }
    }
}

/// Timing of a probe with the Kubernetes defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    /// Reads a probe's timing (defaults: period 10 s, timeout 1 s, success
    /// threshold 1, failure threshold 3).
    pub fn of(probe: &Probe) -> Self {
        let secs =
            |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        Timing {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive-result bookkeeping of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    passing: bool,
}

impl Tracker {
    /// A tracker whose result is `initial` until the thresholds say
    /// otherwise (readiness and startup start failing, liveness passing).
    pub fn new(timing: &Timing, initial: bool) -> Self {
        Self {
            success_threshold: timing.success_threshold,
            failure_threshold: timing.failure_threshold,
            successes: 0,
            failures: 0,
            passing: initial,
        }
    }

    /// Records one result; returns the (possibly changed) overall result.
    pub fn record(&mut self, ok: bool) -> bool {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_threshold {
                self.passing = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failure_threshold {
                self.passing = false;
            }
        }
        self.passing
    }

    /// The current overall result.
    pub fn passing(&self) -> bool {
        self.passing
    }

    /// True once `failureThreshold` consecutive failures happened (what
    /// fails a startup probe, which starts out not passing).
    pub fn failed_out(&self) -> bool {
        self.failures >= self.failure_threshold
    }
}

/// Where and how a container's probes run.
#[derive(Debug, Clone)]
pub struct Target {
    pub pod_ip: IpAddr,
    /// Named container ports, for probes that name their port.
    pub ports: BTreeMap<String, i32>,
    /// For exec probes: the container's program resolution and environment.
    pub image_program: PathBuf,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

impl Target {
    fn port(&self, port: &IntOrString) -> Result<u16, String> {
        let n = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => match name.parse::<i32>() {
                Ok(n) => n,
                Err(_) => *self
                    .ports
                    .get(name)
                    .ok_or_else(|| format!("port {name:?} is not a named port of the container"))?,
            },
        };
        u16::try_from(n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {n}"))
    }
}

/// Runs a probe once. `Ok` is success; the error says why it failed, in
/// the kubelet's words where it has them.
pub async fn run_once(
    probe: &Probe,
    target: &Target,
    http: &reqwest::Client,
) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    if let Some(h) = &probe.http_get {
        let port = target.port(&h.port)?;
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| target.pod_ip.to_string());
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let url = format!("{scheme}://{host}:{port}{path}");
        let mut req = http
            .get(&url)
            .timeout(timeout)
            .header("User-Agent", "kube-probe/1.34");
        for header in h.http_headers.iter().flatten() {
            req = req.header(&header.name, &header.value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("Get {url:?}: {}", error_chain(&e)))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(t) = &probe.tcp_socket {
        let port = target.port(&t.port)?;
        let host: IpAddr = match t.host.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => h.parse().map_err(|_| format!("invalid host {h:?}"))?,
            None => target.pod_ip,
        };
        let addr = SocketAddr::new(host, port);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(e) = &probe.exec {
        let command = e.command.clone().unwrap_or_default();
        let path = target.env.get("PATH").cloned().unwrap_or_default();
        let (program, args) =
            crate::process::command_line(&target.image_program, &command, &[], |n| {
                crate::process::search_path(n, &path)
            })?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .env_clear()
            .envs(&target.env)
            .current_dir(&target.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        return match tokio::time::timeout(timeout, cmd.output()).await {
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "command {command:?} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Ok(Err(err)) => Err(format!("command {command:?}: {err}")),
            Err(_) => Err(format!("command {command:?} timed out")),
        };
    }
    if probe.grpc.is_some() {
        return Err("grpc probes are not supported by millpond-kubelet".to_string());
    }
    Err("probe has no handler".to_string())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(yaml: &str) -> Probe {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn target() -> Target {
        Target {
            pod_ip: "127.0.0.1".parse().unwrap(),
            ports: BTreeMap::from([("http".to_string(), 1)]),
            image_program: PathBuf::from("/bin/true"),
            env: BTreeMap::from([("PATH".to_string(), "/bin:/usr/bin".to_string())]),
            cwd: std::env::temp_dir(),
        }
    }

    #[test]
    fn timing_defaults_match_kubernetes() {
        let t = Timing::of(&probe("httpGet: {port: 80}"));
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = Timing::of(&probe(
            "{httpGet: {port: 80}, periodSeconds: 2, initialDelaySeconds: 3, failureThreshold: 1}",
        ));
        assert_eq!(t.period, Duration::from_secs(2));
        assert_eq!(t.initial_delay, Duration::from_secs(3));
        assert_eq!(t.failure_threshold, 1);
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        let t = Timing::of(&probe(
            "{httpGet: {port: 80}, successThreshold: 2, failureThreshold: 3}",
        ));
        let mut r = Tracker::new(&t, false);
        assert!(!r.record(true));
        assert!(r.record(true), "two successes in a row");
        assert!(r.record(false));
        assert!(r.record(false));
        assert!(r.record(true), "a success resets the failure count");
        assert!(r.record(false) && r.record(false));
        assert!(!r.failed_out());
        assert!(!r.record(false), "third consecutive failure");
        assert!(!r.passing() && r.failed_out());
    }

    #[test]
    fn named_ports_resolve_through_the_container_ports() {
        let t = target();
        assert_eq!(t.port(&IntOrString::String("http".into())), Ok(1));
        assert_eq!(t.port(&IntOrString::String("8080".into())), Ok(8080));
        assert!(t.port(&IntOrString::String("metrics".into())).is_err());
        assert!(t.port(&IntOrString::Int(0)).is_err());
    }

    #[tokio::test]
    async fn http_and_tcp_probes_hit_the_pod_ip() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if req.starts_with("GET /healthz") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let http = reqwest::Client::new();
        let ok = probe(&format!("httpGet: {{path: /healthz, port: {port}}}"));
        assert_eq!(run_once(&ok, &target(), &http).await, Ok(()));
        let bad = probe(&format!("httpGet: {{path: /other, port: {port}}}"));
        assert_eq!(
            run_once(&bad, &target(), &http).await,
            Err("HTTP probe failed with statuscode: 503".to_string())
        );
        let tcp = probe(&format!("tcpSocket: {{port: {port}}}"));
        assert_eq!(run_once(&tcp, &target(), &http).await, Ok(()));
    }

    #[tokio::test]
    async fn exec_probes_use_the_exit_code() {
        let http = reqwest::Client::new();
        let ok = probe("exec: {command: [sh, -c, 'exit 0']}");
        assert_eq!(run_once(&ok, &target(), &http).await, Ok(()));
        let bad = probe("exec: {command: [sh, -c, 'echo nope; exit 3']}");
        let err = run_once(&bad, &target(), &http).await.unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
