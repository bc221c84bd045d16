//! The Prometheus text format as the benchmarks read it: samples with their
//! labels (parsed by `millpond_core::prom`, as the operator reads pods), sums
//! over label selections, and quantiles of a histogram from
//! the difference of two scrapes.

use std::collections::BTreeMap;

pub use millpond_core::prom::{parse, Sample};

/// The sum of the samples named `name` whose labels pass `keep`.
pub fn sum(samples: &[Sample], name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .sum()
}

/// The cumulative buckets of histogram `name` (`le` → count), summed over
/// every other label.
pub fn buckets(samples: &[Sample], name: &str) -> BTreeMap<Bound, f64> {
    let mut out = BTreeMap::new();
    let bucket = format!("{name}_bucket");
    for s in samples.iter().filter(|s| s.name == bucket) {
        let le = match s.label("le") {
            "+Inf" => f64::INFINITY,
            le => match le.parse() {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        *out.entry(Bound(le)).or_insert(0.0) += s.value;
    }
    out
}

/// A bucket's upper bound, ordered (never NaN).
#[derive(Debug, Clone, Copy)]
pub struct Bound(pub f64);

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Cumulative buckets `after` minus `before`: what was observed between two
/// scrapes.
pub fn bucket_delta(
    after: &BTreeMap<Bound, f64>,
    before: &BTreeMap<Bound, f64>,
) -> BTreeMap<Bound, f64> {
    after
        .iter()
        .map(|(le, v)| (*le, v - before.get(le).copied().unwrap_or(0.0)))
        .collect()
}

/// The `q` quantile of cumulative `buckets`, interpolated linearly inside
/// the bucket it falls in (as Prometheus' `histogram_quantile`). `None`
/// without observations; a quantile in the `+Inf` bucket is the highest
/// finite bound, with `true` (it is at least that).
pub fn quantile(buckets: &BTreeMap<Bound, f64>, q: f64) -> Option<(f64, bool)> {
    let total = *buckets.get(&Bound(f64::INFINITY))?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, &count) in buckets {
        if count >= rank {
            if le.0.is_infinite() {
                return Some((lower, true));
            }
            let inside = count - below;
            let fraction = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some((lower + (le.0 - lower) * fraction, false));
        }
        lower = le.0;
        below = count;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP apiserver_request_total Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",group="millpond.io",resource="millpondconsumers",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 1000
apiserver_request_total{code="200",component="apiserver",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 2
odd_label{text="a \"quoted\", word"} 1.5e3
process_resident_memory_bytes 4.2e+07
h_bucket{le="0.1"} 5
h_bucket{le="1"} 9
h_bucket{le="+Inf"} 10
h_count 10
"#;

    #[test]
    fn samples_with_labels() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 9);
        assert_eq!(samples[0].label("subresource"), "status");
        assert_eq!(samples[0].value, 1000.0);
        assert_eq!(samples[3].label("text"), "a \"quoted\", word");
        assert_eq!(samples[3].value, 1500.0);
        assert_eq!(
            sum(&samples, "process_resident_memory_bytes", |_| true),
            4.2e7
        );
        let deployments = sum(&samples, "apiserver_request_total", |s| {
            s.label("resource") == "deployments"
        });
        assert_eq!(deployments, 9.0);
    }

    #[test]
    fn quantiles_from_the_difference_of_two_scrapes() {
        let before = buckets(
            &parse("h_bucket{le=\"0.1\"} 5\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 5\n"),
            "h",
        );
        let after = buckets(&parse(TEXT), "h");
        let delta = bucket_delta(&after, &before);
        // 0 in (0, 0.1], 4 in (0.1, 1], 1 above 1.
        assert_eq!(quantile(&delta, 0.5), Some((0.1 + 0.9 * 2.5 / 4.0, false)));
        assert_eq!(quantile(&delta, 0.99), Some((1.0, true)));
        let whole = quantile(&after, 0.5).unwrap();
        assert!((whole.0 - 0.1).abs() < 1e-9 && !whole.1, "{whole:?}");
        assert_eq!(quantile(&bucket_delta(&before, &before), 0.5), None);
    }
}
