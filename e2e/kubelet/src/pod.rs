//! One pod's worker: sets up the pod's "sandbox" (loopback IP, directory,
//! service-account identity), starts its containers as processes (init
//! containers first, one after the other), probes them, restarts them with
//! back-off, publishes the pod status, and tears everything down when the
//! pod is deleted.
//!
//! The worker is an event loop: pod updates from the manager, process exits
//! and probe results from small helper tasks, and a tick. After every event
//! it runs `sync`, which moves the pod towards what its spec and the
//! events say, and publishes the status if it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::ResourceExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::env::{self, PodFacts, Sources};
use crate::identity::{self, Token};
use crate::probes::{self, ProbeKind, Target, Timing, Tracker};
use crate::process::{self, Backoff, Launch};
use crate::status::{self, ContainerView, PodView, RunState};

/// How often the worker wakes up without events (back-off expiry, kill
/// deadlines, retries).
const TICK: Duration = Duration::from_millis(500);
/// Retry interval for configuration errors and identity failures.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// First restart back-off.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Grace period when the pod sets none.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// After SIGKILL, how long to wait for the exit before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// What the manager tells a worker about its pod.
#[derive(Debug, Clone)]
pub enum Update {
    /// The pod's latest version.
    Present(Arc<Pod>),
    /// The pod object is gone from the API server.
    Gone,
}

#[derive(Debug)]
enum Event {
    Exited {
        slot: usize,
        seq: u64,
        result: std::io::Result<std::process::ExitStatus>,
    },
    Probe {
        slot: usize,
        seq: u64,
        kind: ProbeKind,
        result: Result<(), String>,
    },
}

/// One running process of a container.
struct Run {
    seq: u64,
    pid: u32,
    started: Instant,
    started_at: Timestamp,
    target: Target,
    probes: Vec<(ProbeKind, JoinHandle<()>)>,
    /// SIGTERM was sent; SIGKILL follows at this instant.
    kill_at: Option<Instant>,
    /// SIGKILL was sent at this instant.
    killed_at: Option<Instant>,
}

impl Run {
    fn stop_probes(&mut self) {
        for (_, task) in self.probes.drain(..) {
            task.abort();
        }
    }
}

/// A container of the pod and what the worker knows about it.
struct Slot {
    init: bool,
    spec: Container,
    view: ContainerView,
    run: Option<Run>,
    seq: u64,
    has_run: bool,
    backoff: Backoff,
    image_backoff: Backoff,
    not_before: Option<Instant>,
    /// Will not start again (finished for good, or the pod is stopping).
    done: bool,
    trackers: BTreeMap<ProbeKind, Tracker>,
    log: PathBuf,
    pidfile: PathBuf,
}

impl Slot {
    fn due(&self, now: Instant) -> bool {
        !self.done && self.run.is_none() && self.not_before.is_none_or(|t| now >= t)
    }

