//! Pod status, built by pure functions from what the kubelet knows about the
//! pod's containers.
//!
//! The phase follows the kubelet's own `getPhase`; conditions are
//! `PodScheduled`, `PodReadyToStartContainers`, `Initialized`,
//! `ContainersReady` and `Ready` (which also waits for the pod's
//! `readinessGates`). Conditions of other types (set by other actors) are
//! kept, and a condition's `lastTransitionTime` only moves when its status
//! changes.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The state of one container, as the kubelet tracks it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Not running: being created, backing off, or failing to start.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// The process runs.
    Running { started_at: Timestamp },
    /// The process ended.
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

impl RunState {
    /// The state of a container not started yet.
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        RunState::Waiting {
            reason: reason.to_string(),
            message,
        }
    }

    /// True for `Running`.
    pub fn is_running(&self) -> bool {
        matches!(self, RunState::Running { .. })
    }

    /// The kubelet's reason for a finished process: `Completed` for exit 0,
    /// `Error` otherwise (`OOMKilled` never happens here).
    pub fn terminated_reason(exit_code: i32) -> &'static str {
        if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// What the status needs to know about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    /// `millpond-process://<program path>` once the image is resolved.
    pub image_id: String,
    /// Identifies one run of the container (changes with every restart).
    pub container_id: Option<String>,
    pub state: RunState,
    /// The previous run, always `Terminated` when set.
    pub last_state: Option<RunState>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: i32,
}

/// Everything the pod status is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    pub init_containers: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: String,
    pub start_time: Timestamp,
    /// The pod's sandbox is set up (IP, identity): `PodReadyToStartContainers`.
    pub sandbox_ready: bool,
    /// The pod is being torn down and all its containers stopped, so none of
    /// them restarts: the phase becomes terminal whatever the restart policy.
    pub terminal: bool,
}

/// Converts one container's view into its Kubernetes status.
pub fn container_status(view: &ContainerView) -> ContainerStatus {
    ContainerStatus {
        name: view.name.clone(),
        image: view.image.clone(),
        image_id: view.image_id.clone(),
        container_id: view.container_id.clone(),
        ready: view.ready,
        started: Some(view.started),
        restart_count: view.restart_count,
        state: Some(container_state(&view.state)),
        last_state: Some(
            view.last_state
                .as_ref()
                .map(container_state)
                .unwrap_or_default(),
        ),
        ..ContainerStatus::default()
    }
}

fn container_state(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..ContainerState::default()
        },
        RunState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        },
        RunState::Terminated {
            exit_code,
            signal,
            reason,
            message,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                message: message.clone(),
                started_at: started_at.map(Time),
                finished_at: Some(Time(*finished_at)),
                container_id: None,
            }),
            ..ContainerState::default()
        },
    }
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn state_of(s: &ContainerStatus) -> (&ContainerState, Option<&ContainerStateTerminated>) {
    static EMPTY: ContainerState = ContainerState {
        running: None,
        terminated: None,
        waiting: None,
    };
    (
        s.state.as_ref().unwrap_or(&EMPTY),
        s.last_state.as_ref().and_then(|l| l.terminated.as_ref()),
    )
}

/// The pod phase, as the kubelet's `getPhase` computes it (restartable
/// "sidecar" init containers are not supported and count as regular ones).
pub fn phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let spec = pod.spec.as_ref();
    let restart_policy = spec
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(s) = find(init_statuses, &c.name) else {
            pending_init += 1;
            continue;
        };
        let (state, last) = state_of(s);
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let (state, last) = state_of(s);
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last.is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    let any_regular_started = statuses.iter().any(|s| {
        let (state, last) = state_of(s);
        state.running.is_some() || state.terminated.is_some() || last.is_some()
    });
    if (pending_init > 0 && !any_regular_started) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return if terminal { "Failed" } else { "Running" };
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(
    existing: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = existing
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(since.unwrap_or(Time(now))),
        ..PodCondition::default()
    }
}

