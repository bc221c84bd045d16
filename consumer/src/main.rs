use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use millpond_consumer::config::{Args, Settings};
use millpond_consumer::limits::LiveLimits;
use millpond_consumer::metrics::Metrics;
use millpond_consumer::quantity::format_bytes;
use millpond_consumer::source::{self, Health, Shared};
use millpond_consumer::{server, Error};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The object store's HTTP client takes the process's crypto provider:
    // ring, the one the rest of the tree uses.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "millpond-consumer stopped");
            eprintln!("error: {e:#}");
            let code = match e.downcast_ref::<Error>() {
                Some(Error::Config(_) | Error::Budget(_)) => 2,
                Some(Error::Poison { .. } | Error::Unreadable { .. }) => 3,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let settings = Settings::from_args(args)?;
    let plan = settings.plan.clone();
    tracing::info!(sink = %settings.sink.describe(), budget = %format_bytes(plan.budget), "starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let metrics = Metrics::new();
    metrics.memory_budget_bytes.set(plan.budget as i64);
    settings.sink.observe(&metrics);
    let shared = Shared {
        metrics,
        limits: LiveLimits::new(settings.limits.clone(), plan),
        health: Arc::new(Health::new(settings.health_stall)),
        shutdown: Arc::new(AtomicBool::new(false)),
    };

    let token = settings.admin_token.clone();
    match settings.admin_addr {
        Some(admin) => {
            serve(
                &runtime,
                "METRICS_ADDR",
                settings.metrics_addr,
                server::probes(shared.clone()),
            )?;
            serve(
                &runtime,
                "ADMIN_ADDR",
                admin,
                server::admin(shared.clone(), token),
            )?;
        }
        None => serve(
            &runtime,
            "METRICS_ADDR",
            settings.metrics_addr,
            server::router(shared.clone(), token),
        )?,
    }

    let shutdown = shared.shutdown.clone();
    runtime.spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        shutdown.store(true, Ordering::Relaxed);
    });

    let handle = runtime.handle().clone();
    let loop_thread = std::thread::Builder::new()
        .name("consume-loop".into())
        .spawn(move || source::run(settings, shared, handle))
        .context("starting the consume loop")?;
    let result = loop_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the consume loop panicked"))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map_err(Into::into)
}

/// Binds `addr` (named by its setting in errors) and serves `app` on it.
fn serve(
    runtime: &tokio::runtime::Runtime,
    setting: &str,
    addr: std::net::SocketAddr,
    app: axum::Router,
) -> anyhow::Result<()> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("binding {setting} {addr}"))?;
    let setting = setting.to_string();
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, setting, "HTTP server stopped");
        }
    });
    Ok(())
}