    fn succeeded(&self) -> bool {
        matches!(self.view.state, RunState::Terminated { exit_code: 0, .. })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

/// The worker of one pod.
pub struct Worker {
    ctx: Arc<Context>,
    pod: Arc<Pod>,
    uid: String,
    namespace: String,
    name: String,
    dir: PathBuf,
    gone: bool,
    shutdown: bool,
    ip: Option<Ipv4Addr>,
    sandbox_error: Option<String>,
    sandbox_retry: Option<Instant>,
    token: Option<Token>,
    token_retry: Option<Instant>,
    start_time: Timestamp,
    slots: Vec<Slot>,
    n_init: usize,
    last_status: Option<PodStatus>,
    stopping_since: Option<Instant>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
}

impl Worker {
    /// A worker for `pod` (not started yet).
    pub fn new(ctx: Arc<Context>, pod: Arc<Pod>) -> Self {
        let uid = pod.uid().unwrap_or_default();
        let namespace = pod.namespace().unwrap_or_else(|| "default".into());
        let name = pod.name_any();
        let dir = ctx.settings.state.pod_dir(&namespace, &name, &uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let existing = pod.status.as_ref();
        let max_backoff = ctx.settings.max_backoff;
        let init = spec.init_containers.clone().unwrap_or_default();
        let n_init = init.len();
        let mut slots = Vec::new();
        for (is_init, c) in init
            .into_iter()
            .map(|c| (true, c))
            .chain(spec.containers.into_iter().map(|c| (false, c)))
        {
            let previous = existing
                .and_then(|s| {
                    if is_init {
                        s.init_container_statuses.as_ref()
                    } else {
                        s.container_statuses.as_ref()
                    }
                })
                .and_then(|l| l.iter().find(|s| s.name == c.name));
            let restart_count = previous.map_or(0, |p| p.restart_count);
            let has_run = previous.is_some_and(|p| {
                p.restart_count > 0
                    || p.state
                        .as_ref()
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            });
            let waiting = if n_init > 0 {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            slots.push(Slot {
                init: is_init,
                view: ContainerView {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: String::new(),
                    container_id: None,
                    state: RunState::waiting(waiting, None),
                    last_state: None,
                    ready: false,
                    started: false,
                    restart_count,
                },
                log: ctx.settings.state.log_file(&namespace, &name, &c.name),
                pidfile: dir.join(format!("{}.pid", c.name)),
                spec: c,
                run: None,
                seq: 0,
                has_run,
                backoff: Backoff::new(INITIAL_BACKOFF, max_backoff),
                image_backoff: Backoff::new(INITIAL_BACKOFF, max_backoff),
                not_before: None,
                done: false,
                trackers: BTreeMap::new(),
            });
        }
        let start_time = existing
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Worker {
            ctx,
            pod,
            uid,
            namespace,
            name,
            dir,
            gone: false,
            shutdown: false,
            ip: None,
            sandbox_error: None,
            sandbox_retry: None,
            token: None,
            token_retry: None,
            start_time,
            slots,
            n_init,
            last_status: None,
            stopping_since: None,
            events_tx,
            events_rx,
        }
    }

    /// Runs the pod until it is deleted (or the kubelet shuts down), then
    /// reports its UID on `done`.
    pub async fn run(
        mut self,
        mut updates: watch::Receiver<Update>,
        mut shutdown: watch::Receiver<bool>,
        done: mpsc::UnboundedSender<String>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.shutdown = *shutdown.borrow();
        loop {
            tokio::select! {
                changed = updates.changed(), if !self.gone => match changed {
                    Ok(()) => match &*updates.borrow_and_update() {
                        Update::Present(pod) => self.pod = pod.clone(),
                        Update::Gone => self.gone = true,
                    },
                    Err(_) => self.gone = true,
                },
                Some(event) = self.events_rx.recv() => self.handle(event),
                _ = tick.tick() => {}
                changed = shutdown.changed(), if !self.shutdown => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.shutdown = true;
                    }
                }
            }
            // Take every event that is already queued before syncing.
            while let Ok(event) = self.events_rx.try_recv() {
                self.handle(event);
            }
            if self.sync().await == Flow::Done {
                break;
            }
        }
        self.cleanup();
        let _ = done.send(self.uid.clone());
    }

    // ------------------------------------------------------------ events --

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited { slot, seq, result } => self.on_exit(slot, seq, result),
            Event::Probe {
                slot,
                seq,
                kind,
                result,
            } => self.on_probe(slot, seq, kind, result),
        }
    }

    fn on_exit(&mut self, i: usize, seq: u64, result: std::io::Result<std::process::ExitStatus>) {
        let slot = &mut self.slots[i];
        let Some(mut run) = slot.run.take_if(|r| r.seq == seq) else {
            return;
        };
        run.stop_probes();
        // Like a container whose main process ended: nothing of it survives.
        process::signal_group(run.pid, libc::SIGKILL);
        let _ = std::fs::remove_file(&slot.pidfile);
        let (exit_code, signal) = match result {
            Ok(status) => process::exit_info(status),
            Err(e) => {
                tracing::warn!(container = %slot.view.name, error = %e, "waiting for the process failed");
                (-1, None)
            }
        };
        tracing::info!(
            namespace = %self.namespace, pod = %self.name, container = %slot.view.name,
            pid = run.pid, exit_code, signal, "container exited"
        );
        let reason = RunState::terminated_reason(exit_code).to_string();
        self.finish_run(
            i,
            exit_code,
            signal,
            reason,
            None,
            Some(run.started_at),
            run.started.elapsed(),
        );
    }

