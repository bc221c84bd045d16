//! A plain SVG plot of runs of one workload: produce rate, lag, replicas,
//! the pods' buffer fullness and the tuned limits over time, one line per
//! policy.

use std::fmt::Write;

use super::{PolicyKind, Sample, Trace};

const WIDTH: f64 = 900.0;
const PANEL: f64 = 120.0;
const GAP: f64 = 34.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
/// Seconds between two plotted points.
const STEP: usize = 10;

fn color(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Millpond => "#1f77b4",
        PolicyKind::MillpondFixedLimits => "#2ca02c",
        PolicyKind::Keda => "#d62728",
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `x`, and how many grid steps
/// divide it into round numbers.
fn nice(x: f64) -> (f64, u32) {
    if x <= 0.0 {
        return (1.0, 4);
    }
    let p = 10f64.powf(x.log10().floor());
    [(1.0, 5), (2.0, 4), (5.0, 5), (10.0, 5)]
        .into_iter()
        .map(|(m, steps)| (m * p, steps))
        .find(|(v, _)| *v >= x * 0.999)
        .unwrap_or((10.0 * p, 5))
}

/// A grid label: `12.5k`, `2`, `0.5`.
fn label(v: f64) -> String {
    if v.abs() >= 1e3 {
        let (x, unit) = if v.abs() >= 1e6 {
            (v / 1e6, "M")
        } else {
            (v / 1e3, "k")
        };
        format!("{}{unit}", trim(x))
    } else {
        trim(v)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Line {
    /// Stroke colour.
    pub color: &'static str,
    /// Points `(second, value)`.
    pub points: Vec<(u64, f64)>,
    /// Drawn as steps (a value holds until the next point), else straight.
    pub steps: bool,
}

/// One panel: a title over lines sharing a y axis from 0.
#[derive(Debug, Clone)]
pub struct Panel {
    /// What the panel shows, with its unit.
    pub title: String,
    /// The lines.
    pub lines: Vec<Line>,
}

/// The plot of `traces` (runs of the same workload) as an SVG document.
pub fn plot(traces: &[Trace]) -> String {
    let Some(first) = traces.first() else {
        return String::new();
    };
    let series = |f: fn(&Sample) -> f64, t: &Trace| -> Vec<(u64, f64)> {
        t.samples
            .iter()
            .enumerate()
            .filter(|(i, _)| i % STEP == 0 || *i + 1 == t.samples.len())
            .map(|(_, s)| (s.t, f(s)))
            .collect()
    };
    let line = |t: &Trace, f: fn(&Sample) -> f64, steps: bool| Line {
        color: color(t.policy),
        points: series(f, t),
        steps,
    };
    let tuned: Vec<&Trace> = traces
        .iter()
        .filter(|t| t.policy == PolicyKind::Millpond)
        .collect();
    let panels = [
        Panel {
            title: "produce rate (records/s)".into(),
            lines: vec![Line {
                color: "#555555",
                ..line(first, |s| s.produce, false)
            }],
        },
        Panel {
            title: if first.workload.stuck.is_some() {
                "lag of the healthy partitions (records)".into()
            } else {
                "lag (records)".into()
            },
            lines: traces
                .iter()
                .map(|t| line(t, |s| s.healthy_lag, false))
                .collect(),
        },
        Panel {
            title: "replicas".into(),
            lines: traces
                .iter()
                .map(|t| line(t, |s| s.replicas as f64, true))
                .collect(),
        },
        Panel {
            title: "buffer fullness, fullest pod (buffered bytes / flushBytes)".into(),
            lines: traces
                .iter()
                .map(|t| line(t, |s| s.fullness, false))
                .collect(),
        },
        Panel {
            title: "flushBytes (MiB), millpond".into(),
            lines: tuned
                .iter()
                .map(|t| line(t, |s| s.flush_bytes as f64 / (1 << 20) as f64, true))
                .collect(),
        },
        Panel {
            title: "maxInFlight, millpond".into(),
            lines: tuned
                .iter()
                .map(|t| line(t, |s| s.max_in_flight as f64, true))
                .collect(),
        },
    ];
    let legend: Vec<(&str, &str)> = traces
        .iter()
        .map(|t| (color(t.policy), t.policy.name()))
        .collect();
    render(
        first.workload.title,
        &legend,
        &panels,
        first.samples.len().max(1) as u64,
    )
}

/// Panels stacked over a shared time axis of `duration` seconds, with a
/// title and a legend of `(colour, name)`, as an SVG document.
pub fn render(title: &str, legend: &[(&str, &str)], panels: &[Panel], duration: u64) -> String {
    let duration = duration.max(1) as f64;
    let height = TOP + panels.len() as f64 * (PANEL + GAP) + 20.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, (stroke, name)) in legend.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 16.0;
        let x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{stroke}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            x + 20.0,
            x + 25.0,
            y + 4.0,
            escape(name)
        );
    }
    for (k, panel) in panels.iter().enumerate() {
        let top = TOP + k as f64 * (PANEL + GAP) + 14.0;
        let (max, steps) = nice(
            panel
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.1))
                .fold(0.0, f64::max),
        );
        let x = |t: u64| LEFT + t as f64 / duration * plot_w;
        let y = |v: f64| top + PANEL - v / max * PANEL;
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
            top - 4.0,
            escape(&panel.title)
        );
        for g in 0..=steps {
            let v = max * g as f64 / steps as f64;
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#dddddd"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
                y(v),
                LEFT + plot_w,
                LEFT - 6.0,
                y(v) + 4.0,
                label(v)
            );
        }
        for (t, text) in ticks(duration as u64) {
            let xv = x(t);
            let _ = writeln!(
                out,
                r##"<line x1="{xv:.1}" y1="{top:.1}" x2="{xv:.1}" y2="{:.1}" stroke="#eeeeee"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{text}</text>"##,
                top + PANEL,
                top + PANEL + 13.0
            );
        }
        for line in &panel.lines {
            let mut d = String::new();
            let mut last: Option<f64> = None;
            for &(t, v) in &line.points {
                if line.steps {
                    if let Some(prev) = last {
                        let _ = write!(d, "{:.1},{:.1} ", x(t), y(prev));
                    }
                }
                let _ = write!(d, "{:.1},{:.1} ", x(t), y(v));
                last = Some(v);
            }
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                line.color,
                d.trim_end()
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// Time axis marks: every 5 or 10 minutes for long runs, every minute from
/// 5 minutes, every 15 s below.
fn ticks(duration: u64) -> Vec<(u64, String)> {
    let minutes = duration / 60;
    if minutes < 5 {
        return (0..=duration)
            .step_by(15)
            .map(|t| (t, format!("{t} s")))
            .collect();
    }
    let every = if minutes > 30 { 10 } else { 5 };
    (0..=minutes)
        .step_by(every)
        .map(|m| (m * 60, format!("{m} min")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice(0.0), (1.0, 4));
        assert_eq!(nice(7.0), (10.0, 5));
        assert_eq!(nice(12.0), (20.0, 4));
        assert_eq!(nice(40_000.0), (50_000.0, 5));
        assert_eq!(nice(2_000_000.0), (2_000_000.0, 4));
        assert_eq!(label(12_500.0), "12.5k");
        assert_eq!(label(2.0), "2");
        assert_eq!(label(0.5), "0.5");
    }

    #[test]
    fn short_runs_are_marked_in_seconds_long_ones_in_minutes() {
        let short: Vec<String> = ticks(62).into_iter().map(|t| t.1).collect();
        assert_eq!(short, ["0 s", "15 s", "30 s", "45 s", "60 s"]);
        let long = ticks(3_600);
        assert_eq!(long.len(), 7);
        assert_eq!(long[1], (600, "10 min".to_string()));
        assert_eq!(ticks(1_200)[1], (300, "5 min".to_string()));
    }
}
