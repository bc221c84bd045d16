//! `millpond-test-sink`: an HTTP sink whose capacity is bounded by latency.
//!
//! Every `POST` (any path) is held for `--hold-ms` before it is answered, so a
//! consumer pod drains at most `maxInFlight × flush size / hold` and more pods
//! or more in-flight writes really drain faster, even on a small machine. Each
//! record's `id` is recorded in a ledger; `GET /stats?expected=N` tells how
//! many ids arrived, how many twice, and which of `0..N` never did.
//!
//! ```text
//! millpond-test-sink --listen 127.0.0.1:18480 --hold-ms 500
//! curl -s '127.0.0.1:18480/stats?expected=1000000'
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use millpond_testkit::ledger::{self, Ledger};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(name = "millpond-test-sink", about)]
struct Args {
    /// Address to listen on: one address of this machine (loopback, or the
    /// stack's host address that pods reach), never the wildcard.
    #[arg(long, default_value = "127.0.0.1:18480")]
    listen: SocketAddr,
    /// Milliseconds each batch is held before it is acknowledged.
    #[arg(long, default_value_t = 500)]
    hold_ms: u64,
}

#[derive(Default)]
struct Sink {
    ledger: Mutex<Ledger>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    hold: Duration,
}

#[derive(Deserialize)]
struct StatsQuery {
    expected: Option<u64>,
}

#[derive(Serialize)]
struct StatsBody {
    #[serde(flatten)]
    ledger: ledger::Stats,
    in_flight: u64,
    peak_in_flight: u64,
}

async fn accept(State(sink): State<Arc<Sink>>, body: Bytes) -> Response {
    let ids = match ledger::ids(&body) {
        Ok(ids) => ids,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let now = sink.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    sink.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(sink.hold).await;
    // Recorded when acknowledged: an id in the ledger is an id the consumer
    // was told is stored.
    sink.ledger.lock().expect("ledger lock").accept(&ids);
    sink.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::OK.into_response()
}

async fn stats(State(sink): State<Arc<Sink>>, Query(q): Query<StatsQuery>) -> Json<StatsBody> {
    let ledger = sink.ledger.lock().expect("ledger lock").stats(q.expected);
    Json(StatsBody {
        ledger,
        in_flight: sink.in_flight.load(Ordering::SeqCst),
        peak_in_flight: sink.peak_in_flight.load(Ordering::SeqCst),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.listen.ip().is_unspecified(),
        "--listen must name one address of this machine, not {}",
        args.listen
    );
    let sink = Arc::new(Sink {
        hold: Duration::from_millis(args.hold_ms),
        ..Sink::default()
    });
    let app = Router::new()
        .route("/stats", get(stats))
        .fallback(axum::routing::post(accept))
        // A consumer flushes up to its flush size (16 MiB by default) per
        // request; axum's default limit is 2 MiB.
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "millpond-test-sink: listening on {}, holding each batch {} ms",
        args.listen, args.hold_ms
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
