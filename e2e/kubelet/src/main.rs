use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::Parser;
use millpond_kubelet::config::{Args, Settings};
use millpond_kubelet::context::{host_port, Context};
use millpond_kubelet::identity::der_to_pem;
use millpond_kubelet::ip::IpAllocator;
use millpond_kubelet::node::{self, Machine};
use millpond_kubelet::{binder, manager};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run(args));
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "millpond-kubelet stopped");
    }
    result
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = Settings::from_args(&args)?;
    settings.state.create()?;

    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let api_url = args.api_server_url.clone().unwrap_or_else(|| {
        config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string()
    });
    let ca_pem = match &args.api_server_ca_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => der_to_pem(config.root_cert.as_deref().unwrap_or_default()),
    };
    let client = kube::Client::try_from(config)?;
    let version = client
        .apiserver_version()
        .await
        .context("reaching the API server")?;
    let machine = Machine::detect(&settings.state.root, version.git_version.clone());
    let (api_host, api_port) = host_port(&api_url);
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .context("building the probe HTTP client")?;

    let node = node::register(&client, &settings.node_ip, &settings.node_name, &machine).await?;
    tracing::info!(
        node = %settings.node_name,
        api_server = %api_url,
        kubernetes = %version.git_version,
        state_dir = %settings.state.root.display(),
        bin_dirs = ?settings.images.bin_dirs(),
        pod_cidr = %settings.pod_cidr,
        "node registered and ready"
    );

    let ctx = Arc::new(Context {
        client: client.clone(),
        ips: Mutex::new(IpAllocator::new(&settings.pod_cidr)?),
        settings: settings.clone(),
        api_url,
        ca_pem,
        api_host,
        api_port,
        http,
        machine: machine.clone(),
        path_env: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        settings.node_ip.clone(),
        settings.node_name.clone(),
        machine.clone(),
        node,
        shutdown_rx.clone(),
    ));
    let binder = tokio::spawn(binder::run(
        client.clone(),
        settings.node_name.clone(),
        node::labels(&settings.node_name, &machine),
        shutdown_rx.clone(),
    ));
    let manager = tokio::spawn(manager::run(ctx, shutdown_rx));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping all pods"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping all pods"),
    }
    let _ = shutdown_tx.send(true);
    let _ = manager.await;
    let _ = binder.await;
    let _ = heartbeat.await;
    tracing::info!("millpond-kubelet stopped");
    Ok(())
}
