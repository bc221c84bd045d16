//! The stack under measure: the operator pods, their metrics and memory,
//! sampled until a time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use millpond_crds::MillpondConsumer;
use millpond_testkit::prom::{self, Sample};

use crate::snapshot::{container_memory, cpu_by_process, Memory, OperatorPod, Snapshot};
use crate::{Args, RESOURCES};

/// The operator's pods, their metrics and memory.
pub struct Bench {
    pub client: kube::Client,
    pub http: reqwest::Client,
    pub pods: Api<Pod>,
    pub selector: String,
    pub lease: String,
    pub leases: Api<Lease>,
    pub port: u16,
    pub sample_every: Duration,
    pub memory: Mutex<BTreeMap<String, Memory>>,
    /// Every pod that held the lease at a snapshot, in order.
    pub leaders: Mutex<Vec<String>>,
    /// Other operators (their pods) and consumers outside the benchmark's
    /// namespace seen at a snapshot: another operator on the stack would
    /// reconcile these consumers too, and this one theirs.
    pub others: Mutex<std::collections::BTreeSet<String>>,
    pub all_pods: Api<Pod>,
    pub all_consumers: Api<MillpondConsumer>,
    pub namespace: String,
    pub operator_namespace: String,
}

impl Bench {
    pub async fn new(client: kube::Client, args: &Args) -> Result<Self> {
        // The chart's full name, as its helpers compute it.
        let fullname = if args.release.contains("millpond-operator") {
            args.release.clone()
        } else {
            format!("{}-millpond-operator", args.release)
        };
        let bench = Bench {
            pods: Api::namespaced(client.clone(), &args.operator_namespace),
            leases: Api::namespaced(client.clone(), &args.operator_namespace),
            selector: format!(
                "app.kubernetes.io/instance={},app.kubernetes.io/component=operator",
                args.release
            ),
            lease: fullname,
            client: client.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            port: args.metrics_port,
            sample_every: Duration::from_secs(args.sample_seconds.max(1)),
            memory: Mutex::default(),
            leaders: Mutex::default(),
            others: Mutex::default(),
            all_pods: Api::all(client.clone()),
            all_consumers: Api::all(client.clone()),
            namespace: args.namespace.clone(),
            operator_namespace: args.operator_namespace.clone(),
        };
        let pods = bench.operator_pods().await?;
        anyhow::ensure!(
            !pods.is_empty(),
            "no operator pod matches {} in namespace {}",
            bench.selector,
            args.operator_namespace
        );
        Ok(bench)
    }