    /// Records the end of a run (or a failed start) and decides whether and
    /// when the container starts again.
    #[allow(clippy::too_many_arguments)]
    fn finish_run(
        &mut self,
        i: usize,
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<Timestamp>,
        ran_for: Duration,
    ) {
        let stopping = self.stopping_since.is_some();
        let policy = self.restart_policy();
        let pod_label = format!("{}_{}({})", self.name, self.namespace, self.uid);
        let slot = &mut self.slots[i];
        let terminated = RunState::Terminated {
            exit_code,
            signal,
            reason,
            message,
            started_at,
            finished_at: Timestamp::now(),
        };
        slot.view.ready = false;
        slot.view.started = false;
        slot.trackers.clear();
        let restart = if slot.init {
            exit_code != 0 && policy.as_deref() != Some("Never")
        } else {
            process::should_restart(policy.as_deref(), exit_code)
        };
        if stopping || !restart {
            slot.view.state = terminated;
            slot.done = true;
            return;
        }
        let delay = slot.backoff.next_delay(ran_for);
        slot.not_before = Some(Instant::now() + delay);
        slot.view.last_state = Some(terminated);
        slot.view.state = RunState::waiting(
            "CrashLoopBackOff",
            Some(format!(
                "back-off {}s restarting failed container={} pod={pod_label}",
                delay.as_secs(),
                slot.view.name
            )),
        );
    }

    fn on_probe(&mut self, i: usize, seq: u64, kind: ProbeKind, result: Result<(), String>) {
        let grace = self.grace_for_probe(i, kind);
        let slot = &mut self.slots[i];
        let Some(run) = slot
            .run
            .as_mut()
            .filter(|r| r.seq == seq && r.kill_at.is_none())
        else {
            return;
        };
        let Some(tracker) = slot.trackers.get_mut(&kind) else {
            return;
        };
        let before = tracker.passing();
        let after = tracker.record(result.is_ok());
        if let Err(message) = &result {
            tracing::debug!(container = %slot.view.name, probe = kind.name(), %message, "probe failed");
        }
        if before != after {
            tracing::info!(
                namespace = %self.namespace, pod = %self.name, container = %slot.view.name,
                probe = kind.name(), passing = after, message = result.as_ref().err(),
                "probe result changed"
            );
        }
        let fail = |run: &mut Run, why: String| {
            tracing::warn!(pid = run.pid, "{why}; killing the container");
            run.stop_probes();
            process::signal_group(run.pid, libc::SIGTERM);
            run.kill_at = Some(Instant::now() + grace);
        };
        match kind {
            ProbeKind::Startup => {
                if after && !before {
                    slot.view.started = true;
                    if let Some(pos) = run
                        .probes
                        .iter()
                        .position(|(k, _)| *k == ProbeKind::Startup)
                    {
                        run.probes.remove(pos).1.abort();
                    }
                    let tasks = spawn_probes(
                        &self.ctx,
                        &self.events_tx,
                        i,
                        run,
                        &slot.spec,
                        &mut slot.trackers,
                        &[ProbeKind::Readiness, ProbeKind::Liveness],
                    );
                    run.probes.extend(tasks);
                    if slot.spec.readiness_probe.is_none() {
                        slot.view.ready = true;
                    }
                } else if slot.trackers.get(&kind).is_some_and(Tracker::failed_out) {
                    fail(
                        run,
                        format!("container {} failed its startup probe", slot.view.name),
                    );
                }
            }
            ProbeKind::Readiness => slot.view.ready = after && slot.view.started,
            ProbeKind::Liveness => {
                if !after {
                    slot.view.ready = false;
                    fail(
                        run,
                        format!("container {} failed its liveness probe", slot.view.name),
                    );
                }
            }
        }
    }

