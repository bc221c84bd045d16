//! The report (Markdown) and the plot (SVG) of a benchmark run: only
//! arithmetic on what `measure` found.

use std::fmt::Write;

use crate::measure::{Contender, Outcome};
use crate::Args;

/// Seconds from the start to the moment the table first held `share` of
/// `records`, interpolated between snapshots (the start counts as 0 rows).
fn seconds_to(o: &Outcome, share: f64, records: u64) -> Option<f64> {
    let want = share * records as f64;
    let mut before = (o.started_ms, 0u64);
    for s in &o.snapshots {
        if s.total_records as f64 >= want {
            let (t0, r0) = before;
            let span = (s.total_records - r0) as f64;
            let part = if span > 0.0 {
                (want - r0 as f64) / span
            } else {
                1.0
            };
            let at = t0 as f64 + part * s.at_ms.saturating_sub(t0) as f64;
            return Some((at - o.started_ms as f64) / 1000.0);
        }
        before = (s.at_ms, s.total_records);
    }
    None
}

/// Figures of one run, as the report quotes them.
struct Figures {
    whole: f64,
    steady: Option<f64>,
    cpu_per_million: f64,
    first_snapshot_s: f64,
}

fn figures(o: &Outcome, records: u64) -> Figures {
    let all = seconds_to(o, 1.0, records).unwrap_or(f64::NAN);
    // Only when a snapshot lies between 10 % and 90 %: within one commit
    // the interpolation would only restate the whole run.
    let reaching = |share: f64| {
        o.snapshots
            .iter()
            .position(|s| s.total_records as f64 >= share * records as f64)
    };
    let steady = match (seconds_to(o, 0.1, records), seconds_to(o, 0.9, records)) {
        (Some(a), Some(b)) if b > a && reaching(0.1) != reaching(0.9) => {
            Some(0.8 * records as f64 / (b - a))
        }
        _ => None,
    };
    Figures {
        whole: records as f64 / all,
        steady,
        cpu_per_million: o.cpu_seconds / (records as f64 / 1e6),
        first_snapshot_s: o.snapshots.first().map_or(f64::NAN, |s| {
            s.at_ms.saturating_sub(o.started_ms) as f64 / 1000.0
        }),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn once(o: &Outcome, records: u64) -> String {
    let r = &o.read;
    let distinct = r.rows - r.duplicates;
    if r.duplicates == 0 && distinct == records && (r.min, r.max) == (Some(0), Some(records - 1)) {
        "every id once".into()
    } else {
        format!(
            "{} twice, {} missing",
            r.duplicates,
            records.saturating_sub(distinct)
        )
    }
}

fn memory(o: &Outcome) -> String {
    match (o.contender, o.limit_bytes) {
        (_, Some(limit)) => format!(
            "{:.0} MiB (limit {:.0} MiB, {} OOM kills)",
            mib(o.group_peak_bytes),
            mib(limit),
            o.oom_kills
        ),
        (Contender::Connect, None) => {
            format!("{:.0} MiB (heap -Xms256M -Xmx2G)", mib(o.group_peak_bytes))
        }
        _ => format!("{:.0} MiB", mib(o.group_peak_bytes)),
    }
}

/// The settings, a row per run not killed, the killed runs, the ratios.
pub fn report(args: &Args, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let n = args.records;
    let _ = writeln!(
        out,
        "{n} JSON records of {} B over {} partitions; commit interval {} s; Millpond at {} MiB, the connector with {} tasks, the worker's offset.flush.interval.ms {}.\n",
        args.size,
        args.partitions,
        args.commit_interval,
        args.memory_mib,
        args.connect_tasks,
        args.connect_offset_flush_ms
            .map_or("60000 (default)".to_string(), |ms| ms.to_string()),
    );
    let _ = writeln!(out, "| topic | contender | records/s (whole run) | records/s (10–90 %) | CPU-s per 1M records | peak RSS | peak memory of its cgroup | first snapshot after | snapshots | data files | median file | in the table |");
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
    );
    // Each run's figures, once: for its row and for the ratios.
    let runs: Vec<(&Outcome, Figures)> = outcomes
        .iter()
        .filter(|o| !o.killed)
        .map(|o| (o, figures(o, n)))
        .collect();
    for (o, f) in &runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {:.1}{} | {:.0} MiB | {} | {:.1} s | {} | {} | {:.1} MB | {} |",
            o.spread,
            o.contender.name(),
            f.whole,
            f.steady.map_or("–".into(), |s| format!("{s:.0}")),
            f.cpu_per_million,
            o.startup_cpu_seconds.map_or(String::new(), |s| format!(" (+{s:.1} s starting)")),
            o.peak_rss_kib as f64 / 1024.0,
            memory(o),
            f.first_snapshot_s,
            o.snapshots.len(),
            o.read.data_files.len(),
            o.read.median_file_bytes.unwrap_or(0) as f64 / 1e6,
            once(o, n),
        );
    }
    out += &killed(args, outcomes);
    let _ = writeln!(out, "\n{}", ratios(&runs, n));
    out
}

