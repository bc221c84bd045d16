//! millpond-testapp: a small long-running program for the process kubelet's
//! tests.
//!
//! * serves `GET /healthz` (200 "ok", or 500 after `POST /fail`) and `GET /`
//!   (pod name, namespace and address as JSON) on `$LISTEN_ADDR`, default
//!   `$POD_IP:8080` (127.0.0.1:8080 without `POD_IP`);
//! * prints "received SIGTERM" on SIGTERM and exits 0;
//! * `--k8s-get PATH`: instead, GETs PATH from the Kubernetes API with the
//!   credentials of `$KUBECONFIG` (the pod's service account), prints
//!   `k8s-get PATH: HTTP <status>` and exits 0 (1 if the request could not
//!   be made at all).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "millpond-testapp")]
struct Args {
    /// Address to serve on. Default: $POD_IP:8080.
    #[arg(long, env = "LISTEN_ADDR")]
    listen: Option<String>,

    /// GET this API path with the pod's identity, print the status, exit.
    #[arg(long)]
    k8s_get: Option<String>,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if let Some(path) = args.k8s_get {
        return k8s_get(&path).await;
    }
    let addr = args.listen.unwrap_or_else(|| {
        let ip = std::env::var("POD_IP").unwrap_or_else(|_| "127.0.0.1".into());
        format!("{ip}:8080")
    });
    let healthy = Arc::new(AtomicBool::new(true));
    let info = serde_json::json!({
        "pod": std::env::var("POD_NAME").unwrap_or_default(),
        "namespace": std::env::var("POD_NAMESPACE").unwrap_or_default(),
        "listen": addr,
    });
    let app = axum::Router::new()
        .route(
            "/healthz",
            get(|State(h): State<Arc<AtomicBool>>| async move {
                if h.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::INTERNAL_SERVER_ERROR, "failing")
                }
            }),
        )
        .route(
            "/fail",
            post(|State(h): State<Arc<AtomicBool>>| async move {
                h.store(false, Ordering::Relaxed);
                "now failing /healthz"
            }),
        )
        .route("/", get(move || async move { axum::Json(info) }))
        .with_state(healthy);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    say(&format!("listening on {addr}"));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            term.recv().await;
            say("received SIGTERM");
        })
        .await?;
    say("stopped");
    Ok(())
}

async fn k8s_get(path: &str) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("loading the Kubernetes client configuration")?;
    let client = kube::Client::try_from(config)?;
    let request = http::Request::get(path).body(kube::client::Body::empty())?;
    match client.send(request).await {
        Ok(response) => {
            say(&format!(
                "k8s-get {path}: HTTP {}",
                response.status().as_u16()
            ));
            Ok(())
        }
        Err(e) => {
            say(&format!("k8s-get {path}: error {e}"));
            std::process::exit(1);
        }
    }
}
