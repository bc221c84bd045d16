//! `millpond-timeline`: turns the samples a journey recorded (JSON lines)
//! into a JSON document with its summary, and an SVG plot.
//!
//! ```text
//! millpond-timeline --input samples.jsonl --json docs/journey.json --svg docs/journey.svg
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use millpond_e2e::timeline;

#[derive(Parser)]
#[command(name = "millpond-timeline", about)]
struct Args {
    /// The samples, one JSON object per line.
    #[arg(long)]
    input: PathBuf,
    /// Write `{"summary": ..., "samples": [...]}` here.
    #[arg(long)]
    json: PathBuf,
    /// Write the plot here.
    #[arg(long)]
    svg: PathBuf,
    /// Title of the plot.
    #[arg(long, default_value = "A burst into a MillpondConsumer")]
    title: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let samples = timeline::parse(&text)?;
    let summary = timeline::summarize(&samples);
    let doc = serde_json::json!({ "summary": summary, "samples": samples });
    std::fs::write(&args.json, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    std::fs::write(&args.svg, timeline::plot(&args.title, &samples))
        .with_context(|| format!("writing {}", args.svg.display()))?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