/// The runs killed part way: did every record still land once?
fn killed(args: &Args, outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "\nKilled with SIGKILL once {:.0} % of the records were in the table, then restarted:\n\n",
        args.kill_at * 100.0
    );
    out += "| contender | snapshots | rows | in the table |\n|---|---:|---:|---|\n";
    for o in outcomes.iter().filter(|o| o.killed) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            o.contender.name(),
            o.snapshots.len(),
            o.read.rows,
            once(o, args.records)
        );
    }
    out
}

/// Millpond over the peer, per topic: records per CPU-second and memory.
/// `runs`: the runs not killed, with their figures.
fn ratios(runs: &[(&Outcome, Figures)], records: u64) -> String {
    let mut out = String::new();
    for spread in ["even", "skewed"] {
        let pick = |c| {
            runs.iter()
                .find(|(o, _)| o.spread == spread && o.contender == c)
        };
        let (Some((m, fm)), Some((k, fk))) = (pick(Contender::Millpond), pick(Contender::Connect))
        else {
            continue;
        };
        let per_cpu = |o: &Outcome| records as f64 / o.cpu_seconds;
        let _ = writeln!(
            out,
            "- {spread}: Millpond {:.1}x the records per CPU-second, {:.1}x the records/s, {:.2}x the peak RSS ({:.0} vs {:.0} MiB).",
            per_cpu(m) / per_cpu(k),
            fm.whole / fk.whole,
            m.peak_rss_kib as f64 / k.peak_rss_kib as f64,
            m.peak_rss_kib as f64 / 1024.0,
            k.peak_rss_kib as f64 / 1024.0,
        );
    }
    out
}

/// Rows in the table over time, each contender's run on the evenly spread topic.
pub fn plot(outcomes: &[Outcome]) -> String {
    let runs: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.killed && o.spread == "even")
        .collect();
    let points = |o: &Outcome| -> Vec<(f64, f64)> {
        let mut p = vec![(0.0, 0.0)];
        for s in &o.snapshots {
            let t = s.at_ms.saturating_sub(o.started_ms) as f64 / 1000.0;
            p.push((t, p.last().unwrap().1));
            p.push((t, s.total_records as f64));
        }
        p
    };
    let series: Vec<Vec<(f64, f64)>> = runs.iter().map(|o| points(o)).collect();
    let max_t = series.iter().flatten().map(|p| p.0).fold(1.0, f64::max);
    let max_r = series.iter().flatten().map(|p| p.1).fold(1.0, f64::max);
    let (w, h, left, bottom) = (720.0, 360.0, 70.0, 40.0);
    let x = |t: f64| left + t / max_t * (w - left - 20.0);
    let y = |r: f64| h - bottom - r / max_r * (h - bottom - 30.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">Rows in the table over time (evenly spread topic), from the catalog's snapshots</text>\n\
         <line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"30\" x2=\"{left}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <text x=\"{2}\" y=\"{3}\" text-anchor=\"middle\">seconds since the start ({max_t:.0} s)</text>\n\
         <text x=\"8\" y=\"34\">{4:.1}M rows</text>\n",
        h - bottom,
        w - 20.0,
        (left + w) / 2.0,
        h - 8.0,
        max_r / 1e6,
    );
    for (i, (o, s)) in runs.iter().zip(&series).enumerate() {
        let colour = ["#1f77b4", "#d62728"][i % 2];
        let path: Vec<String> = s
            .iter()
            .map(|&(t, r)| format!("{:.1},{:.1}", x(t), y(r)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            left + 10.0,
            50.0 + 16.0 * i as f64,
            o.contender.name()
        );
    }
    svg.push_str("</svg>\n");
    svg
}
