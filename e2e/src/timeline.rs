//! The timeline of a journey: what the operator and the sink showed, sample
//! by sample, its summary, and its plot.
//!
//! `e2e/tests/journey.sh` appends one JSON object per sample (from `kubectl
//! get mpc` and the test sink's `/stats`) to a file; `millpond-timeline` turns
//! that into the JSON and SVG kept in `docs/`.

use millpond_simulator::svg::{self, Line, Panel};
use serde::{Deserialize, Serialize};

/// One sample of the journey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the journey started.
    pub t: u64,
    /// Replicas the operator decided (`status.replicas`).
    pub replicas: u32,
    /// Pods ready (`status.readyReplicas`).
    pub ready: u32,
    /// Records behind, over all partitions (`status.lag.total`).
    pub lag: u64,
    /// Flush size in force (`status.limits.flushBytes`).
    pub flush_bytes: u64,
    /// In-flight writes in force (`status.limits.maxInFlight`).
    pub max_in_flight: u32,
    /// The fullest pod's buffer (`status.bufferFullness`: buffered bytes
    /// over flushBytes; 1 and more while it waits on the sink).
    #[serde(default)]
    pub fullness: f64,
    /// Distinct records the sink acknowledged.
    pub delivered: u64,
    /// Records the sink acknowledged more than once.
    pub duplicates: u64,
    /// Why the operator holds or scales (the `Scaling` condition's message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The figures of a journey.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Seconds covered.
    pub duration: u64,
    /// Highest lag seen.
    pub peak_lag: u64,
    /// Highest replica count decided.
    pub peak_replicas: u32,
    /// Replicas at the end.
    pub final_replicas: u32,
    /// First second the lag was 0 again after its peak.
    pub drained_at: Option<u64>,
    /// Decisions that added pods.
    pub scale_ups: u32,
    /// Decisions that removed pods.
    pub scale_downs: u32,
    /// Flush size at the start, its highest, and at the end.
    pub flush_bytes: Span,
    /// In-flight writes at the start, its highest, and at the end.
    pub max_in_flight: Span,
    /// Distinct records delivered at the end.
    pub delivered: u64,
    /// Duplicates at the end.
    pub duplicates: u64,
}

/// A tuned value over the journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub first: u64,
    pub max: u64,
    pub last: u64,
}

impl Span {
    fn of(values: impl Iterator<Item = u64> + Clone) -> Self {
        Span {
            first: values.clone().next().unwrap_or(0),
            max: values.clone().max().unwrap_or(0),
            last: values.last().unwrap_or(0),
        }
    }
}

/// Reads JSON lines; blank lines are skipped, a bad line is an error naming it.
pub fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| anyhow::anyhow!("timeline line {}: {e}", i + 1))
        })
        .collect()
}

/// The summary of `samples` (in time order).
pub fn summarize(samples: &[Sample]) -> Summary {
    let peak_lag = samples.iter().map(|s| s.lag).max().unwrap_or(0);
    let peak_at = samples.iter().position(|s| s.lag == peak_lag).unwrap_or(0);
    let changes = samples.windows(2).map(|w| (w[0].replicas, w[1].replicas));
    let last = samples.last();
    Summary {
        duration: last.map_or(0, |s| s.t),
        peak_lag,
        peak_replicas: samples.iter().map(|s| s.replicas).max().unwrap_or(0),
        final_replicas: last.map_or(0, |s| s.replicas),
        drained_at: samples[peak_at..]
            .iter()
            .find(|s| s.lag == 0 && peak_lag > 0)
            .map(|s| s.t),
        scale_ups: changes.clone().filter(|(a, b)| b > a).count() as u32,
        scale_downs: changes.filter(|(a, b)| b < a).count() as u32,
        flush_bytes: Span::of(samples.iter().map(|s| s.flush_bytes)),
        max_in_flight: Span::of(samples.iter().map(|s| s.max_in_flight as u64)),
        delivered: last.map_or(0, |s| s.delivered),
        duplicates: last.map_or(0, |s| s.duplicates),
    }
}

