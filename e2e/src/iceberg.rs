//! The stack's Iceberg tables as an independent reader sees them:
//! `e2e/iceberg/table.py` (pyiceberg with pyarrow, not Millpond's code)
//! through the stack's REST catalog and S3 store.

use std::collections::BTreeMap;
use std::process::Command;

/// A variable of `e2e/stack env`, or a panic that says how to get it.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `e2e/stack up iceberg` and `eval \"$(e2e/stack env)\"`")
    })
}

/// Runs `e2e/iceberg/table.py` with `args`; its standard output.
pub fn table_py(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/iceberg/table.py");
    let out = Command::new(stack_var("ICEBERG_PYTHON"))
        .arg(script)
        .args(args)
        .output()
        .expect("running the pyiceberg reader");
    assert!(
        out.status.success(),
        "table.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates `namespace.table` for the test records (`id` long required,
/// `pad` string), partitioned by `partition` (`bucket`) if given.
pub fn create_table(name: &str, partition: Option<&str>) {
    let mut args = vec!["create", name];
    args.extend(partition);
    table_py(&args);
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

/// Reads `namespace.table`, with the offsets the sink keeps for `topic`.
pub fn read(table: &str, topic: &str) -> Read {
    let json: serde_json::Value = serde_json::from_str(&table_py(&["ids", table])).unwrap();
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
        offsets,
    }
}