    // -------------------------------------------------------------- sync --

    async fn sync(&mut self) -> Flow {
        let now = Instant::now();
        self.enforce_kill_deadlines(now);
        let deleting = self.gone || self.shutdown || self.pod.metadata.deletion_timestamp.is_some();
        if deleting {
            return self.sync_stopping(now).await;
        }
        if self.ensure_sandbox(now).await {
            self.refresh_token(now).await;
            self.start_due(now).await;
        }
        self.publish(false).await;
        Flow::Continue
    }

    fn enforce_kill_deadlines(&mut self, now: Instant) {
        let mut forgotten = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(run) = slot.run.as_mut() else {
                continue;
            };
            if run.killed_at.is_none() && run.kill_at.is_some_and(|t| now >= t) {
                tracing::warn!(
                    namespace = %self.namespace, pod = %self.name, container = %slot.view.name,
                    pid = run.pid, "grace period over; sending SIGKILL"
                );
                process::signal_group(run.pid, libc::SIGKILL);
                run.killed_at = Some(now);
            }
            if run.killed_at.is_some_and(|t| now >= t + KILL_WAIT) {
                tracing::error!(container = %slot.view.name, pid = run.pid, "process did not die; forgetting it");
                forgotten.push((i, run.seq));
            }
        }
        for (i, seq) in forgotten {
            let err = std::io::Error::other("process did not die after SIGKILL");
            self.on_exit(i, seq, Err(err));
        }
    }

    async fn sync_stopping(&mut self, now: Instant) -> Flow {
        if self.stopping_since.is_none() {
            let grace = self.grace_period();
            tracing::info!(
                namespace = %self.namespace, pod = %self.name,
                grace_seconds = grace.as_secs(),
                reason = if self.shutdown { "kubelet shutdown" } else if self.gone { "pod removed" } else { "pod deleted" },
                "stopping pod"
            );
            self.stopping_since = Some(now);
            for slot in &mut self.slots {
                slot.done = true;
                slot.view.ready = false;
                if let Some(run) = slot.run.as_mut() {
                    run.stop_probes();
                    // Keep an earlier, sooner deadline (a liveness kill).
                    let at = now + grace;
                    run.kill_at = Some(run.kill_at.map_or(at, |t| t.min(at)));
                    if run.killed_at.is_none() {
                        process::signal_group(run.pid, libc::SIGTERM);
                    }
                }
            }
        }
        if self.slots.iter().any(|s| s.run.is_some()) {
            self.publish(false).await;
            return Flow::Continue;
        }
        if !self.gone && !self.shutdown {
            self.publish(true).await;
            self.delete_pod().await;
        }
        Flow::Done
    }

    /// Prepares the pod's IP, directory and identity. False while that is
    /// not possible yet (the reason shows in the containers' status).
    async fn ensure_sandbox(&mut self, now: Instant) -> bool {
        if self.sandbox_retry.is_some_and(|t| now < t) {
            return false;
        }
        match self.prepare_sandbox().await {
            Ok(()) => {
                self.sandbox_error = None;
                self.sandbox_retry = None;
                true
            }
            Err(message) => {
                if self.sandbox_error.as_deref() != Some(&message) {
                    tracing::warn!(namespace = %self.namespace, pod = %self.name, %message, "pod sandbox not ready");
                }
                for slot in self.slots.iter_mut().filter(|s| s.run.is_none() && !s.done) {
                    slot.view.state = RunState::waiting("ContainerCreating", Some(message.clone()));
                }
                self.sandbox_error = Some(message);
                self.sandbox_retry = Some(now + CONFIG_RETRY);
                false
            }
        }
    }

    async fn prepare_sandbox(&mut self) -> Result<(), String> {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if self.ip.is_none() && host_network {
            let ip = self.ctx.settings.node_ip.parse().map_err(|_| {
                format!(
                    "hostNetwork pod, but the node IP {:?} is not IPv4",
                    self.ctx.settings.node_ip
                )
            })?;
            self.ip = Some(ip);
        }
        if self.ip.is_none() {
            let mut ips = self.ctx.ips.lock().unwrap_or_else(|e| e.into_inner());
            let previous = self
                .pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok());
            let ip = match previous {
                Some(ip) if ips.claim(&self.uid, ip) => Some(ip),
                _ => ips.allocate(&self.uid),
            };
            self.ip = Some(ip.ok_or("no free pod IP left in --pod-cidr")?);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        if self.token.is_none() && self.wants_identity() {
            let paths = identity::Paths::under(&self.dir);
            let sa = self.service_account();
            identity::write_static_files(
                &paths,
                &self.ctx.api_url,
                &self.ctx.ca_pem,
                &self.namespace,
                &sa,
            )
            .map_err(|e| e.to_string())?;
            let token = identity::request_token(
                &self.ctx.client,
                &self.namespace,
                &sa,
                &self.name,
                &self.uid,
            )
            .await
            .map_err(|e| format!("failed to get a token for service account {sa:?}: {e}"))?;
            identity::write_atomic(&paths.token, token.token.as_bytes())
                .map_err(|e| e.to_string())?;
            self.token = Some(token);
        }
        Ok(())
    }

    async fn refresh_token(&mut self, now: Instant) {
        let Some(token) = &self.token else {
            return;
        };
        if Timestamp::now() < token.refresh_at() || self.token_retry.is_some_and(|t| now < t) {
            return;
        }
        let sa = self.service_account();
        match identity::request_token(
            &self.ctx.client,
            &self.namespace,
            &sa,
            &self.name,
            &self.uid,
        )
        .await
        {
            Ok(token) => {
                let paths = identity::Paths::under(&self.dir);
                match identity::write_atomic(&paths.token, token.token.as_bytes()) {
                    Ok(()) => {
                        tracing::info!(namespace = %self.namespace, pod = %self.name, "refreshed service account token");
                        self.token = Some(token);
                        self.token_retry = None;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "writing the refreshed token failed");
                        self.token_retry = Some(now + Duration::from_secs(10));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the service account token failed");
                self.token_retry = Some(now + Duration::from_secs(10));
            }
        }
    }

    async fn start_due(&mut self, now: Instant) {
        // Init containers run one at a time, in order, each to success.
        if let Some(i) = (0..self.n_init).find(|&i| !self.slots[i].succeeded()) {
            if self.slots[i].due(now) {
                self.start(i, now).await;
            } else {
                self.show_image_backoff(i, now);
            }
            return;
        }
        for i in self.n_init..self.slots.len() {
            if self.slots[i].due(now) {
                self.start(i, now).await;
            } else {
                self.show_image_backoff(i, now);
            }
        }
    }

    fn show_image_backoff(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if let RunState::Waiting { reason, message } = &slot.view.state {
            if reason == "ErrImagePull" && slot.not_before.is_some_and(|t| now < t) {
                let message = message.clone().unwrap_or_default();
                slot.view.state = RunState::waiting(
                    "ImagePullBackOff",
                    Some(format!(
                        "Back-off pulling image {:?}: {message}",
                        slot.view.image
                    )),
                );
            }
        }
    }

    /// Starts one run of container `i`.
    async fn start(&mut self, i: usize, now: Instant) {
        let spec = self.slots[i].spec.clone();
        let image = spec.image.clone().unwrap_or_default();

        // 1. Image → program.
        let program = match self
            .ctx
            .settings
            .images
            .resolve(&image, process::is_executable)
        {
            Ok(p) => p,
            Err(message) => {
                let slot = &mut self.slots[i];
                let delay = slot.image_backoff.next_delay(Duration::ZERO);
                slot.not_before = Some(now + delay);
                if !matches!(&slot.view.state, RunState::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff")
                {
                    tracing::warn!(namespace = %self.namespace, pod = %self.name, container = %spec.name, %message, "image has no program");
                }
                slot.view.state = RunState::waiting("ErrImagePull", Some(message));
                return;
            }
        };
        {
            let slot = &mut self.slots[i];
            slot.image_backoff = Backoff::new(INITIAL_BACKOFF, self.ctx.settings.max_backoff);
            slot.view.image_id = format!("millpond-process://{}", program.display());
        }

        // 2. Environment.
        let env = match self.container_env(&spec).await {
            Ok(env) => env,
            Err(message) => {
                let slot = &mut self.slots[i];
                if !matches!(&slot.view.state, RunState::Waiting { message: Some(m), .. } if *m == message)
                {
                    tracing::warn!(namespace = %self.namespace, pod = %self.name, container = %spec.name, %message, "container configuration error");
                }
                slot.not_before = Some(now + CONFIG_RETRY);
                slot.view.state = RunState::waiting("CreateContainerConfigError", Some(message));
                return;
            }
        };

        // 3. Command line, with $(VAR) expanded.
        let command = env::expand_args(spec.command.as_deref().unwrap_or_default(), &env);
        let args = env::expand_args(spec.args.as_deref().unwrap_or_default(), &env);
        let path = env.get("PATH").cloned().unwrap_or_default();
        let cwd = spec
            .working_dir
            .as_deref()
            .map(PathBuf::from)
            .filter(|d| d.is_absolute() && d.is_dir())
            .unwrap_or_else(|| self.dir.clone());

        {
            let slot = &mut self.slots[i];
            if slot.has_run {
                slot.view.restart_count += 1;
            }
            slot.has_run = true;
            slot.seq += 1;
        }
        let (program_path, argv) = match process::command_line(&program, &command, &args, |n| {
            process::search_path(n, &path)
        }) {
            Ok(x) => x,
            Err(message) => {
                self.start_failed(i, message);
                return;
            }
        };
        let launch = Launch {
            program: program_path,
            args: argv,
            env: env.clone(),
            cwd: cwd.clone(),
            log: self.slots[i].log.clone(),
        };
        let child = match process::spawn(&launch) {
            Ok(c) => c,
            Err(e) => {
                self.start_failed(i, e.to_string());
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let seq = self.slots[i].seq;
        let tx = self.events_tx.clone();
        tokio::spawn(async move {
            let mut child = child;
            let result = child.wait().await;
            let _ = tx.send(Event::Exited {
                slot: i,
                seq,
                result,
            });
        });

        let ip = self.ip.unwrap_or(Ipv4Addr::LOCALHOST);
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone()?, p.container_port)))
            .collect();
        let slot = &mut self.slots[i];
        if let Err(e) = process::write_pidfile(&slot.pidfile, pid, &launch.program) {
            tracing::warn!(error = %e, "writing the pid file failed");
        }
        tracing::info!(
            namespace = %self.namespace, pod = %self.name, container = %spec.name,
            pid, program = %launch.program.display(), ip = %ip,
            restart_count = slot.view.restart_count, "container started"
        );
        let started_at = Timestamp::now();
        let mut run = Run {
            seq,
            pid,
            started: Instant::now(),
            started_at,
            target: Target {
                pod_ip: IpAddr::V4(ip),
                ports,
                image_program: program,
                env,
                cwd,
            },
            probes: Vec::new(),
            kill_at: None,
            killed_at: None,
        };
        slot.trackers.clear();
        let first: &[ProbeKind] = if spec.startup_probe.is_some() {
            &[ProbeKind::Startup]
        } else {
            &[ProbeKind::Readiness, ProbeKind::Liveness]
        };
        run.probes = spawn_probes(
            &self.ctx,
            &self.events_tx,
            i,
            &run,
            &spec,
            &mut slot.trackers,
            first,
        );
        slot.view.started = spec.startup_probe.is_none();
        slot.view.ready = slot.view.started && spec.readiness_probe.is_none();
        slot.view.state = RunState::Running { started_at };
        slot.view.container_id = Some(format!("millpond://{pid}"));
        slot.not_before = None;
        slot.run = Some(run);
    }

    fn start_failed(&mut self, i: usize, message: String) {
        tracing::warn!(
            namespace = %self.namespace, pod = %self.name, container = %self.slots[i].view.name,
            %message, "container failed to start"
        );
        self.finish_run(
            i,
            128,
            None,
            "StartError".into(),
            Some(message),
            None,
            Duration::ZERO,
        );
    }

    /// Fetches what the container's env refers to and resolves it.
    async fn container_env(&self, spec: &Container) -> Result<BTreeMap<String, String>, String> {
        let (config_maps, secrets) = env::references(spec);
        let sources = self.fetch_sources(config_maps, secrets).await?;
        let facts = PodFacts {
            pod_ip: self.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: self.ctx.settings.node_ip.clone(),
            node_name: self.ctx.settings.node_name.clone(),
            allocatable_cpu: f64::from(self.ctx.machine.cpus),
            allocatable_memory: self.ctx.machine.memory_bytes as f64,
            allocatable_ephemeral_storage: self.ctx.machine.ephemeral_storage_bytes as f64,
        };
        env::resolve(&self.pod, spec, &facts, &sources, &self.base_env())
    }

    async fn fetch_sources(
        &self,
        config_maps: BTreeSet<String>,
        secrets: BTreeSet<String>,
    ) -> Result<Sources, String> {
        let mut sources = Sources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for name in config_maps {
            let cm = cm_api
                .get_opt(&name)
                .await
                .map_err(|e| format!("failed to get configmap {name:?}: {e}"))?;
            sources.config_maps.insert(name, cm);
        }
        let secret_api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for name in secrets {
            let s = secret_api
                .get_opt(&name)
                .await
                .map_err(|e| format!("failed to get secret {name:?}: {e}"))?;
            sources.secrets.insert(name, s);
        }
        Ok(sources)
    }

    /// Variables every container of the pod gets before its own.
    fn base_env(&self) -> BTreeMap<String, String> {
        let spec = self.pod.spec.as_ref();
        let hostname = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.name.clone());
        let (host, port) = (&self.ctx.api_host, self.ctx.api_port);
        let mut env = BTreeMap::from([
            ("PATH".to_string(), self.ctx.path_env.clone()),
            ("HOSTNAME".to_string(), hostname),
            ("HOME".to_string(), self.dir.display().to_string()),
            ("KUBERNETES_SERVICE_HOST".to_string(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".to_string(), port.to_string()),
            (
                "KUBERNETES_SERVICE_PORT_HTTPS".to_string(),
                port.to_string(),
            ),
            (
                "KUBERNETES_PORT".to_string(),
                format!("tcp://{host}:{port}"),
            ),
        ]);
        if self.token.is_some() {
            let paths = identity::Paths::under(&self.dir);
            env.insert("KUBECONFIG".into(), paths.kubeconfig.display().to_string());
        }
        env
    }

    // ----------------------------------------------------------- helpers --

    fn restart_policy(&self) -> Option<String> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
    }

    fn service_account(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into())
    }

    /// Whether the pod gets a service-account token: the ServiceAccount
    /// admission plugin adds a projected token volume exactly when
    /// `automountServiceAccountToken` (of the pod or its service account)
    /// allows it, so its presence decides.
    fn wants_identity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|v| v.projected.as_ref())
            .flat_map(|p| p.sources.iter().flatten())
            .any(|s| s.service_account_token.is_some())
    }

    /// Grace period between SIGTERM and SIGKILL when the pod stops.
    fn grace_period(&self) -> Duration {
        let from_delete = self.pod.metadata.deletion_grace_period_seconds;
        let from_spec = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds);
        let grace = from_delete
            .or(from_spec)
            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64));
        if self.shutdown {
            grace.min(self.ctx.settings.shutdown_grace)
        } else {
            grace
        }
    }

    fn grace_for_probe(&self, i: usize, kind: ProbeKind) -> Duration {
        kind.of(&self.slots[i].spec)
            .and_then(|p| p.termination_grace_period_seconds)
            .map_or_else(
                || {
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64))
                },
                |s| Duration::from_secs(s.max(0) as u64),
            )
    }

    fn view(&self, terminal: bool) -> PodView {
        let views = |init: bool| {
            self.slots
                .iter()
                .filter(|s| s.init == init)
                .map(|s| s.view.clone())
                .collect()
        };
        PodView {
            init_containers: views(true),
            containers: views(false),
            pod_ip: self.ip,
            host_ip: self.ctx.settings.node_ip.clone(),
            start_time: self.start_time,
            sandbox_ready: self.ip.is_some() && self.sandbox_error.is_none(),
            terminal,
        }
    }

    /// Patches the pod status if it changed since the last patch.
    async fn publish(&mut self, terminal: bool) {
        if self.gone || self.shutdown {
            return;
        }
        // Transition times come from what this worker wrote last (the watched
        // pod may lag behind); foreign conditions from the pod.
        let mut base = (*self.pod).clone();
        if let Some(last) = &self.last_status {
            let mut status = base.status.take().unwrap_or_default();
            let mut conditions: Vec<_> = status
                .conditions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !status::OWNED_CONDITIONS.contains(&c.type_.as_str()))
                .collect();
            conditions.extend(
                last.conditions
                    .iter()
                    .flatten()
                    .filter(|c| status::OWNED_CONDITIONS.contains(&c.type_.as_str()))
                    .cloned(),
            );
            status.conditions = Some(conditions);
            base.status = Some(status);
        }
        let new = status::build(&base, &self.view(terminal), Timestamp::now());
        if self.last_status.as_ref() == Some(&new) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": new });
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                if self.last_status.as_ref().and_then(|s| s.phase.as_ref()) != new.phase.as_ref() {
                    tracing::info!(namespace = %self.namespace, pod = %self.name, phase = new.phase.as_deref().unwrap_or(""), ip = ?self.ip, "pod phase");
                }
                self.last_status = Some(new);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(namespace = %self.namespace, pod = %self.name, error = %e, "updating the pod status failed")
            }
        }
    }

    /// Removes the pod object for good once its processes are gone.
    async fn delete_pod(&self) {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&self.name, &params).await {
            Ok(_) => {
                tracing::info!(namespace = %self.namespace, pod = %self.name, "pod stopped and deleted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(namespace = %self.namespace, pod = %self.name, error = %e, "deleting the pod failed")
            }
        }
    }

    fn cleanup(&mut self) {
        for slot in &mut self.slots {
            if let Some(run) = slot.run.as_mut() {
                run.stop_probes();
            }
        }
        self.ctx
            .ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(&self.uid);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "removing the pod directory failed");
            }
        }
    }
}

/// Starts the probe tasks of `kinds` that the container has, with fresh
/// trackers; each task reports every result as an event.
fn spawn_probes(
    ctx: &Arc<Context>,
    events: &mpsc::UnboundedSender<Event>,
    slot: usize,
    run: &Run,
    spec: &Container,
    trackers: &mut BTreeMap<ProbeKind, Tracker>,
    kinds: &[ProbeKind],
) -> Vec<(ProbeKind, JoinHandle<()>)> {
    let mut tasks = Vec::new();
    for &kind in kinds {
        let Some(probe) = kind.of(spec).cloned() else {
            continue;
        };
        let timing = Timing::of(&probe);
        trackers.insert(kind, Tracker::new(&timing, kind == ProbeKind::Liveness));
        let delay = timing.initial_delay.saturating_sub(run.started.elapsed());
        let (tx, http, target, seq) = (
            events.clone(),
            ctx.http.clone(),
            run.target.clone(),
            run.seq,
        );
        tasks.push((
            kind,
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                loop {
                    let result = probes::run_once(&probe, &target, &http).await;
                    if tx
                        .send(Event::Probe {
                            slot,
                            seq,
                            kind,
                            result,
                        })
                        .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(timing.period).await;
                }
            }),
        ));
    }
    tasks
}
