//! `report`: the runs of a directory judged by the simulator's definitions
//! over one horizon per workload, as Markdown tables and SVG plots; only
//! arithmetic on the samples `run` wrote.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use millpond_simulator::report::duration;
use millpond_simulator::svg::{self, Line, Panel};

use crate::measure::Sample;
use crate::{samples_path, Contender, ReportArgs, Workload};

/// What a run is judged by.
struct Judged {
    contender: Contender,
    samples: Vec<Sample>,
    summary: millpond_simulator::Summary,
    missing: u64,
    duplicates: u64,
    settled_at: f64,
}

/// Prints a table per workload with runs in `--dir`, each followed by a
/// link to its plot when `--svg-dir` is given (the plot written there).
pub fn report(args: &ReportArgs) -> Result<()> {
    let mut out = String::new();
    for workload in Workload::ALL {
        let runs = read_runs(&args.dir, workload)?;
        if runs.is_empty() {
            continue;
        }
        let horizon = runs
            .iter()
            .map(|(_, s)| s.last().map_or(0.0, |s| s.t).ceil() as u64)
            .max()
            .unwrap_or(0);
        let judged: Vec<Judged> = runs
            .into_iter()
            .map(|(contender, samples)| judge(contender, samples, horizon, args.records))
            .collect();
        out += &table(workload, &judged, horizon);
        if let Some(dir) = &args.svg_dir {
            let path = dir.join(format!("keda-{}.svg", workload.name()));
            std::fs::write(&path, plot(workload, &judged, horizon))
                .with_context(|| format!("writing {}", path.display()))?;
            // Linked from a document beside the plots.
            let _ = writeln!(
                out,
                "![{0} burst, KEDA and Millpond](keda-{0}.svg)\n",
                workload.name()
            );
        }
    }
    print!("{out}");
    Ok(())
}

/// The samples of every contender that ran `workload`.
fn read_runs(dir: &Path, workload: Workload) -> Result<Vec<(Contender, Vec<Sample>)>> {
    Contender::ALL
        .iter()
        .filter_map(|&c| {
            let path = samples_path(dir, workload, c);
            path.exists().then(|| read_samples(&path).map(|s| (c, s)))
        })
        .collect()
}

fn read_samples(path: &Path) -> Result<Vec<Sample>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let samples: Vec<Sample> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if samples.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(samples)
}

/// A run of `records` records judged over `horizon` seconds.
fn judge(contender: Contender, samples: Vec<Sample>, horizon: u64, records: u64) -> Judged {
    let last = samples.last().expect("non-empty").clone();
    Judged {
        contender,
        summary: millpond_simulator::summarize(&per_second(&samples, horizon), vec![]),
        missing: records.saturating_sub(last.delivered),
        duplicates: last.duplicates,
        settled_at: last.t,
        samples,
    }
}

/// A run as the simulator's per-second samples, held at its last values up
/// to `horizon` seconds.
fn per_second(samples: &[Sample], horizon: u64) -> Vec<millpond_simulator::Sample> {
    let mut out = Vec::with_capacity(horizon as usize + 1);
    let mut i = 0;
    let mut produced_before = 0i64;
    for t in 0..=horizon {
        while i + 1 < samples.len() && samples[i + 1].t <= t as f64 {
            i += 1;
        }
        let s = &samples[i];
        out.push(millpond_simulator::Sample {
            t,
            produce: (s.produced - produced_before).max(0) as f64,
            lag: s.lag as f64,
            healthy_lag: s.lag as f64,
            replicas: s.replicas.max(0) as u32,
            flush_bytes: 0,
            max_in_flight: 0,
            fullness: 0.0,
        });
        produced_before = s.produced;
    }
    out
}

fn table(workload: Workload, judged: &[Judged], horizon: u64) -> String {
    let mut out = format!(
        "### {}\n\n| contender | time to drain | replica-seconds (over {}) | scale events | flaps | peak replicas | missing | duplicated | back at its minimum after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        workload.name(),
        duration(horizon)
    );
    for j in judged {
        let s = &j.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            j.contender.name(),
            duration(s.time_to_drain),
            s.replica_seconds,
            s.scale_events,
            s.flaps,
            s.max_replicas,
            j.missing,
            j.duplicates,
            duration(j.settled_at.round() as u64),
        );
    }
    out.push('\n');
    out
}

/// Lag, replicas and deliveries over time, a line per contender.
fn plot(workload: Workload, judged: &[Judged], horizon: u64) -> String {
    let line = |j: &Judged, f: fn(&Sample) -> f64, steps: bool| Line {
        color: j.contender.color(),
        points: j
            .samples
            .iter()
            .map(|s| (s.t.round() as u64, f(s)))
            .collect(),
        steps,
    };
    let panel = |title: &str, f: fn(&Sample) -> f64, steps: bool| Panel {
        title: title.into(),
        lines: judged.iter().map(|j| line(j, f, steps)).collect(),
    };
    let panels = [
        panel("lag (records, read from Kafka)", |s| s.lag as f64, false),
        panel(
            "replicas (the Deployment's spec)",
            |s| s.replicas as f64,
            true,
        ),
        panel(
            "records delivered to the sink",
            |s| s.delivered as f64,
            false,
        ),
    ];
    let legend: Vec<(&str, &str)> = judged
        .iter()
        .map(|j| (j.contender.color(), j.contender.name()))
        .collect();
    svg::render(
        &format!(
            "{} burst on the real stack: KEDA and Millpond",
            workload.name()
        ),
        &legend,
        &panels,
        horizon,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, replicas: i32, produced: i64, lag: i64) -> Sample {
        Sample {
            t,
            replicas,
            ready: replicas,
            produced,
            lag,
            delivered: (produced - lag) as u64,
            duplicates: 0,
        }
    }

    #[test]
    fn a_run_is_held_at_its_last_sample_up_to_the_horizon() {
        let samples = [
            sample(0.0, 1, 0, 0),
            sample(2.0, 4, 1000, 900),
            sample(4.0, 1, 1000, 0),
        ];
        let s = per_second(&samples, 6);
        assert_eq!(s.len(), 7);
        let replicas: Vec<u32> = s.iter().map(|s| s.replicas).collect();
        assert_eq!(replicas, [1, 1, 4, 4, 1, 1, 1]);
        // The records arrive once, in the second they were first seen.
        let produce: Vec<f64> = s.iter().map(|s| s.produce).collect();
        assert_eq!(produce, [0.0, 0.0, 1000.0, 0.0, 0.0, 0.0, 0.0]);
        let summary = millpond_simulator::summarize(&s, vec![]);
        assert_eq!(summary.replica_seconds, 1 + 1 + 4 + 4 + 1 + 1 + 1);
        assert_eq!(summary.scale_events, 2);
    }
}