/// Condition types this kubelet owns; all others in the pod are kept.
pub const OWNED_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// Builds the pod's status from the view; `now` is the time of any
/// condition transition.
pub fn build(pod: &Pod, view: &PodView, now: Timestamp) -> PodStatus {
    let existing = pod.status.as_ref();
    let init_statuses: Vec<ContainerStatus> =
        view.init_containers.iter().map(container_status).collect();
    let statuses: Vec<ContainerStatus> = view.containers.iter().map(container_status).collect();
    let phase = phase(pod, &init_statuses, &statuses, view.terminal);
    let terminal_phase = phase == "Succeeded" || phase == "Failed";

    let incomplete: Vec<&str> = view
        .init_containers
        .iter()
        .filter(|c| !matches!(c.state, RunState::Terminated { exit_code: 0, .. }))
        .map(|c| c.name.as_str())
        .collect();
    let initialized = incomplete.is_empty();
    let unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = unready.is_empty() && !terminal_phase;
    let gates_open: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .filter(|g| {
            !existing
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
        .map(|g| g.condition_type.clone())
        .collect();

    let (ready_reason, ready_message) = if terminal_phase {
        (Some("PodCompleted"), None)
    } else if !unready.is_empty() {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    } else if !gates_open.is_empty() {
        (
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate {:?} does not exist or is not True",
                gates_open[0]
            )),
        )
    } else {
        (None, None)
    };
    let mut conditions = vec![
        condition(existing, "PodScheduled", true, None, None, now),
        condition(
            existing,
            "PodReadyToStartContainers",
            view.sandbox_ready && !terminal_phase,
            None,
            None,
            now,
        ),
        condition(
            existing,
            "Initialized",
            initialized || terminal_phase,
            (!initialized && !terminal_phase).then_some("ContainersNotInitialized"),
            (!initialized && !terminal_phase).then(|| {
                format!(
                    "containers with incomplete status: [{}]",
                    incomplete.join(" ")
                )
            }),
            now,
        ),
        condition(
            existing,
            "ContainersReady",
            containers_ready,
            if terminal_phase {
                Some("PodCompleted")
            } else {
                (!unready.is_empty()).then_some("ContainersNotReady")
            },
            (!containers_ready && !terminal_phase)
                .then(|| ready_message.clone())
                .flatten(),
            now,
        ),
        condition(
            existing,
            "Ready",
            containers_ready && gates_open.is_empty(),
            ready_reason,
            ready_message,
            now,
        ),
    ];
    for c in existing
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if !OWNED_CONDITIONS.contains(&c.type_.as_str()) {
            conditions.push(c.clone());
        }
    }

    let pod_ip = view.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.clone(),
        }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(Time(view.start_time)),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        qos_class: existing.and_then(|s| s.qos_class.clone()),
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn view(name: &str, state: RunState, ready: bool) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "millpond/testapp".into(),
            image_id: "millpond-process:///bin/x".into(),
            container_id: None,
            started: state.is_running(),
            state,
            last_state: None,
            ready,
            restart_count: 0,
        }
    }

    fn pod_view(containers: Vec<ContainerView>) -> PodView {
        PodView {
            init_containers: vec![],
            containers,
            pod_ip: Some(Ipv4Addr::new(127, 1, 0, 3)),
            host_ip: "127.0.0.1".into(),
            start_time: ts(0),
            sandbox_ready: true,
            terminal: false,
        }
    }

    fn running() -> RunState {
        RunState::Running { started_at: ts(1) }
    }

    fn exited(code: i32) -> RunState {
        RunState::Terminated {
            exit_code: code,
            signal: None,
            reason: RunState::terminated_reason(code).into(),
            message: None,
            started_at: Some(ts(1)),
            finished_at: ts(2),
        }
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
    }

    const TWO: &str = "metadata: {name: p}\nspec: {containers: [{name: a}, {name: b}]}";

    #[test]
    fn running_and_ready_pod_reports_ip_and_ready_conditions() {
        let p = pod(TWO);
        let s = build(
            &p,
            &pod_view(vec![view("a", running(), true), view("b", running(), true)]),
            ts(5),
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("127.1.0.3"));
        assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "127.1.0.3");
        assert_eq!(s.host_ip.as_deref(), Some("127.0.0.1"));
        for t in OWNED_CONDITIONS {
            let c = cond(&s, t);
            assert_eq!(c.status, "True", "{t}");
        }
    }

    #[test]
    fn unready_container_is_named_in_the_ready_condition() {
        let p = pod(TWO);
        let s = build(
            &p,
            &pod_view(vec![
                view("a", running(), true),
                view("b", running(), false),
            ]),
            ts(5),
        );
        let ready = cond(&s, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_container_waiting_for_the_first_time_keeps_the_pod_pending() {
        let p = pod(TWO);
        let s = build(
            &p,
            &pod_view(vec![
                view("a", running(), true),
                view(
                    "b",
                    RunState::waiting("ErrImagePull", Some("no mapping".into())),
                    false,
                ),
            ]),
            ts(5),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let b = &s.container_statuses.unwrap()[1];
        let w = b.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ErrImagePull"));
    }

    #[test]
    fn crash_looping_container_keeps_the_pod_running_under_always() {
        let p = pod("metadata: {name: p}\nspec: {containers: [{name: a}]}");
        let mut a = view("a", RunState::waiting("CrashLoopBackOff", None), false);
        a.last_state = Some(exited(1));
        a.restart_count = 3;
        let s = build(&p, &pod_view(vec![a]), ts(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let cs = &s.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn phases_follow_the_restart_policy_when_all_containers_exited() {
        let never = pod(
            "metadata: {name: p}\nspec: {restartPolicy: Never, containers: [{name: a}, {name: b}]}",
        );
        let ok = pod_view(vec![
            view("a", exited(0), false),
            view("b", exited(0), false),
        ]);
        assert_eq!(
            build(&never, &ok, ts(5)).phase.as_deref(),
            Some("Succeeded")
        );
        let bad = pod_view(vec![
            view("a", exited(0), false),
            view("b", exited(2), false),
        ]);
        assert_eq!(build(&never, &bad, ts(5)).phase.as_deref(), Some("Failed"));
        let on_failure = pod("metadata: {name: p}\nspec: {restartPolicy: OnFailure, containers: [{name: a}, {name: b}]}");
        assert_eq!(
            build(&on_failure, &bad, ts(5)).phase.as_deref(),
            Some("Running")
        );
        assert_eq!(
            build(&on_failure, &ok, ts(5)).phase.as_deref(),
            Some("Succeeded")
        );
        let always = pod(TWO);
        assert_eq!(build(&always, &ok, ts(5)).phase.as_deref(), Some("Running"));
        let mut terminal = bad.clone();
        terminal.terminal = true;
        assert_eq!(
            build(&always, &terminal, ts(5)).phase.as_deref(),
            Some("Failed")
        );
        let s = build(&never, &ok, ts(5));
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn init_containers_gate_initialized_and_fail_the_pod_under_never() {
        let p = pod("metadata: {name: p}\nspec: {restartPolicy: Never, initContainers: [{name: i}], containers: [{name: a}]}");
        let mut v = pod_view(vec![view(
            "a",
            RunState::waiting("PodInitializing", None),
            false,
        )]);
        v.init_containers = vec![view("i", running(), false)];
        let s = build(&p, &v, ts(5));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let init = cond(&s, "Initialized");
        assert_eq!(init.status, "False");
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [i]")
        );
        v.init_containers = vec![view("i", exited(0), false)];
        v.containers = vec![view("a", running(), true)];
        let s = build(&p, &v, ts(5));
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        v.init_containers = vec![view("i", exited(1), false)];
        v.containers = vec![view("a", RunState::waiting("PodInitializing", None), false)];
        assert_eq!(build(&p, &v, ts(5)).phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn transition_times_move_only_when_the_status_changes() {
        let mut p = pod(TWO);
        let v = pod_view(vec![
            view("a", running(), true),
            view("b", running(), false),
        ]);
        p.status = Some(build(&p, &v, ts(10)));
        let again = build(&p, &v, ts(20));
        assert_eq!(
            cond(&again, "Ready").last_transition_time,
            Some(Time(ts(10)))
        );
        let ready = pod_view(vec![view("a", running(), true), view("b", running(), true)]);
        let flipped = build(&p, &ready, ts(30));
        assert_eq!(
            cond(&flipped, "Ready").last_transition_time,
            Some(Time(ts(30)))
        );
        assert_eq!(
            cond(&flipped, "PodScheduled").last_transition_time,
            Some(Time(ts(10)))
        );
    }

    #[test]
    fn readiness_gates_and_foreign_conditions_are_respected() {
        let mut p = pod("metadata: {name: p}\nspec: {readinessGates: [{conditionType: example.com/lb}], containers: [{name: a}]}");
        let v = pod_view(vec![view("a", running(), true)]);
        let s = build(&p, &v, ts(1));
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        let mut status = s.clone();
        status.conditions.as_mut().unwrap().push(PodCondition {
            type_: "example.com/lb".into(),
            status: "True".into(),
            ..PodCondition::default()
        });
        p.status = Some(status);
        let s = build(&p, &v, ts(2));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "example.com/lb").status, "True", "kept");
    }
}
