"""An independent reader (and, for checks of the stack, writer) of Iceberg
tables: pyiceberg with pyarrow, not Millpond's code.

    table.py [--sql] create NAMESPACE.TABLE [PARTITION]   create a table of the test
                                                  records (id long required,
                                                  pad string), partitioned by
                                                  PARTITION: bucket (of id), or
                                                  transforms (identity, hour,
                                                  month, bucket, truncate on
                                                  region, at, on, id, pad; and
                                                  a uuid column, key)
    table.py append NAMESPACE.TABLE FIRST COUNT   append ids FIRST..FIRST+COUNT
    table.py ids NAMESPACE.TABLE                  print {"rows", "distinct",
                                                  "duplicates", "min", "max",
                                                  "data_files", "median_file_bytes",
                                                  "snapshots", "columns", "keys"
                                                  (distinct uuids in column key),
                                                  "summary"}
                                                  as JSON

Reaches the catalog and the store through the stack's environment
(`eval "$(e2e/stack env)"`): ICEBERG_REST_URI (or, with --sql, the SQL
catalog at ICEBERG_SQL_URL and ICEBERG_WAREHOUSE), S3_ENDPOINT, S3_REGION,
S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY.
"""

import json
import os
import sys
from statistics import median as _median

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import load_catalog


def catalog():
    env = os.environ
    if SQL:
        # The SQL catalog the sink keeps in PostgreSQL, under its name.
        where = {
            "type": "sql",
            "uri": env["ICEBERG_SQL_URL"].replace("postgresql://", "postgresql+psycopg2://", 1),
            "warehouse": env["ICEBERG_WAREHOUSE"],
        }
        name = "millpond"
    else:
        where = {"type": "rest", "uri": env["ICEBERG_REST_URI"]}
        name = "stack"
    return load_catalog(
        name,
        **where,
        **{
            "s3.endpoint": env["S3_ENDPOINT"],
            # Without a region pyarrow asks AWS where the bucket is.
            "s3.region": env["S3_REGION"],
            "s3.access-key-id": env["S3_ACCESS_KEY_ID"],
            "s3.secret-access-key": env["S3_SECRET_ACCESS_KEY"],
            "s3.path-style-access": "true",
        },
    )


def create(name, partition=None):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import (
        BucketTransform,
        HourTransform,
        IdentityTransform,
        MonthTransform,
        TruncateTransform,
    )
    from pyiceberg.types import (
        DateType,
        LongType,
        NestedField,
        StringType,
        TimestamptzType,
        UUIDType,
    )

    cat = catalog()
    cat.create_namespace_if_not_exists(name.split(".")[0])
    fields = [
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "pad", StringType(), required=False),
    ]
    spec = PartitionSpec()
    if partition == "bucket":
        spec = PartitionSpec(PartitionField(1, 1000, BucketTransform(4), "id_bucket"))
    elif partition == "transforms":
        # One field of each kind of transform, on columns of their own.
        fields += [
            NestedField(3, "region", StringType(), required=False),
            NestedField(4, "at", TimestamptzType(), required=False),
            NestedField(5, "on", DateType(), required=False),
            NestedField(6, "key", UUIDType(), required=False),
        ]
        spec = PartitionSpec(
            PartitionField(3, 1000, IdentityTransform(), "region"),
            PartitionField(4, 1001, HourTransform(), "at_hour"),
            PartitionField(5, 1002, MonthTransform(), "on_month"),
            PartitionField(1, 1003, BucketTransform(4), "id_bucket"),
            PartitionField(2, 1004, TruncateTransform(2), "pad_trunc"),
        )
    elif partition is not None:
        sys.exit(f"unknown partition {partition}")
    cat.create_table(name, schema=Schema(*fields), partition_spec=spec)


def append(name, first, count):
    cat = catalog()
    namespace = name.split(".")[0]
    cat.create_namespace_if_not_exists(namespace)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("payload", pa.string())])
    table = cat.create_table_if_not_exists(name, schema=schema)
    ids = list(range(first, first + count))
    table.append(pa.table({"id": ids, "payload": [f"p{i}" for i in ids]}, schema=schema))


def median(values):
    return int(_median(values)) if values else None


def ids(name):
    table = catalog().load_table(name)
    data = table.scan(selected_fields=("id",)).to_arrow()
    column = data.column("id")
    distinct = len(pc.unique(column)) if len(column) else 0
    snapshot = table.current_snapshot()
    files = list(table.scan().plan_files())
    columns = [f.name for f in table.schema().fields]
    keys = None
    if "key" in columns:
        key = table.scan(selected_fields=("key",)).to_arrow().column("key")
        # As plain binary: pyarrow has no unique() of fixed-size binary.
        keys = len(pc.unique(key.drop_null().cast(pa.binary())))
    print(
        json.dumps(
            {
                "rows": len(column),
                "distinct": distinct,
                "duplicates": len(column) - distinct,
                "min": pc.min(column).as_py() if len(column) else None,
                "max": pc.max(column).as_py() if len(column) else None,
                "data_files": [f.file.file_path for f in files],
                "median_file_bytes": median([f.file.file_size_in_bytes for f in files]),
                "snapshots": len(table.snapshots()),
                "columns": columns,
                "keys": keys,
                "summary": dict(snapshot.summary.additional_properties) if snapshot else {},
            }
        )
    )


SQL = False


def main(argv):
    global SQL
    if len(argv) > 1 and argv[1] == "--sql":
        SQL = True
        argv = argv[:1] + argv[2:]
    if len(argv) in (3, 4) and argv[1] == "create":
        create(argv[2], argv[3] if len(argv) == 4 else None)
    elif len(argv) == 5 and argv[1] == "append":
        append(argv[2], int(argv[3]), int(argv[4]))
    elif len(argv) == 3 and argv[1] == "ids":
        ids(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
