//! Command-line flags and environment variables, and what is derived from them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::budget::{self, BudgetPlan, BudgetRequest};
use crate::kafka_config;
use crate::limits::{validate_shape, Limits};
use crate::quantity::clap_bytes;
use crate::sink::retry::RetryPolicy;
use crate::sink::{Backoff, CatalogSettings, HttpOptions, Sink};
use crate::{Error, Result};

/// Bounded Kafka consumer: bounded prefetch, adaptive batches, at-least-once
/// delivery to a file, HTTP, S3 or Iceberg sink, limits that change while it runs.
///
/// Every flag can also be set by the environment variable shown beside it.
/// Sizes accept Kubernetes quantities (`512Ki`, `64Mi`, `1Gi`, `100M`).
#[derive(Debug, Clone, Parser)]
#[command(name = "millpond-consumer", version)]
pub struct Args {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: String,

    /// Topic to consume.
    #[arg(long, env = "KAFKA_TOPIC")]
    pub topic: String,

    /// Consumer group [default: millpond-<topic>].
    #[arg(long, env = "KAFKA_GROUP_ID")]
    pub group_id: Option<String>,

    /// Extra librdkafka properties, `key=value` separated by commas or newlines
    /// (e.g. `security.protocol=SASL_SSL,sasl.mechanism=PLAIN`). Properties that
    /// would break at-least-once delivery (`enable.auto.commit=true`, ...) are refused.
    #[arg(long, env = "KAFKA_CONFIG", default_value = "")]
    pub kafka_config: String,

    /// File with extra librdkafka properties (one `key=value` per line, `#` comments);
    /// applied before KAFKA_CONFIG. Use it for credentials mounted from a Secret.
    #[arg(long, env = "KAFKA_CONFIG_FILE")]
    pub kafka_config_file: Option<std::path::PathBuf>,

    /// Where batches go: `file:///dir?format=ndjson`, `file:///dir?format=parquet`,
    /// `http://host/path` or `https://host/path` (one NDJSON POST per batch),
    /// `s3://bucket/prefix?format=...` (objects), `iceberg://namespace/table`
    /// (an Iceberg table, exactly once).
    #[arg(long, env = "SINK_URL")]
    pub sink_url: String,

    #[command(flatten)]
    pub iceberg: IcebergArgs,

    /// Add `_topic`, `_partition`, `_offset` and `_timestamp` fields to every record.
    #[arg(long, env = "SINK_METADATA", default_value_t = false)]
    pub sink_metadata: bool,

    /// Topic for records the sink cannot take (not a JSON object). Without it,
    /// such a record stops the consumer with an error naming its position.
    #[arg(long, env = "DEAD_LETTER_TOPIC")]
    pub dead_letter_topic: Option<String>,

    /// Flush when this many bytes are buffered [default: derived from MEMORY_BUDGET, at most 16Mi].
    #[arg(long, env = "FLUSH_BYTES", value_parser = clap_bytes)]
    pub flush_bytes: Option<u64>,

    /// Flush buffered records at least this often (milliseconds).
    #[arg(long, env = "FLUSH_INTERVAL_MS", default_value_t = 5000)]
    pub flush_interval_ms: u64,

    /// Sink writes allowed at once; when all are busy the consumer stops pulling (backpressure).
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: u32,

    /// Records pulled from librdkafka per loop turn when the buffer is empty;
    /// shrinks as the buffer fills (never below 10).
    #[arg(long, env = "CONSUME_BATCH_SIZE", default_value_t = 1000)]
    pub consume_batch_size: usize,

    /// Memory the process may use (the pod's memory limit). librdkafka's
    /// prefetch bounds and the largest flush size are derived from it unless set
    /// explicitly; settings that cannot fit are refused at start.
    #[arg(long, env = "MEMORY_BUDGET", value_parser = clap_bytes, default_value = "256Mi")]
    pub memory_budget: u64,

