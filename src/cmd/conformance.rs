//! `osprey conformance`: replay model traces against the broker's real code.

use clap::Args;
use osprey_conformance::kraft_report::{load_kraft, KraftCorpusReport};
use osprey_conformance::report::{load_dir, replay_corpus, CorpusReport};
use osprey_model::kraft::Quorum;
use osprey_model::replication::Replication;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ConformanceArgs {
    /// Directory of `osprey-trace/1` JSON files. Replication traces are replayed against the
    /// replication core; quorum traces (`"protocol": "kraft"`, and every file in its `kraft/`
    /// subdirectory) against the quorum core.
    #[arg(long, default_value = "conformance/traces")]
    pub traces: PathBuf,
    /// Print one JSON object (traces, steps, mismatches, coverage, witnesses, details of the
    /// replication traces, and the same for the quorum traces under `quorum`).
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints: the replication report's fields, and the quorum report under
/// `quorum`.
#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    replication: CorpusReport,
    quorum: KraftCorpusReport,
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
        replication: replay_corpus::<Replication>(&traces),
        quorum: replay_corpus::<Quorum>(&kraft_traces),
    };
    let mismatches = report.replication.mismatches + report.quorum.mismatches;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!(
            "{}\n{}",
            report.replication.render(),
            report.quorum.render()
        );
    }
    if mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
