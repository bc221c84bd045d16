//! The stack's Iceberg REST catalog (Apache Iceberg's own server on the S3
//! store) and the independent reader the sink's tests trust
//! (`e2e/iceberg/table.py`, pyiceberg): two appends through the catalog
//! land as two snapshots whose data files lie in the stack's bucket, and
//! the reader finds every id once.
//!
//! Needs `e2e/stack up iceberg` and `eval "$(e2e/stack env)"`.

use std::path::PathBuf;

use millpond_testkit::iceberg::{read, stack_var, table_py};

#[test]
#[ignore = "needs the stack's Iceberg REST catalog: e2e/stack up iceberg, then e2e/test"]
fn appends_through_the_rest_catalog_land_in_the_stacks_bucket_and_read_back_once() {
    let table = format!("stack_check.t{}", std::process::id());
    table_py(&["append", &table, "0", "700"]);
    table_py(&["append", &table, "700", "300"]);
    let read = read(&table, "none");
    read.assert_every_id_once(1000);
    assert_eq!(read.snapshots, 2, "{read:?}");
    let bucket = stack_var("S3_BUCKET");
    assert_eq!(read.data_files.len(), 2, "{read:?}");
    for file in &read.data_files {
        let key = file
            .strip_prefix(&format!("s3://{bucket}/"))
            .unwrap_or_else(|| panic!("{file} is not in bucket {bucket}"));
        let on_disk = PathBuf::from(stack_var("S3_DATA_DIR"))
            .join(&bucket)
            .join(key);
        assert!(on_disk.is_file(), "{} is in the store", on_disk.display());
    }
}