    /// Listen address for /metrics, /healthz, /readyz (and /admin/limits
    /// unless ADMIN_ADDR is set).
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Listen address for /admin/limits alone, so a NetworkPolicy can admit
    /// only the operator to it while /metrics stays open to scrapers.
    #[arg(long, env = "ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Bearer token that authorizes `PUT /admin/limits`. Without a token the
    /// admin endpoint is disabled.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// File holding the admin bearer token (e.g. mounted from a Secret).
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Generation of the limits given at start (set by the operator).
    #[arg(long, env = "LIMITS_GENERATION", default_value_t = 0)]
    pub limits_generation: u64,

    /// HTTP and object storage sinks: timeout of one request (milliseconds).
    #[arg(long, env = "HTTP_TIMEOUT_MS", default_value_t = 30_000)]
    pub http_timeout_ms: u64,

    /// A failed sink write is retried without end; with this set (milliseconds,
    /// 0: never) the process gives up after failing this long and exits 1.
    #[arg(long, env = "SINK_GIVE_UP_AFTER_MS", default_value_t = 0)]
    pub sink_give_up_after_ms: u64,

    /// First retry delay of a failed sink write (milliseconds); doubles per
    /// retry, with jitter.
    #[arg(long, env = "SINK_BACKOFF_BASE_MS", default_value_t = 200)]
    pub sink_backoff_base_ms: u64,

    /// Longest retry delay of a failed sink write (milliseconds).
    #[arg(long, env = "SINK_BACKOFF_CAP_MS", default_value_t = 30_000)]
    pub sink_backoff_cap_ms: u64,

    /// How long a hand-off (partitions revoked, or shutdown) waits for the
    /// sink to take what is buffered and in flight before it lets the
    /// partitions go uncommitted (milliseconds).
    #[arg(long, env = "HANDOFF_TIMEOUT_MS", default_value_t = 30_000)]
    pub handoff_timeout_ms: u64,

    /// Give up at start when Kafka does not answer within this time (milliseconds).
    #[arg(long, env = "KAFKA_STARTUP_TIMEOUT_MS", default_value_t = 15_000)]
    pub startup_timeout_ms: u64,

    /// /healthz fails when the consume loop has not turned for this long (seconds).
    #[arg(long, env = "HEALTH_STALL_SECONDS", default_value_t = 120)]
    pub health_stall_seconds: u64,
}

/// Everything the consumer runs with, validated.
pub struct Settings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub group_id: String,
    pub kafka_properties: BTreeMap<String, String>,
    pub sink: std::sync::Arc<Sink>,
    pub sink_metadata: bool,
    pub dead_letter_topic: Option<String>,
    /// What the memory budget must hold; the final plan needs the topic's
    /// partition count, known once Kafka answered.
    pub budget: BudgetRequest,
    /// The plan for a single partition: refuses impossible budgets before connecting.
    pub plan: BudgetPlan,
    pub limits: Limits,
    pub metrics_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub admin_token: Option<String>,
    pub startup_timeout: Duration,
    pub health_stall: Duration,
    pub retry: RetryPolicy,
    pub handoff_timeout: Duration,
}

