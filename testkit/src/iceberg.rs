//! The stack's Iceberg tables as an independent reader sees them:
//! `e2e/iceberg/table.py` (pyiceberg with pyarrow, not Millpond's code)
//! through the stack's REST catalog and S3 store.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Context;

use crate::runtime::block_on;

/// A variable of `e2e/stack env`, or a panic that says how to get it.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `e2e/stack up iceberg` and `eval \"$(e2e/stack env)\"`")
    })
}

/// Which of the stack's catalogs holds a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    /// Apache Iceberg's REST catalog server (`ICEBERG_REST_URI`).
    Rest,
    /// The SQL catalog in the stack's PostgreSQL (`ICEBERG_SQL_URL`).
    Sql,
}

impl Catalog {
    /// What a consumer's `ICEBERG_CATALOG_URI` is set to.
    pub fn uri(self) -> String {
        match self {
            Catalog::Rest => stack_var("ICEBERG_REST_URI"),
            Catalog::Sql => stack_var("ICEBERG_SQL_URL"),
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Catalog::Rest => &[],
            Catalog::Sql => &["--sql"],
        }
    }

    /// Creates `namespace.table` for the test records (`id` long required,
    /// `pad` string), partitioned by `partition` if given (see table.py).
    pub fn create_table(self, name: &str, partition: Option<&str>) {
        let mut args = self.flags().to_vec();
        args.extend(["create", name]);
        args.extend(partition);
        table_py(&args);
    }

    /// Reads `namespace.table`, with the offsets the sink keeps for `topic`.
    pub fn read(self, table: &str, topic: &str) -> Read {
        self.try_read(table, topic)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Catalog::read`], or the reader's error (no such table yet).
    pub fn try_read(self, table: &str, topic: &str) -> Result<Read, String> {
        let mut args = self.flags().to_vec();
        args.extend(["ids", table]);
        run_table_py(&args).map(|out| parse_read(&out, topic))
    }
}

/// Runs `e2e/iceberg/table.py` with `args`; its standard output.
pub fn table_py(args: &[&str]) -> String {
    run_table_py(args).unwrap_or_else(|e| panic!("{e}"))
}

fn run_table_py(args: &[&str]) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/iceberg/table.py");
    let out = Command::new(stack_var("ICEBERG_PYTHON"))
        .arg(script)
        .args(args)
        .output()
        .expect("running the pyiceberg reader");
    if !out.status.success() {
        return Err(format!(
            "table.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

/// Creates `namespace.table` in the REST catalog ([`Catalog::create_table`]).
pub fn create_table(name: &str, partition: Option<&str>) {
    Catalog::Rest.create_table(name, partition);
}

/// What the reader finds in a table.
#[derive(Debug)]
pub struct Read {
    pub rows: u64,
    pub duplicates: u64,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub snapshots: u64,
    pub data_files: Vec<String>,
    pub median_file_bytes: Option<u64>,
    /// The current schema's top-level column names.
    pub columns: Vec<String>,
    /// Distinct values of the uuid column `key`, when the table has one.
    pub keys: Option<u64>,
    /// The current snapshot's `millpond.offsets.<topic>`.
    pub offsets: BTreeMap<i32, i64>,
}

impl Read {
    /// Panics unless the table holds ids `0..n`, each once.
    pub fn assert_every_id_once(&self, n: u64) {
        assert_eq!(self.duplicates, 0, "no record twice: {self:?}");
        assert_eq!(self.rows, n, "every record: {self:?}");
        assert_eq!((self.min, self.max), (Some(0), Some(n - 1)), "{self:?}");
    }
}

/// Reads `namespace.table` of the REST catalog ([`Catalog::read`]).
pub fn read(table: &str, topic: &str) -> Read {
    Catalog::Rest.read(table, topic)
}

fn parse_read(out: &str, topic: &str) -> Read {
    let json: serde_json::Value = serde_json::from_str(out).unwrap();
    let offsets = json["summary"][format!("millpond.offsets.{topic}")]
        .as_str()
        .map(|raw| {
            let map: BTreeMap<String, i64> = serde_json::from_str(raw).unwrap();
            map.into_iter()
                .map(|(p, o)| (p.parse().unwrap(), o))
                .collect()
        })
        .unwrap_or_default();
    let data_files = json["data_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    Read {
        rows: json["rows"].as_u64().unwrap(),
        duplicates: json["duplicates"].as_u64().unwrap(),
        min: json["min"].as_u64(),
        max: json["max"].as_u64(),
        snapshots: json["snapshots"].as_u64().unwrap(),
        data_files,
        median_file_bytes: json["median_file_bytes"].as_u64(),
        columns: json["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect(),
        keys: json["keys"].as_u64(),
        offsets,
    }
}

/// A snapshot of a table, as the REST catalog lists it.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// When it was committed, milliseconds since the epoch (the catalog's clock).
    pub at_ms: u64,
    /// Rows in the table as of this snapshot (`total-records`).
    pub total_records: u64,
}

/// The snapshots of `namespace.table` in the stack's REST catalog, oldest
/// first: how a table filled, without reading its files. It blocks on the
/// test kit's runtime: call it from synchronous code only.
pub fn snapshots(table: &str) -> anyhow::Result<Vec<Snapshot>> {
    let (namespace, name) = table.split_once('.').expect("namespace.table");
    let url = format!(
        "{}/v1/namespaces/{namespace}/tables/{name}",
        stack_var("ICEBERG_REST_URI")
    );
    let text = block_on(async { reqwest::get(&url).await?.error_for_status()?.text().await })
        .with_context(|| format!("reading {url}"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing the answer of {url}"))?;
    let mut snapshots: Vec<Snapshot> = body["metadata"]["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Snapshot {
            at_ms: s["timestamp-ms"].as_u64().unwrap_or(0),
            total_records: s["summary"]["total-records"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
        .collect();
    snapshots.sort_by_key(|s| s.at_ms);
    Ok(snapshots)
}
