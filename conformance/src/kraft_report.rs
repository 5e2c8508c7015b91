//! Replaying a corpus of KRaft traces against the quorum core: how many traces and steps,
//! which mismatched, and the coverage per step kind and per sometimes-property witness.

use std::path::{Path, PathBuf};

use osprey_model::kraft::trace::KraftTrace;

use crate::kraft_generate::{kind, sometimes_properties, witnessed, KINDS};
use crate::kraft_replay::{replay, KraftMismatch};
use crate::report::{is_kraft, read_json_dir, CorpusReport, FileMismatch};

/// The subdirectory of a corpus that holds its KRaft traces.
pub const KRAFT_SUBDIR: &str = "kraft";

/// One KRaft trace that did not replay cleanly.
pub type KraftFileMismatch = FileMismatch<KraftMismatch>;

/// What replaying a KRaft corpus found (`osprey conformance --json`'s `kraft` section).
pub type KraftCorpusReport = CorpusReport<KraftMismatch>;

/// Reads the KRaft traces of a corpus: those in `dir/kraft/` (when it exists) and any file
/// in `dir` itself with `"protocol": "kraft"`, each sorted by name.
pub fn load_kraft(dir: &Path) -> Result<Vec<(PathBuf, KraftTrace)>, String> {
    let mut files: Vec<(PathBuf, serde_json::Value)> = read_json_dir(dir)?
        .into_iter()
        .filter(|(_, j)| is_kraft(j))
        .collect();
    let sub = dir.join(KRAFT_SUBDIR);
    if sub.is_dir() {
        files.extend(read_json_dir(&sub)?);
    }
    files
        .into_iter()
        .map(|(p, json)| {
            let trace: KraftTrace = serde_json::from_value(json)
                .map_err(|e| format!("{} is not a kraft trace: {e}", p.display()))?;
            Ok((p, trace))
        })
        .collect()
}

/// Replays every trace against the quorum core and gathers the report.
pub fn replay_all_kraft(traces: &[(PathBuf, KraftTrace)]) -> KraftCorpusReport {
    let witnesses = sometimes_properties();
    let mut report = CorpusReport::new(
        "kraft ",
        traces.len(),
        KINDS.iter().copied(),
        witnesses.iter().map(|p| p.name),
    );
    for (file, trace) in traces {
        let outcome = replay(trace);
        let actions = trace.actions();
        report.record(
            file,
            outcome.steps,
            actions.iter().map(kind),
            witnessed(trace),
            outcome.mismatch,
        );
    }
    report
}