impl Settings {
    /// Validates the arguments; every error names the setting at fault.
    pub fn from_args(args: Args) -> Result<Self> {
        if args.topic.trim().is_empty() {
            return Err(Error::Config("KAFKA_TOPIC must not be empty".into()));
        }
        let mut kafka_properties = BTreeMap::new();
        if let Some(path) = &args.kafka_config_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::io(format!("reading KAFKA_CONFIG_FILE {}", path.display()), e)
            })?;
            let source = format!("KAFKA_CONFIG_FILE {}", path.display());
            let props = kafka_config::parse_properties(&source, &text)?;
            kafka_config::validate(&source, &props)?;
            kafka_properties.extend(props);
        }
        let props = kafka_config::parse_properties("KAFKA_CONFIG", &args.kafka_config)?;
        kafka_config::validate("KAFKA_CONFIG", &props)?;
        kafka_properties.extend(props);

        let http = HttpOptions {
            timeout: Duration::from_millis(args.http_timeout_ms),
        };
        let retry = RetryPolicy {
            backoff: Backoff {
                base: Duration::from_millis(args.sink_backoff_base_ms.max(1)),
                cap: Duration::from_millis(args.sink_backoff_cap_ms.max(1)),
            },
            give_up_after: (args.sink_give_up_after_ms > 0)
                .then(|| Duration::from_millis(args.sink_give_up_after_ms)),
        };
        let sink = Sink::from_url(&args.sink_url, &http, &args.iceberg.catalog())?;

        let request = BudgetRequest {
            budget: args.memory_budget,
            partitions: 1,
            max_in_flight: args.max_in_flight,
            flush_bytes: args.flush_bytes,
            queued_max_messages_kbytes: kafka_config::numeric(
                &kafka_properties,
                "queued.max.messages.kbytes",
            )?,
            fetch_max_bytes: kafka_config::numeric(&kafka_properties, "fetch.max.bytes")?,
            max_partition_fetch_bytes: kafka_config::numeric(
                &kafka_properties,
                "max.partition.fetch.bytes",
            )?,
            sink_factor: sink.memory_factor(),
        };
        // Before Kafka tells the partition count, only the budget itself is
        // checked; the flush size is checked against the final plan (see
        // `source::run`), so both the operator and the pod judge it alike.
        let plan = budget::plan(&BudgetRequest {
            flush_bytes: None,
            ..request.clone()
        })?;
        let limits = Limits {
            generation: args.limits_generation,
            flush_bytes: args.flush_bytes.unwrap_or(plan.flush_bytes),
            flush_interval_ms: args.flush_interval_ms,
            max_in_flight: args.max_in_flight,
            consume_batch_size: args.consume_batch_size,
        };
        validate_shape(&limits)?;

        let admin_token = match (&args.admin_token, &args.admin_token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        Error::io(format!("reading ADMIN_TOKEN_FILE {}", path.display()), e)
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        }
        .filter(|t| !t.is_empty());

        Ok(Settings {
            group_id: args
                .group_id
                .clone()
                .unwrap_or_else(|| format!("millpond-{}", args.topic)),
            bootstrap_servers: args.bootstrap_servers,
            topic: args.topic,
            kafka_properties,
            sink: std::sync::Arc::new(sink),
            sink_metadata: args.sink_metadata,
            dead_letter_topic: args.dead_letter_topic.filter(|t| !t.is_empty()),
            budget: request,
            plan,
            limits,
            metrics_addr: args.metrics_addr,
            admin_addr: args.admin_addr,
            admin_token,
            startup_timeout: Duration::from_millis(args.startup_timeout_ms),
            health_stall: Duration::from_secs(args.health_stall_seconds),
            retry,
            handoff_timeout: Duration::from_millis(args.handoff_timeout_ms),
        })
    }

    /// Properties for a client that only reads metadata.
    pub fn metadata_properties(&self) -> BTreeMap<String, String> {
        let mut p = self.kafka_properties.clone();
        p.insert("bootstrap.servers".into(), self.bootstrap_servers.clone());
        p
    }

    /// The librdkafka consumer configuration: the user's properties, then the
    /// ones the consumer owns, then the budget's bounds where not set explicitly.
    pub fn consumer_properties(&self, plan: &BudgetPlan) -> BTreeMap<String, String> {
        let mut p = self.kafka_properties.clone();
        let owned = [
            ("bootstrap.servers", self.bootstrap_servers.clone()),
            ("group.id", self.group_id.clone()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("partition.assignment.strategy", "cooperative-sticky".into()),
            ("enable.partition.eof", "false".into()),
        ];
        for (k, v) in owned {
            p.insert(k.into(), v);
        }
        let derived = [
            (
                "queued.max.messages.kbytes",
                plan.queued_max_messages_kbytes.to_string(),
            ),
            ("fetch.max.bytes", plan.fetch_max_bytes.to_string()),
            (
                "max.partition.fetch.bytes",
                plan.max_partition_fetch_bytes.to_string(),
            ),
            // With small per-partition queues librdkafka's default 1 s back-off
            // after a full queue would idle the consumer. Measured on 2M
            // records over 8 partitions (docs/benchmarks.md): 20 ms still
            // idles it a third of the time; 5 ms keeps the fetcher ahead.
            ("fetch.queue.backoff.ms", "5".into()),
            ("auto.offset.reset", "earliest".into()),
            ("statistics.interval.ms", "5000".into()),
        ];
        for (k, v) in derived {
            p.entry(k.into()).or_insert(v);
        }
        // librdkafka requires receive.message.max.bytes >= fetch.max.bytes + 512.
        let fetch: u64 = p["fetch.max.bytes"].parse().unwrap_or(plan.fetch_max_bytes);
        p.entry("receive.message.max.bytes".into())
            .or_insert_with(|| (fetch + (1 << 20)).to_string());
        p
    }
}

