//! The pod manager: watches the pods bound to this node and runs one
//! [`Worker`](crate::pod::Worker) per pod.
//!
//! It also stops processes left behind by an earlier run of the kubelet
//! (found through the pid files in the pod directories): pods that are
//! still bound to the node are started again by their new workers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::pod::{Update, Worker};
use crate::process;

struct Handle {
    updates: watch::Sender<Update>,
    join: JoinHandle<()>,
}

/// Kills the process groups recorded in pid files under `pods_dir` that
/// still run the recorded program, and removes the pod directories.
pub fn stop_stale_processes(pods_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let pidfiles = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for file in pidfiles
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pid"))
        {
            if let Some((pid, program)) = process::read_pidfile(&file) {
                if process::pid_runs(pid, &program) {
                    tracing::warn!(pid, program = %program.display(), "stopping a process left by an earlier kubelet run");
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing a stale pod directory failed");
        }
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs until `shutdown` turns true, then waits (bounded) for the workers
/// to stop their processes.
pub async fn run(ctx: Arc<Context>, shutdown: watch::Receiver<bool>) {
    stop_stale_processes(&ctx.settings.state.pods);
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.settings.node_name);
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, Handle> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut relisted: Option<HashSet<String>> = None;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut stop = shutdown.clone();

    let apply = |pod: Pod, workers: &mut HashMap<String, Handle>, finished: &HashSet<String>| {
        let uid = pod.uid().unwrap_or_default();
        let pod = Arc::new(pod);
        if let Some(h) = workers.get(&uid) {
            let _ = h.updates.send(Update::Present(pod));
            return;
        }
        if finished.contains(&uid) {
            return;
        }
        if is_terminal(&pod) {
            // A finished pod (from before this kubelet started): nothing
            // runs; complete its deletion if one was asked for.
            if pod.metadata.deletion_timestamp.is_some() {
                let client = ctx.client.clone();
                tokio::spawn(async move {
                    let api: Api<Pod> =
                        Api::namespaced(client, &pod.namespace().unwrap_or_default());
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        ..DeleteParams::default()
                    };
                    let _ = api.delete(&pod.name_any(), &dp).await;
                });
            }
            return;
        }
        tracing::info!(
            namespace = pod.namespace().unwrap_or_default(),
            pod = pod.name_any(),
            "starting pod worker"
        );
        let (tx, rx) = watch::channel(Update::Present(pod.clone()));
        let worker = Worker::new(ctx.clone(), pod);
        let join = tokio::spawn(worker.run(rx, shutdown.clone(), done_tx.clone()));
        workers.insert(uid, Handle { updates: tx, join });
    };

    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(watcher::Event::Init)) => relisted = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitApply(pod))) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(pod.uid().unwrap_or_default());
                    }
                    apply(pod, &mut workers, &finished);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    // Pods that vanished while the watch was down.
                    if let Some(seen) = relisted.take() {
                        for (uid, h) in &workers {
                            if !seen.contains(uid) {
                                let _ = h.updates.send(Update::Gone);
                            }
                        }
                    }
                }
                Some(Ok(watcher::Event::Apply(pod))) => apply(pod, &mut workers, &finished),
                Some(Ok(watcher::Event::Delete(pod))) => {
                    let uid = pod.uid().unwrap_or_default();
                    if let Some(h) = workers.get(&uid) {
                        let _ = h.updates.send(Update::Gone);
                    }
                    finished.remove(&uid);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "watching this node's pods failed; retrying"),
                None => break,
            },
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            _ = stop.changed() => break,
        }
    }

    let limit = ctx.settings.shutdown_grace + Duration::from_secs(15);
    tracing::info!(pods = workers.len(), "stopping all pods");
    let joins = workers.into_values().map(|h| h.join);
    if tokio::time::timeout(limit, futures::future::join_all(joins))
        .await
        .is_err()
    {
        tracing::warn!("some pods did not stop in time");
    }
}
