//! One run of one contender: a fresh table, the contender started in a
//! control group of its own, the table watched through the catalog until
//! it holds every record and the group has committed to the end, then
//! stopped and its table read by pyiceberg.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use millpond_testkit::cgroup::Cgroup;
use millpond_testkit::connect::{self, Connect};
use millpond_testkit::iceberg::{self, stack_var, Read, Snapshot};
use millpond_testkit::kafka;
use millpond_testkit::process::{free_port, peak_rss_kib};
use millpond_testkit::runtime::block_on;

use crate::{Args, Topic};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Millpond,
    Connect,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Millpond => "Millpond",
            Contender::Connect => "Kafka Connect + Iceberg sink",
        }
    }
}

/// What one run measured.
pub struct Outcome {
    pub contender: Contender,
    pub spread: &'static str,
    pub killed: bool,
    /// When the contender was told to start consuming (Millpond: started;
    /// Connect: the connector created on a worker already up), epoch ms.
    pub started_ms: u64,
    pub snapshots: Vec<Snapshot>,
    /// CPU time from `started_ms` until the table held every record.
    pub cpu_seconds: f64,
    /// CPU time the worker spent starting, before the connector (Connect).
    pub startup_cpu_seconds: Option<f64>,
    /// Peak RSS of the process (VmHWM), KiB; the larger of two lives when killed.
    pub peak_rss_kib: u64,
    /// The most memory its control group was charged at once.
    pub group_peak_bytes: u64,
    /// The control group's hard limit, if any.
    pub limit_bytes: Option<u64>,
    pub oom_kills: u64,
    /// What pyiceberg found.
    pub read: Read,
}

/// The contender's process and how to reach it.
struct Running {
    child: Child,
    connector: Option<(Connect, String)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn run(args: &Args, contender: Contender, topic: &Topic, kill: bool) -> Result<Outcome> {
    let trial = Trial::new(args, contender, topic)?;
    eprintln!(
        "{} into {} ({} topic{})",
        contender.name(),
        trial.table,
        topic.spread,
        if kill { ", killed once" } else { "" }
    );
    let mut running = trial.start()?;
    let startup_cpu = (contender == Contender::Connect).then(|| trial.group.cpu_seconds());
    let started_ms = now_ms();
    if contender == Contender::Connect {
        create_connector(args, &trial.id, &trial.table, &topic.name)?;
        running.connector = Some((Connect::new(&connect_uri(args)), trial.id.clone()));
    }
    let mut peak_rss = 0;
    let snapshots = trial.until_landed(&mut running, kill, &mut peak_rss)?;
    let cpu_seconds = trial.group.cpu_seconds() - startup_cpu.unwrap_or(0.0);
    peak_rss = peak_rss.max(peak_rss_kib(running.child.id()));
    stop(running)?;
    Ok(Outcome {
        contender,
        spread: topic.spread,
        killed: kill,
        started_ms,
        snapshots,
        cpu_seconds,
        startup_cpu_seconds: startup_cpu,
        peak_rss_kib: peak_rss,
        group_peak_bytes: trial.group.peak_bytes(),
        limit_bytes: trial.limit,
        oom_kills: trial.group.oom_kills(),
        read: iceberg::read(&trial.table, &topic.name),
    })
}

/// What stays fixed through one run: the contender, its fresh table and
/// the control group it runs in.
struct Trial<'a> {
    args: &'a Args,
    contender: Contender,
    topic: &'a Topic,
    id: String,
    table: String,
    group: Cgroup,
    /// The control group's hard limit (Millpond's only).
    limit: Option<u64>,
}

impl<'a> Trial<'a> {
    fn new(args: &'a Args, contender: Contender, topic: &'a Topic) -> Result<Self> {
        let id = kafka::unique_topic("r").replace('-', "_");
        let table = format!("connect_bench.{id}");
        iceberg::create_table(&table, None);
        let limit = (contender == Contender::Millpond).then_some(args.memory_mib << 20);
        let group = Cgroup::new(&format!("millpond-connect-bench-{id}"), limit)?;
        Ok(Trial {
            args,
            contender,
            topic,
            id,
            table,
            group,
            limit,
        })
    }

    fn start(&self) -> Result<Running> {
        start(
            self.args,
            self.contender,
            &self.group,
            &self.id,
            &self.topic.name,
        )
    }

    /// The contender's consumer group on the topic.
    fn consumer_group(&self) -> String {
        match self.contender {
            Contender::Millpond => format!("bench-{}", self.id),
            Contender::Connect => format!("connect-{}", self.id),
        }
    }