/// The catalog of an `iceberg://` sink.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IcebergArgs {
    /// The catalog: an Iceberg REST catalog's URL (`https://...`), or a SQL
    /// catalog's PostgreSQL connection URL
    /// (`postgresql://user:password@host:5432/database`).
    #[arg(long = "iceberg-catalog-uri", env = "ICEBERG_CATALOG_URI")]
    pub catalog_uri: Option<String>,

    /// Warehouse to ask the catalog for.
    #[arg(long = "iceberg-warehouse", env = "ICEBERG_WAREHOUSE")]
    pub warehouse: Option<String>,

    /// Bearer token for the catalog.
    #[arg(
        long = "iceberg-catalog-token",
        env = "ICEBERG_CATALOG_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// OAuth2 client credentials for the catalog, `client_id:client_secret`.
    #[arg(
        long = "iceberg-catalog-credential",
        env = "ICEBERG_CATALOG_CREDENTIAL",
        hide_env_values = true
    )]
    pub credential: Option<String>,

    /// OAuth2 scope asked for with the credential.
    #[arg(long = "iceberg-catalog-scope", env = "ICEBERG_CATALOG_SCOPE")]
    pub scope: Option<String>,

    /// OAuth2 token endpoint, when it is not the catalog's.
    #[arg(long = "iceberg-oauth2-server-uri", env = "ICEBERG_OAUTH2_SERVER_URI")]
    pub oauth2_server_uri: Option<String>,

    /// Create a missing table (and namespace) from the first batch's fields.
    #[arg(
        long = "iceberg-auto-create",
        env = "ICEBERG_AUTO_CREATE",
        default_value_t = false
    )]
    pub auto_create: bool,

    /// Add optional columns for fields the table does not have yet.
    #[arg(
        long = "iceberg-evolve-schema",
        env = "ICEBERG_EVOLVE_SCHEMA",
        default_value_t = false
    )]
    pub evolve_schema: bool,

    /// Seconds written data files wait for more before they are committed
    /// (fewer, larger files and snapshots; 0: every flush is a commit). A
    /// commit comes sooner when every write in the pod waits for it.
    #[arg(
        long = "iceberg-commit-interval-seconds",
        env = "ICEBERG_COMMIT_INTERVAL_SECONDS",
        default_value_t = 0
    )]
    pub commit_interval_seconds: u64,
}

