//! What the bench watches: the consumers' statuses (how fresh each is) and
//! the writes to the objects the operator owns.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use millpond_crds::MillpondConsumer;

/// What the watch saw of the consumers.
#[derive(Default)]
pub struct Fleet {
    pub consumers: HashMap<String, Seen>,
    /// Status changes seen since last taken.
    pub status_updates: u64,
    /// Seconds between two successive `lastObservedTime`s of one consumer,
    /// since last taken.
    pub gaps: Vec<f64>,
}

#[derive(Default)]
pub struct Seen {
    /// When the watch first saw an observation in its status.
    pub first_observed: Option<Instant>,
    pub last_observed_time: Option<Timestamp>,
    pub status: Option<serde_json::Value>,
}

impl Fleet {
    pub fn apply(&mut self, object: &DynamicObject) {
        let Some(name) = object.metadata.name.clone() else {
            return;
        };
        let status = object.data.get("status").cloned();
        let seen = self.consumers.entry(name).or_default();
        if status == seen.status {
            return;
        }
        if status.is_some() {
            self.status_updates += 1;
        }
        let observed_time = status.as_ref().and_then(|s| {
            s.get("lastObservedTime")?
                .as_str()?
                .parse::<Timestamp>()
                .ok()
        });
        let observed = observed_time.is_some()
            || status
                .as_ref()
                .is_some_and(|s| s.get("partitions").is_some());
        if observed && seen.first_observed.is_none() {
            seen.first_observed = Some(Instant::now());
        }
        if let (Some(new), Some(old)) = (observed_time, seen.last_observed_time) {
            if new > old {
                self.gaps.push(seconds_between(new, old));
            }
        }
        if observed_time.is_some() {
            seen.last_observed_time = observed_time;
        }
        seen.status = status;
    }

    /// Consumers of `created` observed at least once.
    pub fn observed(&self, created: &HashMap<String, Instant>) -> usize {
        created
            .keys()
            .filter(|n| {
                self.consumers
                    .get(*n)
                    .is_some_and(|s| s.first_observed.is_some())
            })
            .count()
    }

    pub fn first_observations(
        &self,
        created: &HashMap<String, Instant>,
        create_start: Instant,
    ) -> FirstObservations {
        let mut latencies = Vec::new();
        let mut last = None::<Instant>;
        let mut with_time = 0;
        for (name, at) in created {
            let Some(seen) = self.consumers.get(name) else {
                continue;
            };
            with_time += usize::from(seen.last_observed_time.is_some());
            if let Some(first) = seen.first_observed {
                latencies.push(first.saturating_duration_since(*at).as_secs_f64());
                last = Some(last.map_or(first, |l| l.max(first)));
            }
        }
        FirstObservations {
            observed: latencies.len(),
            with_observed_time: with_time,
            all_after: (latencies.len() == created.len())
                .then(|| last.map(|l| l.duration_since(create_start).as_secs_f64()))
                .flatten(),
            latency: Quantiles::of(&mut latencies),
        }
    }

    /// The consumers of `created` never observed, each with its status'
    /// conditions that are not as expected.
    pub fn unobserved(&self, created: &HashMap<String, Instant>) -> Vec<String> {
        let mut names: Vec<&String> = created
            .keys()
            .filter(|n| {
                self.consumers
                    .get(*n)
                    .is_none_or(|s| s.first_observed.is_none())
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let conditions = self
                    .consumers
                    .get(name)
                    .and_then(|s| s.status.as_ref()?.get("conditions")?.as_array().cloned())
                    .unwrap_or_default();
                let said: Vec<String> = conditions
                    .iter()
                    .map(|c| {
                        let field = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
                        format!(
                            "{}={} {}: {}",
                            field("type"),
                            field("status"),
                            field("reason"),
                            field("message")
                        )
                    })
                    .collect();
                if said.is_empty() {
                    format!("{name}: no status")
                } else {
                    format!("{name}: {}", said.join("; "))
                }
            })
            .collect()
    }

    /// The age of every consumer's status now.
    pub fn ages(&self, created: &HashMap<String, Instant>) -> Ages {
        let now = Timestamp::now();
        let mut ages = Vec::new();
        let mut missing = 0;
        for name in created.keys() {
            match self.consumers.get(name).and_then(|s| s.last_observed_time) {
                Some(t) => ages.push(seconds_between(now, t)),
                None => missing += 1,
            }
        }
        Ages {
            missing,
            age: Quantiles::of(&mut ages),
        }
    }
}

pub fn seconds_between(later: Timestamp, earlier: Timestamp) -> f64 {
    (later.as_millisecond() - earlier.as_millisecond()) as f64 / 1e3
}

/// Keeps `fleet` up to date with the consumers of `namespace`.
pub async fn watch(client: kube::Client, namespace: String, fleet: Arc<Mutex<Fleet>>) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        &namespace,
        &ApiResource::erase::<MillpondConsumer>(&()),
    );
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                fleet.lock().unwrap().apply(&o)
            }
            Ok(_) => {}
            Err(e) => eprintln!("watch of the consumers: {e}"),
        }
    }
}

/// Changes of the objects the operator owns, seen by watches, by kind:
/// (new resourceVersions, new generations).
#[derive(Default)]
pub struct Changes {
    pub by_kind: BTreeMap<String, (u64, u64)>,
}

/// Counts the changes of every `K` in `namespace` (the initial listing and
/// creations left out: only modifications of objects seen before).
pub fn watch_changes<K>(
    client: &kube::Client,
    namespace: &str,
    changes: &Arc<Mutex<Changes>>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let changes = changes.clone();
    tokio::spawn(async move {
        let kind = K::kind(&()).to_string();
        let mut seen: HashMap<String, (String, i64)> = HashMap::new();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let (object, init) = match event {
                Ok(watcher::Event::Apply(o)) => (o, false),
                Ok(watcher::Event::InitApply(o)) => (o, true),
                _ => continue,
            };
            let version = (
                object.resource_version().unwrap_or_default(),
                object.meta().generation.unwrap_or(0),
            );
            let before = seen.insert(object.name_any(), version.clone());
            if let (Some(before), false) = (before, init) {
                if before != version {
                    let mut c = changes.lock().unwrap();
                    let entry = c.by_kind.entry(kind.clone()).or_insert((0, 0));
                    entry.0 += 1;
                    entry.1 += u64::from(before.1 != version.1);
                }
            }
        }
    })
}

/// p50, p99 and max of some values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantiles {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn of(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            values
                .get(((values.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        Quantiles {
            n: values.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FirstObservations {
    pub observed: usize,
    pub with_observed_time: usize,
    /// From the first create until the last consumer's first observation.
    pub all_after: Option<f64>,
    /// From each consumer's creation to its first observation.
    pub latency: Quantiles,
}

#[derive(Debug, Clone, Default)]
pub struct Ages {
    /// Consumers without `status.lastObservedTime`.
    pub missing: usize,
    pub age: Quantiles,
}
