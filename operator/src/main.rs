use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{predicates, reflector, watcher, Controller, PredicateConfig, WatchStreamExt};
use kube::Api;
use millpond_crds::MillpondConsumer;
use millpond_operator::controller::{self, Context, Settings};
use millpond_operator::leader::LeaderElector;
use millpond_operator::metrics::Metrics;
use millpond_operator::scope::Scope;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Runs MillpondConsumers: owns their Deployments, reads lag from Kafka and
/// saturation from the pods, and sets replicas and limits from them.
///
/// Every flag can also be set by the environment variable shown beside it.
#[derive(Parser, Debug)]
#[command(name = "millpond-operator", version)]
struct Args {
    /// Listen address for /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Image of the consumer pods unless a MillpondConsumer sets spec.template.image.
    #[arg(long, env = "CONSUMER_IMAGE", default_value_t = millpond_operator::desired::default_consumer_image())]
    consumer_image: String,
    /// Labels of the operator's own pods, `key=value,...`: each consumer gets
    /// a NetworkPolicy that admits only those pods (in POD_NAMESPACE) to the
    /// admin port. Empty: no NetworkPolicy.
    #[arg(long, env = "CONSUMER_NETWORK_POLICY_POD_LABELS", default_value = "")]
    consumer_network_policy_pod_labels: String,
    /// The operator's namespace (the chart sets it from the pod).
    #[arg(long, env = "POD_NAMESPACE")]
    pod_namespace: Option<String>,
    /// Seconds between two decisions for one MillpondConsumer.
    #[arg(long, env = "INTERVAL_SECONDS", default_value_t = 15)]
    interval_seconds: u64,
    /// Deadline of every Kafka request (milliseconds).
    #[arg(long, env = "KAFKA_TIMEOUT_MS", default_value_t = 5000)]
    kafka_timeout_ms: u64,
    /// Deadline of one pod scrape or limits push (milliseconds).
    #[arg(long, env = "SCRAPE_TIMEOUT_MS", default_value_t = 2000)]
    scrape_timeout_ms: u64,
    /// Elect a leader among the operator's replicas; only the leader acts.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "LEADER_ELECTION_LEASE",
        default_value = "millpond-operator"
    )]
    leader_election_lease: String,
    /// Namespace of the Lease.
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE", default_value = "default")]
    leader_election_namespace: String,
    /// This replica's identity in the election (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "millpond-operator")]
    pod_name: String,
    /// Reconciliations running at once, over all MillpondConsumers (each
    /// one's Kafka reads and pod scrapes have their own deadlines).
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// Namespaces whose MillpondConsumers to run, comma separated; empty:
    /// every namespace. With a list the operator watches and needs
    /// permissions only in those namespaces.
    #[arg(long, env = "WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: Scope,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let metrics = Metrics::new();

    let (leading_tx, leading) = watch::channel(!args.leader_election);
    let elector = args.leader_election.then(|| {
        Arc::new(LeaderElector {
            api: Api::<Lease>::namespaced(client.clone(), &args.leader_election_namespace),
            lease_name: args.leader_election_lease.clone(),
            identity: args.pod_name.clone(),
            lease_duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        })
    });
    let election = elector
        .clone()
        .map(|e| tokio::spawn(async move { e.run(leading_tx).await }));

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding METRICS_ADDR {}", args.metrics_addr))?;
    let served = metrics.clone();
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { served.render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let operator_pods = operator_pods(
        &args.consumer_network_policy_pod_labels,
        args.pod_namespace.as_deref(),
    )?;
    let settings = Settings {
        consumer_image: args.consumer_image,
        operator_pods,
        interval: Duration::from_secs(args.interval_seconds),
        kafka_timeout: Duration::from_millis(args.kafka_timeout_ms),
        scrape_timeout: Duration::from_millis(args.scrape_timeout_ms),
    };
    let reporter = Reporter {
        controller: controller::FIELD_MANAGER.into(),
        instance: Some(args.pod_name),
    };
    let scope = args.watch_namespaces;
    api_ready(&scope, &client).await?;
    // One store of the consumers of every watched namespace (Context reads
    // it), fed by the merged watchers of the scope. Only a new generation
    // (a spec change) reconciles at once: the operator's own status writes
    // do not, the interval's requeue refreshes the status.
    let (consumers, writer) = reflector::store();
    let changed = reflector(writer, scope.watch(&client, watcher::Config::default()))
        .applied_objects()
        .predicate_filter(predicates::generation, PredicateConfig::default());
    let controller = Controller::for_stream(changed, consumers).with_config(
        kube::runtime::controller::Config::default().concurrency(args.max_concurrent_reconciles),
    );
    let store = controller.store();
    let (controller, cache) = controller::cache::watch_owned(controller, &client, &scope);
    let ctx = Arc::new(Context::new(
        client.clone(),
        Recorder::new(client.clone(), reporter),
        metrics,
        settings,
        leading,
        store,
        cache,
    ));
    let forgetting = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ctx.settings.interval);
            loop {
                every.tick().await;
                controller::forget_deleted(&ctx).await;
            }
        })
    };
    tracing::info!(watching = %scope, "millpond-operator started");
    controller
        .shutdown_on_signal()
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
    forgetting.abort();
    if let (Some(election), Some(elector)) = (election, elector) {
        election.abort();
        match elector.release().await {
            Ok(true) => tracing::info!("gave the leader lease up"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader lease not given up; it expires by itself"),
        }
    }
    tracing::info!("millpond-operator stopped");
    Ok(())
}

/// Where the operator's pods run, from CONSUMER_NETWORK_POLICY_POD_LABELS
/// and POD_NAMESPACE; `None` when no labels are given.
fn operator_pods(
    labels: &str,
    namespace: Option<&str>,
) -> anyhow::Result<Option<millpond_operator::desired::OperatorPods>> {
    if labels.trim().is_empty() {
        return Ok(None);
    }
    let labels = labels
        .split(',')
        .map(|pair| {
            let (k, v) = pair.split_once('=').with_context(|| {
                format!("CONSUMER_NETWORK_POLICY_POD_LABELS: `{pair}` is not key=value")
            })?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<anyhow::Result<_>>()?;
    let namespace = namespace.filter(|ns| !ns.is_empty()).context(
        "CONSUMER_NETWORK_POLICY_POD_LABELS needs POD_NAMESPACE, the operator's namespace",
    )?;
    Ok(Some(millpond_operator::desired::OperatorPods {
        namespace: namespace.to_string(),
        labels,
    }))
}

/// How long the operator waits at start for the API it needs: a chart
/// installs the RBAC beside the Deployment, and the API server may refuse
/// the first requests until its authorizer has caught up.
const API_WAIT: Duration = Duration::from_secs(60);

/// Lists MillpondConsumers once in every watched namespace, retrying for
/// [`API_WAIT`]; then says what is likely missing (the CRD, the RBAC).
async fn api_ready(scope: &Scope, client: &kube::Client) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + API_WAIT;
    for mpcs in scope.apis::<MillpondConsumer>(client) {
        let listing = match mpcs.namespace() {
            Some(ns) => format!("listing MillpondConsumers in namespace {ns}"),
            None => "listing MillpondConsumers".to_string(),
        };
        loop {
            match mpcs.list(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "{listing} failed; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("{listing} (is the CRD installed? kubectl apply -f crds/; does the operator's RBAC cover it?)")
                    })
                }
            }
        }
    }
    Ok(())
}
