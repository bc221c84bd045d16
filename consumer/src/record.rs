//! Turning one Kafka record into one NDJSON line.
//!
//! Every sink receives the same representation: the record value's JSON object
//! on one line, optionally with metadata fields (`_topic`, `_partition`,
//! `_offset`, `_timestamp`) spliced in front of the value's own fields. A record
//! whose value is not a JSON object cannot be delivered and is reported as a
//! [`Rejected`] reason (dead-letter topic or stop, never dropped).

use serde::de::IgnoredAny;

/// Where a record came from, for the metadata fields.
#[derive(Debug, Clone, Copy)]
pub struct RecordMeta<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
}

/// Why a record cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

/// Appends `value` as one NDJSON line to `out`, or says why it cannot.
/// On error `out` is left unchanged.
pub fn encode_line(
    out: &mut Vec<u8>,
    value: Option<&[u8]>,
    meta: Option<&RecordMeta<'_>>,
) -> Result<(), Rejected> {
    let value = value.ok_or_else(|| Rejected("record has no value (tombstone)".into()))?;
    let trimmed = value.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return Err(Rejected("value is not a JSON object".into()));
    }
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(trimmed) {
        return Err(Rejected(format!("value is not valid JSON: {e}")));
    }
    // A JSON object may contain newlines between tokens; one line per record.
    let compacted;
    let object: &[u8] = if memchr::memchr2(b'\n', b'\r', trimmed).is_some() {
        let parsed: serde_json::Value =
            serde_json::from_slice(trimmed).map_err(|e| Rejected(e.to_string()))?;
        compacted = serde_json::to_vec(&parsed).map_err(|e| Rejected(e.to_string()))?;
        &compacted
    } else {
        trimmed
    };
    match meta {
        None => out.extend_from_slice(object),
        Some(meta) => {
            out.extend_from_slice(b"{\"_topic\":");
            // Topic names are [a-zA-Z0-9._-]; serialize anyway to stay valid JSON.
            serde_json::to_writer(&mut *out, meta.topic).expect("writing to a Vec");
            out.extend_from_slice(
                format!(
                    ",\"_partition\":{},\"_offset\":{}",
                    meta.partition, meta.offset
                )
                .as_bytes(),
            );
            if let Some(ts) = meta.timestamp_ms {
                out.extend_from_slice(format!(",\"_timestamp\":{ts}").as_bytes());
            }
            let rest = object[1..].trim_ascii_start();
            if rest.first() != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
        }
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(value: &[u8], meta: Option<&RecordMeta<'_>>) -> Result<String, Rejected> {
        let mut out = Vec::new();
        encode_line(&mut out, Some(value), meta)?;
        Ok(String::from_utf8(out).unwrap())
    }

    const META: RecordMeta<'static> = RecordMeta {
        topic: "orders",
        partition: 3,
        offset: 42,
        timestamp_ms: Some(1700000000000),
    };

    #[test]
    fn a_json_object_becomes_one_line() {
        assert_eq!(line(br#" {"id":1} "#, None).unwrap(), "{\"id\":1}\n");
    }

    #[test]
    fn multi_line_objects_are_compacted() {
        let out = line(b"{\n  \"id\": 1,\n  \"s\": \"x\"\n}", None).unwrap();
        assert_eq!(out.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn metadata_fields_are_spliced_in() {
        let v: serde_json::Value =
            serde_json::from_str(&line(br#"{"id":7}"#, Some(&META)).unwrap()).unwrap();
        assert_eq!(v["_topic"], "orders");
        assert_eq!(v["_partition"], 3);
        assert_eq!(v["_offset"], 42);
        assert_eq!(v["id"], 7);
        let empty: serde_json::Value =
            serde_json::from_str(&line(b"{}", Some(&META)).unwrap()).unwrap();
        assert_eq!(empty["_offset"], 42);
    }

    #[test]
    fn non_objects_and_broken_json_are_rejected_and_leave_output_untouched() {
        let mut out = b"keep".to_vec();
        for bad in [&b"[1,2]"[..], b"42", b"{\"id\":", b"not json"] {
            assert!(encode_line(&mut out, Some(bad), None).is_err());
        }
        assert!(encode_line(&mut out, None, None)
            .unwrap_err()
            .0
            .contains("tombstone"));
        assert_eq!(out, b"keep");
    }
}