    pub async fn operator_pods(&self) -> Result<Vec<OperatorPod>> {
        let list = self
            .pods
            .list(&ListParams::default().labels(&self.selector))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|p| {
                let status = p.status?;
                let container = status.container_statuses?.into_iter().next()?;
                let last_end = container.last_state.and_then(|s| s.terminated).map(|t| {
                    format!(
                        "{} (exit {}) at {}",
                        t.reason.unwrap_or_default(),
                        t.exit_code,
                        t.finished_at.map(|f| f.0.to_string()).unwrap_or_default()
                    )
                });
                Some(OperatorPod {
                    name: p.metadata.name?,
                    ip: status.pod_ip?,
                    container_id: container.container_id.unwrap_or_default(),
                    restarts: container.restart_count,
                    image_id: container.image_id.clone(),
                    last_end,
                })
            })
            .collect())
    }

    pub async fn scrape(&self, pod: &OperatorPod) -> Result<Vec<Sample>> {
        let text = self
            .http
            .get(format!("http://{}:{}/metrics", pod.ip, self.port))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(prom::parse(&text))
    }

    /// The API server's request counts and the leader's metrics.
    /// [`Self::snapshot`], tried three times.
    pub async fn snapshot_retrying(&self) -> Result<Snapshot> {
        let mut failure = None;
        for _ in 0..3 {
            match self.snapshot().await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    eprintln!("snapshot failed, trying again: {e:#}");
                    failure = Some(e);
                }
            }
        }
        Err(failure.expect("three tries"))
    }

    /// The size of the JSON list of each kind the operator watches, in the
    /// consumers' namespace.
    pub async fn list_bytes(&self) -> Vec<(&'static str, usize)> {
        let ns = &self.namespace;
        let mut out = Vec::new();
        for (kind, path) in [
            (
                "MillpondConsumers",
                format!("/apis/millpond.io/v1alpha1/namespaces/{ns}/millpondconsumers"),
            ),
            (
                "Deployments",
                format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            ),
            ("ConfigMaps", format!("/api/v1/namespaces/{ns}/configmaps")),
            ("Services", format!("/api/v1/namespaces/{ns}/services")),
            (
                "PodDisruptionBudgets",
                format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"),
            ),
            ("Secrets", format!("/api/v1/namespaces/{ns}/secrets")),
        ] {
            let Ok(request) = http::Request::get(path).body(Vec::new()) else {
                continue;
            };
            if let Ok(text) = self.client.request_text(request).await {
                out.push((kind, text.len()));
            }
        }
        out
    }

    /// ReplicaSets and Deployments in the consumers' namespace.
    pub async fn replica_sets(&self) -> Result<(usize, usize)> {
        let rs: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default();
        Ok((
            rs.list_metadata(&lp).await?.items.len(),
            deployments.list_metadata(&lp).await?.items.len(),
        ))
    }

    pub async fn snapshot(&self) -> Result<Snapshot> {
        tokio::time::timeout(Duration::from_secs(30), self.snapshot_now())
            .await
            .context("a snapshot took over 30 s")?
    }

    pub async fn snapshot_now(&self) -> Result<Snapshot> {
        let started = Instant::now();
        let text = self
            .client
            .request_text(http::Request::get("/metrics").body(Vec::new())?)
            .await
            .context("reading the API server's /metrics")?;
        let mut api = BTreeMap::new();
        let mut api_failed = 0.0;
        let mut api_failures = BTreeMap::new();
        for s in prom::parse(&text)
            .into_iter()
            .filter(|s| s.name == "apiserver_request_total")
            .filter(|s| RESOURCES.contains(&s.label("resource")))
        {
            let resource = match s.label("subresource") {
                "" => s.label("resource").to_string(),
                sub => format!("{}/{sub}", s.label("resource")),
            };
            if !s.label("code").starts_with('2') {
                api_failed += s.value;
                *api_failures
                    .entry((
                        resource.clone(),
                        s.label("verb").to_string(),
                        s.label("code").to_string(),
                    ))
                    .or_insert(0.0) += s.value;
            }
            *api.entry((resource, s.label("verb").to_string()))
                .or_insert(0.0) += s.value;
        }
        let holder = self
            .leases
            .get_opt(&self.lease)
            .await?
            .and_then(|l| l.spec?.holder_identity);
        let pods = self.operator_pods().await?;
        let scraped = futures::future::join_all(pods.iter().map(|p| self.scrape(p))).await;
        let pods_metrics: BTreeMap<String, Vec<Sample>> = pods
            .iter()
            .zip(scraped)
            .filter_map(|(p, m)| Some((p.name.clone(), m.ok()?)))
            .collect();
        if let Some(h) = &holder {
            self.note_leader(h);
        }
        self.sample_memory(&pods).await;
        self.look_for_others().await?;
        Ok(Snapshot {
            at: Instant::now(),
            api,
            api_failed,
            api_failures,
            cpu: cpu_by_process(),
            pods: pods_metrics,
            leader: holder,
            took: started.elapsed().as_secs_f64(),
        })
    }

    pub fn note_leader(&self, pod: &str) {
        let mut leaders = self.leaders.lock().unwrap();
        if leaders.last().map(String::as_str) != Some(pod) {
            leaders.push(pod.to_string());
        }
    }

    /// Records operator pods of other releases and consumers of other
    /// namespaces.
    pub async fn look_for_others(&self) -> Result<()> {
        let operators = self
            .all_pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=millpond-operator"))
            .await?;
        let consumers = self
            .all_consumers
            .list(
                &ListParams::default()
                    .fields(&format!("metadata.namespace!={}", self.namespace))
                    .limit(1),
            )
            .await?;
        let mut others = self.others.lock().unwrap();
        for p in operators.items {
            if p.namespace().as_deref() != Some(self.operator_namespace.as_str()) {
                others.insert(format!(
                    "operator pod {}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                ));
            }
        }
        for c in consumers.items {
            others.insert(format!(
                "consumer {}/{}",
                c.namespace().unwrap_or_default(),
                c.name_any()
            ));
        }
        Ok(())
    }

    /// Samples every operator pod's memory until `until`.
    pub async fn sample_until(&self, until: Instant) {
        loop {
            if let Ok(pods) = self.operator_pods().await {
                self.sample_memory(&pods).await;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(self.sample_every)).await;
        }
    }

    pub async fn sample_memory(&self, pods: &[OperatorPod]) {
        for pod in pods {
            let rss = self
                .scrape(pod)
                .await
                .ok()
                .map(|s| prom::sum(&s, "process_resident_memory_bytes", |_| true));
            let host = container_memory(&pod.container_id);
            let mut memory = self.memory.lock().unwrap();
            let m = memory.entry(pod.name.clone()).or_default();
            if let Some(rss) = rss {
                m.rss_peak = m.rss_peak.max(rss);
                m.rss_last = rss;
            }
            if let Some((hwm, threads, usage, peak)) = host {
                m.hwm = m.hwm.max(hwm);
                m.threads = m.threads.max(threads);
                m.cgroup_last = usage;
                m.cgroup_peak = m.cgroup_peak.max(peak);
            }
        }
    }
}
