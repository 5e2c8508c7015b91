//! `osprey conformance`: replay model traces against the broker's real code.

use clap::Args;
use osprey_conformance::report::{load_dir, replay_all};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// Directory of `osprey-trace/1` JSON files.
    #[arg(long, default_value = "conformance/traces")]
    pub traces: PathBuf,
    /// Print one JSON object (traces, steps, mismatches, coverage, witnesses, details).
    #[arg(long)]
    pub json: bool,
}

/// Exit status: 0 when every trace replays without a mismatch, 1 otherwise, 2 when the
/// traces cannot be read.
pub fn run(args: ConformanceArgs) -> ExitCode {
    let traces = match load_dir(&args.traces) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = replay_all(&traces);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.render());
    }
    if report.mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
