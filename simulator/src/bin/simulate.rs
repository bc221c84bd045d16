//! `millpond-simulate`: replays the scaling policy, and a KEDA-style
//! baseline, on a workload and prints what they decided.
//!
//! ```text
//! millpond-simulate --workload step --policy both --table --svg /tmp/step.svg
//! millpond-simulate report          # regenerates docs/autoscaling.md's results and plots
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use millpond_simulator::{self as simulate, report, svg, PolicyKind, Setup};

#[derive(Parser, Debug)]
#[command(
    name = "millpond-simulate",
    about = "Replay the Millpond scaling policy and a KEDA-style baseline on a workload trace",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Workload to run.
    #[arg(long, default_value = "step", value_parser = ["step", "sine", "stuck", "skewed", "sink-bound", "consume-bound"])]
    workload: String,

    /// Policy or policies to run.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    policy: Which,

    /// Print one row per decision.
    #[arg(long)]
    table: bool,

    /// Write a plot of the runs to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,

    /// spec.autoscaling.targetDrainSeconds of the simulated consumer.
    #[arg(long)]
    target_drain_seconds: Option<i32>,

    /// spec.autoscaling.scaleDownStabilizationSeconds.
    #[arg(long)]
    scale_down_stabilization_seconds: Option<i32>,

    /// spec.autoscaling.maxScaleDownStep.
    #[arg(long)]
    max_scale_down_step: Option<i32>,

    /// lagThreshold of the KEDA-style baseline.
    #[arg(long)]
    lag_threshold: Option<f64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every workload under every policy; rewrite the results section of
    /// docs/autoscaling.md and the plots next to it.
    Report {
        /// Directory holding autoscaling.md.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))]
        docs: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// The Millpond policy with autotune.
    Millpond,
    /// The Millpond policy with autotune off (limits fixed).
    MillpondFixedLimits,
    /// The KEDA-style baseline.
    Keda,
    /// millpond and keda.
    Both,
    /// All three.
    All,
}

impl Which {
    fn kinds(self) -> Vec<PolicyKind> {
        match self {
            Which::Millpond => vec![PolicyKind::Millpond],
            Which::MillpondFixedLimits => vec![PolicyKind::MillpondFixedLimits],
            Which::Keda => vec![PolicyKind::Keda],
            Which::Both => vec![PolicyKind::Millpond, PolicyKind::Keda],
            Which::All => PolicyKind::ALL.to_vec(),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut setup = Setup::default();
    let a = &mut setup.autoscaling;
    a.target_drain_seconds = cli.target_drain_seconds.unwrap_or(a.target_drain_seconds);
    a.scale_down_stabilization_seconds = cli
        .scale_down_stabilization_seconds
        .unwrap_or(a.scale_down_stabilization_seconds);
    a.max_scale_down_step = cli.max_scale_down_step.unwrap_or(a.max_scale_down_step);
    setup.keda.lag_threshold = cli.lag_threshold.unwrap_or(setup.keda.lag_threshold);
    if let Some(Command::Report { docs }) = cli.command {
        let docs = docs.canonicalize().unwrap_or(docs);
        let runs = report::write_report(&docs, &setup)
            .with_context(|| format!("writing the report into {}", docs.display()))?;
        for (w, traces) in &runs {
            println!(
                "{}\n{}{}\n",
                w.title,
                report::summary_table(traces),
                report::verdict(traces)
            );
        }
        println!("wrote {}/autoscaling.md and its plots", docs.display());
        return Ok(());
    }
    let Some(workload) = simulate::workload(&cli.workload) else {
        let names: Vec<_> = simulate::workloads().iter().map(|w| w.name).collect();
        bail!(
            "unknown workload `{}` (one of {})",
            cli.workload,
            names.join(", ")
        );
    };
    let traces: Vec<_> = cli
        .policy
        .kinds()
        .into_iter()
        .map(|k| simulate::run(&workload, k, &setup))
        .collect();
    if cli.table {
        for t in &traces {
            println!("{}", report::tick_table(t));
        }
    }
    println!(
        "{}\n{}{}",
        workload.title,
        report::summary_table(&traces),
        report::verdict(&traces)
    );
    if let Some(path) = cli.svg {
        std::fs::write(&path, svg::plot(&traces))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
