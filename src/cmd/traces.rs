//! `osprey traces generate`: model traces for the conformance suite.

use clap::{Args, Subcommand};
use osprey_conformance::generate::{covering_set, random_walks, write_traces};
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
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
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
    /// States the covering search may visit per configuration.
    #[arg(long, default_value_t = 2_000_000)]
    pub search_limit: usize,
}

pub fn run(args: TracesArgs) -> ExitCode {
    match args.command {
        TracesCommand::Generate(g) => generate(g),
    }
}

fn generate(args: GenerateArgs) -> ExitCode {
    let walks = random_walks(args.count, args.max_depth, args.seed);
    let (covering, missing) = covering_set(args.search_limit);
    let covering: Vec<_> = covering.into_iter().map(|(_, t)| t).collect();
    let written = write_traces(&args.out, "walk", &walks)
        .and_then(|()| write_traces(&args.out, "cover", &covering));
    if let Err(e) = written {
        eprintln!("error: writing traces to {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!(
        "wrote {} random walks and {} covering traces to {}",
        walks.len(),
        covering.len(),
        args.out.display()
    );
    if !missing.is_empty() {
        eprintln!("covering search did not reach: {}", missing.join(", "));
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
