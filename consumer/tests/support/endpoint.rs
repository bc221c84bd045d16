//! An HTTP sink in the test process whose answers the test scripts: it
//! counts the ids and the offset ranges (`X-Millpond-Offsets`) it accepted
//! and the batches it did not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};

use super::count_ids;

/// What the endpoint answers to one POST body: status and text.
pub type Answer = dyn Fn(&str) -> (u16, String) + Send + Sync;

/// Offset ranges `(first, last)` accepted, per partition.
type Ranges = Arc<Mutex<BTreeMap<i32, Vec<(i64, i64)>>>>;

pub struct Endpoint {
    port: u16,
    /// Ids accepted, with how many times.
    pub ids: Arc<Mutex<BTreeMap<u64, u32>>>,
    ranges: Ranges,
    /// Batches answered with anything but 200.
    pub refused: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl Endpoint {
    /// Serves `POST /ingest`, answering as `answer` says.
    pub fn start(answer: Arc<Answer>) -> Self {
        let ids: Arc<Mutex<BTreeMap<u64, u32>>> = Default::default();
        let ranges: Ranges = Default::default();
        let refused: Arc<AtomicU64> = Default::default();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (ids2, ranges2, refused2) = (ids.clone(), ranges.clone(), refused.clone());
        let app = axum::Router::new().route(
            "/ingest",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (ids, ranges, refused) = (ids2.clone(), ranges2.clone(), refused2.clone());
                let answer = answer.clone();
                async move {
                    let (status, text) = answer(&body);
                    if status == 200 {
                        count_ids(&body, &mut ids.lock().unwrap());
                        record_ranges(&headers, &mut ranges.lock().unwrap());
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    (StatusCode::from_u16(status).unwrap(), text)
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Endpoint {
            port,
            ids,
            ranges,
            refused,
            _runtime: runtime,
        }
    }

    /// Answers 500 until `healthy_at`, then accepts everything.
    pub fn failing_until(healthy_at: Instant) -> Self {
        Self::start(Arc::new(move |_: &str| {
            if Instant::now() < healthy_at {
                (500, String::new())
            } else {
                (200, String::new())
            }
        }))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ingest", self.port)
    }

    /// Records accepted, duplicates included.
    pub fn accepted(&self) -> u64 {
        self.ids.lock().unwrap().values().map(|c| *c as u64).sum()
    }

    /// Batches answered with anything but 200.
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Per partition, the offset after the accepted records that start at
    /// offset 0 without a gap: a commit may not pass it.
    pub fn accepted_through(&self) -> BTreeMap<i32, i64> {
        let ranges = self.ranges.lock().unwrap();
        ranges
            .iter()
            .map(|(p, rs)| {
                let mut rs = rs.clone();
                rs.sort();
                let mut next = 0;
                for (first, last) in rs {
                    if first > next {
                        break;
                    }
                    next = next.max(last + 1);
                }
                (*p, next)
            })
            .collect()
    }
}

/// Adds the ranges of `X-Millpond-Offsets` (`partition:first-last,...`).
fn record_ranges(headers: &HeaderMap, ranges: &mut BTreeMap<i32, Vec<(i64, i64)>>) {
    let offsets = headers
        .get("x-millpond-offsets")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for item in offsets.split(',').filter(|i| !i.is_empty()) {
        let (p, range) = item.split_once(':').expect("partition:first-last");
        let (first, last) = range.split_once('-').expect("first-last");
        ranges
            .entry(p.parse().unwrap())
            .or_default()
            .push((first.parse().unwrap(), last.parse().unwrap()));
    }
}