/// The plot: lag and delivered records, replicas decided and ready, the
/// fullest pod's buffer, flush size and in-flight writes.
pub fn plot(title: &str, samples: &[Sample]) -> String {
    let series = |f: fn(&Sample) -> f64| samples.iter().map(|s| (s.t, f(s))).collect();
    let line = |color, f: fn(&Sample) -> f64, steps| Line {
        color,
        points: series(f),
        steps,
    };
    const BLUE: &str = "#1f77b4";
    const GREY: &str = "#999999";
    let panels = [
        Panel {
            title: "lag (records)".into(),
            lines: vec![line(BLUE, |s| s.lag as f64, false)],
        },
        Panel {
            title: "records delivered to the sink".into(),
            lines: vec![line(BLUE, |s| s.delivered as f64, false)],
        },
        Panel {
            title: "replicas: decided, ready (grey)".into(),
            lines: vec![
                line(GREY, |s| s.ready as f64, true),
                line(BLUE, |s| s.replicas as f64, true),
            ],
        },
        Panel {
            title: "buffer fullness of the fullest pod".into(),
            lines: vec![line(BLUE, |s| s.fullness, false)],
        },
        Panel {
            title: "flushBytes (KiB)".into(),
            lines: vec![line(BLUE, |s| s.flush_bytes as f64 / 1024.0, true)],
        },
        Panel {
            title: "maxInFlight".into(),
            lines: vec![line(BLUE, |s| s.max_in_flight as f64, true)],
        },
    ];
    let duration = samples.last().map_or(1, |s| s.t);
    svg::render(
        title,
        &[(BLUE, "millpond"), (GREY, "ready pods")],
        &panels,
        duration,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, replicas: u32, lag: u64, flush_bytes: u64, delivered: u64) -> Sample {
        Sample {
            t,
            replicas,
            ready: replicas,
            lag,
            flush_bytes,
            max_in_flight: 2,
            fullness: 0.5,
            delivered,
            duplicates: 0,
            reason: None,
        }
    }

    #[test]
    fn the_summary_tells_peak_drain_and_scale_events() {
        let samples = [
            sample(0, 1, 0, 100, 0),
            sample(5, 1, 900, 100, 100),
            sample(10, 4, 600, 150, 400),
            sample(15, 6, 0, 225, 1000),
            sample(20, 5, 0, 225, 1000),
            sample(25, 1, 0, 150, 1000),
        ];
        let s = summarize(&samples);
        assert_eq!(s.peak_lag, 900);
        assert_eq!(s.peak_replicas, 6);
        assert_eq!(s.final_replicas, 1);
        // The lag of 0 before the burst is not "drained".
        assert_eq!(s.drained_at, Some(15));
        assert_eq!((s.scale_ups, s.scale_downs), (2, 2));
        assert_eq!(
            s.flush_bytes,
            Span {
                first: 100,
                max: 225,
                last: 150
            }
        );
        assert_eq!(s.delivered, 1000);
    }

    #[test]
    fn a_journey_that_never_drains_says_so() {
        let s = summarize(&[sample(0, 1, 10, 1, 0), sample(5, 2, 20, 1, 0)]);
        assert_eq!(s.drained_at, None);
        assert_eq!(summarize(&[]).drained_at, None);
    }

    #[test]
    fn lines_parse_and_a_bad_one_is_named() {
        let text = r#"{"t":0,"replicas":1,"ready":0,"lag":0,"flushBytes":1024,"maxInFlight":4,"delivered":0,"duplicates":0}

{"t":2,"replicas":1}"#;
        let err = parse(text).unwrap_err().to_string();
        assert!(err.starts_with("timeline line 3:"), "{err}");
        assert_eq!(
            parse(text.lines().next().unwrap()).unwrap()[0].flush_bytes,
            1024
        );
    }

    #[test]
    fn the_plot_has_a_panel_per_signal() {
        let svg = plot(
            "journey",
            &[sample(0, 1, 5, 1024, 0), sample(60, 3, 0, 2048, 5)],
        );
        for title in [
            "lag (records)",
            "replicas: decided",
            "buffer fullness of the fullest pod",
            "flushBytes (KiB)",
            "maxInFlight",
        ] {
            assert!(svg.contains(title), "{title}");
        }
        assert_eq!(svg.matches("<polyline").count(), 7);
    }
}
