//! The Prometheus text format, as the consumer pods expose it and the
//! operator (and the tests' kit) read it: samples with their labels.
//!
//! Written here rather than taken from a crate: the parsers on crates.io
//! either split label values on `,` and `=` and end them at the first `}`
//! (`prometheus-parse`), which a sink's last error (`millpond_sink_last_error_info{error="..."}`,
//! URLs, JSON) breaks, or are unmaintained single releases, or LGPL. This one
//! reads the exposition format's escapes (`\\`, `\"`, `\n`) inside quoted
//! label values, wherever the value has commas, equals signs or braces.

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name (with its `_total`, `_sum`, `_bucket` suffix).
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, empty when absent.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// Every sample of `text`, in order (comments, timestamps and malformed
/// lines left out).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// `k="v",...}` and what follows the closing brace.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = quoted(after)?;
        labels.insert(key.trim().to_string(), value);
        rest = after;
    }
}

/// The unescaped text up to the closing quote of a label value, and what
/// follows that quote.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_keep_commas_equals_braces_and_escapes() {
        let text = concat!(
            "# HELP millpond_sink_last_error_info The sink's last error.\n",
            "millpond_sink_last_error_info{error=\"PUT http://s3/b?x=1&y=2: {\\\"code\\\": 503}, retry\\nlater\",sink=\"s3\"} 1\n",
        );
        let samples = parse(text);
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0].label("error"),
            "PUT http://s3/b?x=1&y=2: {\"code\": 503}, retry\nlater"
        );
        assert_eq!(samples[0].label("sink"), "s3");
        assert_eq!(samples[0].value, 1.0);
    }

    #[test]
    fn values_infinities_timestamps_and_malformed_lines() {
        let samples =
            parse("a 1.5e3\nb{le=\"+Inf\"} +Inf 1700000000000\nc NaN\nbroken{x=\"1\" 2\nd\n");
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(samples[0].value, 1500.0);
        assert_eq!(samples[1].value, f64::INFINITY);
        assert!(samples[2].value.is_nan());
    }
}
