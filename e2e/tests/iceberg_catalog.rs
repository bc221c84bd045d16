//! The stack's Iceberg REST catalog (Apache Iceberg's own server on the S3
//! store) and the independent reader the sink's tests trust
//! (`e2e/iceberg/table.py`, pyiceberg): two appends through the catalog
//! land as two snapshots whose data files lie in the stack's bucket, and
//! the reader finds every id once.
//!
//! Needs `e2e/stack up iceberg` and `eval "$(e2e/stack env)"`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `e2e/stack up iceberg` and `eval \"$(e2e/stack env)\"`")
    })
}

/// Runs `e2e/iceberg/table.py` with `args`; its standard output.
fn table_py(args: &[&str]) -> String {
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

#[test]
#[ignore = "needs the stack's Iceberg REST catalog: e2e/stack up iceberg, then e2e/test"]
fn appends_through_the_rest_catalog_land_in_the_stacks_bucket_and_read_back_once() {
    let table = format!("stack_check.t{}", std::process::id());
    table_py(&["append", &table, "0", "700"]);
    table_py(&["append", &table, "700", "300"]);
    let read: Value = serde_json::from_str(&table_py(&["ids", &table])).unwrap();
    assert_eq!(read["rows"], 1000, "{read}");
    assert_eq!(read["duplicates"], 0, "{read}");
    assert_eq!(
        (read["min"].clone(), read["max"].clone()),
        (0.into(), 999.into())
    );
    assert_eq!(read["snapshots"], 2, "{read}");
    let bucket = stack_var("S3_BUCKET");
    let files = read["data_files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{read}");
    for file in files {
        let key = file
            .as_str()
            .unwrap()
            .strip_prefix(&format!("s3://{bucket}/"))
            .unwrap_or_else(|| panic!("{file} is not in bucket {bucket}"));
        let on_disk = PathBuf::from(stack_var("S3_DATA_DIR"))
            .join(&bucket)
            .join(key);
        assert!(on_disk.is_file(), "{} is in the store", on_disk.display());
    }
}
