//! The Markdown report: only arithmetic on what `measure` found (medians,
//! rates, ratios) and words.

use std::fmt::Write as _;

use crate::measure::{Machine, Run, CONTENDERS};
use crate::Args;

/// The run's date, the machine and the broker.
pub fn header(args: &Args, machine: &Machine) -> String {
    let memory = machine
        .memory_kb
        .as_ref()
        .map(|kb| format!("{} GiB RAM", kb.parse::<u64>().unwrap_or(0) >> 20))
        .unwrap_or_default();
    format!(
        "## Run of {}\n\nMachine: {} cores, {memory} (`nproc`, /proc/meminfo); broker: local single-node KRaft on {}.\n\n",
        machine.date, machine.cores, args.bootstrap_servers,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The throughput comparison: a table of every contender, then the ratios.
/// `runs` in [`CONTENDERS`] order.
pub fn throughput(args: &Args, runs: &[Vec<Run>]) -> String {
    let records = args.records as f64;
    let whole: Vec<f64> = runs
        .iter()
        .map(|r| match r.is_empty() {
            true => f64::NAN,
            false => median(r.iter().map(|x| records / x.seconds).collect()),
        })
        .collect();
    let steady: Vec<Option<f64>> = runs
        .iter()
        .map(|r| {
            let v: Vec<f64> = r.iter().filter_map(|x| x.steady).collect();
            (!v.is_empty()).then(|| median(v))
        })
        .collect();
    let mut out = throughput_table(args, runs, &whole, &steady);
    out += &throughput_ratios(args, runs, &whole, &steady);
    out
}

fn throughput_table(
    args: &Args,
    runs: &[Vec<Run>],
    whole: &[f64],
    steady: &[Option<f64>],
) -> String {
    let records = args.records as f64;
    let mb = |rate: f64| rate * args.size as f64 / 1e6;
    let mut out = format!(
        "### Throughput: {} records of {} B over {} partitions\n\n",
        args.records, args.size, args.partitions
    );
    out += "| contender | whole run, records/s (median) | steady state, records/s | steady MB/s | runs, whole (records/s) |\n|---|---:|---:|---:|---|\n";
    for (i, name) in CONTENDERS.iter().enumerate() {
        if runs[i].is_empty() {
            continue;
        }
        let each = runs[i]
            .iter()
            .map(|x| format!("{:.0}", records / x.seconds))
            .collect::<Vec<_>>()
            .join(", ");
        let (st, st_mb) = steady[i].map_or(("–".into(), "–".into()), |r| {
            (format!("{r:.0}"), format!("{:.0}", mb(r)))
        });
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {st} | {st_mb} | {each} |",
            whole[i]
        );
    }
    out
}

fn throughput_ratios(
    args: &Args,
    runs: &[Vec<Run>],
    whole: &[f64],
    steady: &[Option<f64>],
) -> String {
    let ratio = |a: usize, b: usize| whole[a] / whole[b];
    let mut out = format!(
        "\nRatios of whole runs (medians of {} rounds; each round runs every contender once, in the order above): NDJSON / kcat → file **{:.2}x**, NDJSON / kcat → /dev/null {:.2}x, Parquet / kcat → file **{:.2}x**, HTTP / kcat → file {:.2}x.\n",
        args.runs,
        ratio(2, 0),
        ratio(2, 1),
        ratio(3, 0),
        ratio(4, 0)
    );
    if !runs[5].is_empty() {
        let _ = writeln!(
            out,
            "Iceberg / Parquet file sink **{:.2}x**, Iceberg / kcat → file {:.2}x (one snapshot per flush, each commit a round trip to the catalog).",
            ratio(5, 3),
            ratio(5, 0)
        );
    }
    if let (Some(m), Some(k)) = (steady[2], steady[0]) {
        let _ = writeln!(
            out,
            "Steady state, NDJSON / kcat → file: **{:.2}x**.",
            m / k
        );
    }
    out += "\nA millpond run starts the process, joins the group, and ends after its final flush, fsync and commit; kcat reads without a group and never fsyncs.\n\n";
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn under(peak_mib: f64, budget_mib: f64) -> &'static str {
    if peak_mib <= budget_mib {
        "under the budget"
    } else {
        "OVER the budget"
    }
}

/// The memory comparison's heading and its first two rows.
pub fn memory_table(args: &Args, bounded: &Run, defaults: &Run) -> String {
    let gb = args.backlog_records as f64 * args.size as f64 / 1e9;
    let mut out = format!(
        "### Memory: catch-up on a {gb:.1} GB backlog ({} records over {} partitions)\n\n",
        args.backlog_records, args.partitions
    );
    out += "| run | peak RSS | time |\n|---|---:|---:|\n";
    let _ = writeln!(
        out,
        "| `MEMORY_BUDGET={}` (derived prefetch bounds) | {:.0} MiB | {:.0}s |",
        args.budget,
        mib(bounded.peak_rss_kib),
        bounded.seconds
    );
    let _ = writeln!(out, "| librdkafka default prefetch (64 MiB queue, 50 MiB fetch), same flush size | {:.0} MiB | {:.0}s |", mib(defaults.peak_rss_kib), defaults.seconds);
    out
}

/// The memory comparison's row of the Iceberg sink at 128 MiB.
pub fn memory_iceberg_row(iceberg: &Run) -> String {
    let peak = mib(iceberg.peak_rss_kib);
    format!(
        "| Iceberg table, `MEMORY_BUDGET=128Mi` | {peak:.0} MiB ({}) | {:.0}s |\n",
        under(peak, 128.0),
        iceberg.seconds
    )
}

/// The bounded run against its budget and against the default prefetch.
pub fn memory_summary(args: &Args, bounded: &Run, defaults: &Run) -> String {
    let budget = budget_mib(&args.budget);
    let peak = mib(bounded.peak_rss_kib);
    format!(
        "\nBounded peak / budget: {:.2} ({}); bounded / default peak: **{:.2}**.\n\n",
        peak / budget,
        under(peak, budget),
        bounded.peak_rss_kib as f64 / defaults.peak_rss_kib.max(1) as f64
    )
}

/// A quantity such as `256Mi` or `1Gi` in MiB (a bare number is bytes).
fn budget_mib(q: &str) -> f64 {
    let (n, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "Gi" => n * 1024.0,
        "Mi" => n,
        _ => n / (1 << 20) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_mib() {
        assert_eq!(budget_mib("256Mi"), 256.0);
        assert_eq!(budget_mib("2Gi"), 2048.0);
        assert_eq!(budget_mib("1048576"), 1.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_upper_one() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
    }
}