impl IcebergArgs {
    /// The REST catalog's properties (`uri`, `warehouse`, `token`, ...), if
    /// a catalog was given.
    pub fn catalog(&self) -> Option<CatalogSettings> {
        let uri = self.catalog_uri.clone().filter(|u| !u.is_empty())?;
        let mut props = std::collections::HashMap::new();
        let optional = [
            ("warehouse", &self.warehouse),
            ("token", &self.token),
            ("credential", &self.credential),
            ("scope", &self.scope),
            ("oauth2-server-uri", &self.oauth2_server_uri),
        ];
        for (prop, value) in optional {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                props.insert(prop.to_string(), value.clone());
            }
        }
        Some(CatalogSettings {
            auto_create: self.auto_create,
            evolve_schema: self.evolve_schema,
            commit_interval: std::time::Duration::from_secs(self.commit_interval_seconds),
            ..CatalogSettings::new(&uri, props)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_variable_the_operator_sets() {
        use clap::CommandFactory;
        let read: Vec<String> = Args::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        for name in millpond_core::pod::env::ALL {
            assert!(
                read.iter().any(|r| r == name),
                "the pod does not read {name}"
            );
        }
    }

    /// Arguments with defaults for the required flags; `extra` overrides them.
    fn args(extra: &[&str]) -> Args {
        let base = [
            "--bootstrap-servers=127.0.0.1:9092",
            "--topic=orders",
            "--sink-url=file:///tmp/millpond-config-test",
        ];
        let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
        let mut argv = vec!["millpond-consumer"];
        argv.extend(
            base.iter()
                .filter(|b| !extra.iter().any(|e| flag(e) == flag(b))),
        );
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_derive_everything_from_the_budget() {
        let s = Settings::from_args(args(&[])).unwrap();
        assert_eq!(s.group_id, "millpond-orders");
        let p = s.consumer_properties(&s.plan);
        assert_eq!(p["enable.auto.commit"], "false");
        assert_eq!(p["partition.assignment.strategy"], "cooperative-sticky");
        assert_eq!(
            p["queued.max.messages.kbytes"],
            s.plan.queued_max_messages_kbytes.to_string()
        );
        assert!(
            s.plan
                .worst_case(s.limits.flush_bytes, s.limits.max_in_flight)
                <= 256 << 20
        );
    }

    #[test]
    fn explicit_prefetch_overrides_the_derived_value() {
        let s =
            Settings::from_args(args(&["--kafka-config=queued.max.messages.kbytes=4096"])).unwrap();
        assert_eq!(
            s.consumer_properties(&s.plan)["queued.max.messages.kbytes"],
            "4096"
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_setting_named() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--kafka-config=enable.auto.commit=true"],
                "`enable.auto.commit=true` is not allowed",
            ),
            (&["--sink-url=gs://bucket/x"], "unknown sink scheme `gs`"),
            (&["--memory-budget=16Mi"], "budget 16.0Mi is below"),
            (&["--max-in-flight=0"], "max_in_flight must be at least 1"),
        ];
        for (extra, expected) in cases {
            let err = Settings::from_args(args(extra))
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }

    #[test]
    fn a_postgresql_uri_is_a_sql_catalog_and_its_password_stays_out_of_logs() {
        let args = IcebergArgs {
            catalog_uri: Some("postgresql://iceberg:s3cr3t@db:5432/lake".into()),
            warehouse: Some("s3://lake/warehouse".into()),
            commit_interval_seconds: 30,
            ..IcebergArgs::default()
        };
        let settings = args.catalog().unwrap();
        assert!(settings.is_sql());
        assert_eq!(settings.uri, "postgresql://iceberg:***@db:5432/lake");
        assert_eq!(
            settings.props["uri"],
            "postgresql://iceberg:s3cr3t@db:5432/lake"
        );
        assert_eq!(settings.props["warehouse"], "s3://lake/warehouse");
        assert_eq!(settings.commit_interval, std::time::Duration::from_secs(30));

        let rest = IcebergArgs {
            catalog_uri: Some("https://catalog.example.com/api".into()),
            ..IcebergArgs::default()
        };
        assert!(!rest.catalog().unwrap().is_sql());
    }
}