    /// Watches the table through the catalog every 500 ms until it holds
    /// every record and the group has committed to the end (or
    /// `--timeout`); with `kill`, kills the contender once at `--kill-at`
    /// and starts it again. Raises `peak_rss` to each life's peak. The
    /// table's snapshots at the end.
    fn until_landed(
        &self,
        running: &mut Running,
        kill: bool,
        peak_rss: &mut u64,
    ) -> Result<Vec<Snapshot>> {
        let args = self.args;
        let consumer_group = self.consumer_group();
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        let mut killed = false;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let snapshots = iceberg::snapshots(&self.table)?;
            let rows = snapshots.last().map_or(0, |s| s.total_records);
            if kill && !killed && rows as f64 >= args.kill_at * args.records as f64 {
                *peak_rss = (*peak_rss).max(peak_rss_kib(running.child.id()));
                eprintln!("  SIGKILL at {rows} rows; restarting");
                self.restart(running)?;
                killed = true;
            }
            check_alive(running)?;
            if rows >= args.records && committed_to_end(args, &consumer_group, &self.topic.name)? {
                return Ok(snapshots);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not land {} records in {}s (table holds {rows})",
                    self.contender.name(),
                    args.records,
                    args.timeout
                );
            }
        }
    }

    /// SIGKILL, then the contender started again, its connector kept.
    fn restart(&self, running: &mut Running) -> Result<()> {
        running.child.kill()?;
        running.child.wait()?;
        let connector = running.connector.take();
        *running = self.start()?;
        running.connector = connector;
        Ok(())
    }
}

fn connect_uri(args: &Args) -> String {
    format!("http://127.0.0.1:{}", args.connect_port)
}

/// Starts the contender's process in `group`.
fn start(
    args: &Args,
    contender: Contender,
    group: &Cgroup,
    id: &str,
    topic: &str,
) -> Result<Running> {
    let child = match contender {
        Contender::Millpond => start_millpond(args, id, topic)?,
        Contender::Connect => start_worker(args, id)?,
    };
    group.add(child.id())?;
    if contender == Contender::Connect {
        Connect::new(&connect_uri(args)).wait_ready(Duration::from_secs(180))?;
    }
    Ok(Running {
        child,
        connector: None,
    })
}

/// The consumer as the operator runs it in a pod, into the stack's catalog.
fn start_millpond(args: &Args, id: &str, topic: &str) -> Result<Child> {
    let table = format!("iceberg://connect_bench/{id}");
    let group = format!("bench-{id}");
    let metrics = free_port().context("a port for the consumer's metrics")?;
    Command::new(&args.consumer_bin)
        .env("KAFKA_BOOTSTRAP_SERVERS", &args.bootstrap_servers)
        .env("KAFKA_TOPIC", topic)
        .env("KAFKA_GROUP_ID", group)
        .env("SINK_URL", table)
        .env("MEMORY_BUDGET", format!("{}Mi", args.memory_mib))
        .env(
            "ICEBERG_COMMIT_INTERVAL_SECONDS",
            args.commit_interval.to_string(),
        )
        .env("ICEBERG_CATALOG_URI", stack_var("ICEBERG_REST_URI"))
        .env("AWS_ENDPOINT", stack_var("S3_ENDPOINT"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", stack_var("S3_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", stack_var("S3_SECRET_ACCESS_KEY"))
        .env("AWS_REGION", stack_var("S3_REGION"))
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            args.scratch.join(format!("{id}.log")),
        )?)
        .spawn()
        .with_context(|| format!("starting {}", args.consumer_bin.display()))
}

/// A Kafka Connect worker of its own for the benchmark (its own port, group
/// and state), its log in the scratch directory.
fn start_worker(args: &Args, id: &str) -> Result<Child> {
    let log = args.scratch.join(format!("{id}-worker.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let flush_ms = args.connect_offset_flush_ms.map(|ms| ms.to_string());
    Command::new(&args.connect_worker)
        .env(
            "MILLPOND_CONNECT_OFFSET_FLUSH_MS",
            flush_ms.unwrap_or_default(),
        )
        .env("MILLPOND_CONNECT_PORT", args.connect_port.to_string())
        .env("MILLPOND_CONNECT_GROUP", "millpond-connect-bench")
        .env("MILLPOND_STATE_DIR", args.scratch.join("state"))
        // The AWS SDK would otherwise ask for an instance's metadata.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", args.connect_worker.display()))
}

/// The connector for `table`, committing through a control topic of its own.
fn create_connector(args: &Args, id: &str, table: &str, topic: &str) -> Result<()> {
    let control = format!("{id}-control");
    block_on(kafka::create_topic(&args.bootstrap_servers, &control, 1))?;
    let config = connect::iceberg_sink(
        topic,
        table,
        &control,
        args.commit_interval,
        args.connect_tasks,
    );
    Connect::new(&connect_uri(args)).create(id, &config)
}

/// Fails when the process exited or the connector failed.
fn check_alive(running: &mut Running) -> Result<()> {
    if let Some(status) = running.child.try_wait()? {
        bail!("the contender exited: {status} (its log is in the scratch directory)");
    }
    if let Some((connect, name)) = &running.connector {
        if let Some(trace) = connect.failure(name) {
            bail!(
                "connector {name} failed: {}",
                trace.lines().take(5).collect::<Vec<_>>().join(" | ")
            );
        }
    }
    Ok(())
}

/// Whether `group` has committed every partition of `topic` to its end.
fn committed_to_end(args: &Args, group: &str, topic: &str) -> Result<bool> {
    let ends = kafka::high_watermarks(&args.bootstrap_servers, topic, args.partitions)?;
    Ok(kafka::committed(&args.bootstrap_servers, group, topic, args.partitions)? == ends)
}

/// Stops the contender as its operator would: SIGTERM (Millpond hands off
/// and exits; the worker leaves its group), the connector deleted first.
fn stop(mut running: Running) -> Result<()> {
    if let Some((connect, name)) = &running.connector {
        connect.delete(name)?;
    }
    Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            running.child.kill()?;
            bail!("the contender did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
