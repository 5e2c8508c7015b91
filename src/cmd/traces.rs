//! `osprey traces generate`: model traces for the conformance suite.

use super::check::ProtocolName;
use clap::{Args, Subcommand};
use osprey_conformance::generate::{
    covering_set, kafka_counterexample, random_walks, write_traces,
};
use osprey_conformance::kraft_generate;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct TracesArgs {
    #[command(subcommand)]
    pub command: TracesCommand,
}

#[derive(Subcommand, Debug)]
pub enum TracesCommand {
    /// Write seeded random walks of the model plus a covering set (every step kind and
    /// every sometimes-property witness), one `osprey-trace/1` JSON file per trace.
    Generate(GenerateArgs),
    /// Write the shortest counterexample of a variant (`--variant`) that keeps to Kafka's
    /// controller choices, so that the broker's own controller can replay it.
    Counterexample(CounterexampleArgs),
}

#[derive(Args, Debug)]
pub struct CounterexampleArgs {
    /// The bug variant (its small bounds, `Variant::small_config`).
    #[arg(long)]
    pub variant: osprey_model::Variant,
    /// Override the variant's crash bound.
    #[arg(long)]
    pub max_crashes: Option<u8>,
    /// Override the variant's leader epoch bound.
    #[arg(long)]
    pub max_epoch: Option<u8>,
    /// Override the variant's record count.
    #[arg(long)]
    pub records: Option<u8>,
    /// Override the variant's ISR change bound.
    #[arg(long)]
    pub max_isr_changes: Option<u8>,
    /// States the search may visit.
    #[arg(long, default_value_t = 5_000_000)]
    pub search_limit: usize,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The model to walk: `replication` (of one partition) or `quorum` (the controller
    /// quorum). `partition` and `kraft` are accepted too.
    #[arg(long, value_enum, default_value = "replication")]
    pub protocol: ProtocolName,
    /// Random walks to write.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Largest number of steps per walk.
    #[arg(long, default_value_t = 24)]
    pub max_depth: usize,
    /// Seed of the walks' generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// States the covering search may visit per configuration (default: 2,000,000 for
    /// replication, 400,000 for the quorum).
    #[arg(long)]
    pub search_limit: Option<usize>,
}

pub fn run(args: TracesArgs) -> ExitCode {
    match args.command {
        TracesCommand::Generate(g) => generate(g),
        TracesCommand::Counterexample(c) => counterexample(c),
    }
}

fn counterexample(args: CounterexampleArgs) -> ExitCode {
    let mut config = args.variant.small_config();
    config.max_crashes = args.max_crashes.unwrap_or(config.max_crashes);
    config.max_epoch = args.max_epoch.unwrap_or(config.max_epoch);
    config.records = args.records.unwrap_or(config.records);
    config.max_isr_changes = args.max_isr_changes.unwrap_or(config.max_isr_changes);
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let Some(trace) = kafka_counterexample(config, args.search_limit) else {
        eprintln!(
            "no counterexample for {} within {} states",
            args.variant, args.search_limit
        );
        return ExitCode::from(1);
    };
    let json = match serde_json::to_string(&trace) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::write(&args.out, json + "\n") {
        eprintln!("error: writing {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!(
        "{}: {} steps, violates {:?}; written to {}",
        args.variant,
        trace.steps.len() - 1,
        trace.violated,
        args.out.display()
    );
    ExitCode::SUCCESS
}

fn generate(args: GenerateArgs) -> ExitCode {
    match args.protocol {
        ProtocolName::Replication => generate_replication(args),
        ProtocolName::Quorum => generate_quorum(args),
    }
}

fn generate_replication(args: GenerateArgs) -> ExitCode {
    let walks = random_walks(args.count, args.max_depth, args.seed);
    let (covering, missing) = covering_set(args.search_limit.unwrap_or(2_000_000));
    let covering: Vec<_> = covering.into_iter().map(|(_, t)| t).collect();
    let written = write_traces(&args.out, "walk", &walks)
        .and_then(|()| write_traces(&args.out, "cover", &covering));
    report(&args, walks.len(), covering.len(), written, missing)
}

/// Quorum traces: random walks of the KRaft quorum model and its covering set.
fn generate_quorum(args: GenerateArgs) -> ExitCode {
    let walks = kraft_generate::random_walks(args.count, args.max_depth, args.seed);
    let (covering, missing) = kraft_generate::covering_set(args.search_limit.unwrap_or(400_000));
    let covering: Vec<_> = covering.into_iter().map(|(_, t)| t).collect();
    let written = write_traces(&args.out, "walk", &walks)
        .and_then(|()| write_traces(&args.out, "cover", &covering));
    report(&args, walks.len(), covering.len(), written, missing)
}

fn report(
    args: &GenerateArgs,
    walks: usize,
    covering: usize,
    written: std::io::Result<()>,
    missing: Vec<String>,
) -> ExitCode {
    if let Err(e) = written {
        eprintln!("error: writing traces to {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!(
        "wrote {walks} random walks and {covering} covering {} traces to {}",
        match args.protocol {
            ProtocolName::Replication => "replication",
            ProtocolName::Quorum => "quorum",
        },
        args.out.display()
    );
    if !missing.is_empty() {
        eprintln!("covering search did not reach: {}", missing.join(", "));
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
