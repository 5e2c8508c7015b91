//! `osprey conformance`: replay model traces against the broker's real code.

use clap::Args;
use osprey_conformance::kraft_report::{load_kraft, replay_all_kraft, KraftCorpusReport};
use osprey_conformance::report::{load_dir, replay_all, CorpusReport};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// Directory of `osprey-trace/1` JSON files. Partition traces are replayed against the
    /// replication core; KRaft traces (`"protocol": "kraft"`, and every file in its `kraft/`
    /// subdirectory) against the quorum core.
    #[arg(long, default_value = "conformance/traces")]
    pub traces: PathBuf,
    /// Print one JSON object (traces, steps, mismatches, coverage, witnesses, details of the
    /// partition traces, and the same for the KRaft traces under `kraft`).
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints: the partition report's fields, and the KRaft report under `kraft`.
#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    partition: CorpusReport,
    kraft: KraftCorpusReport,
}

/// Exit status: 0 when every trace replays without a mismatch, 1 otherwise, 2 when the
/// traces cannot be read.
pub fn run(args: ConformanceArgs) -> ExitCode {
    let loaded = load_dir(&args.traces).and_then(|p| Ok((p, load_kraft(&args.traces)?)));
    let (traces, kraft_traces) = match loaded {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = Report {
        partition: replay_all(&traces),
        kraft: replay_all_kraft(&kraft_traces),
    };
    let mismatches = report.partition.mismatches + report.kraft.mismatches;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}\n{}", report.partition.render(), report.kraft.render());
    }
    if mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
