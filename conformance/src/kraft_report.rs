//! The quorum corpus: loading KRaft traces, and what a corpus replay counts of them
//! ([`crate::report::replay_corpus`] against the quorum core).

use std::path::{Path, PathBuf};

use osprey_model::kraft::trace::KraftTrace;

use osprey_model::kraft::{KraftAction, Quorum};

use crate::kraft_generate::{sometimes_properties, witnessed};
use crate::kraft_replay::{replay, KraftMismatch};
use crate::report::{is_kraft, read_json_dir, Corpus, CorpusReport, FileMismatch};

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

impl Corpus for Quorum {
    type Trace = KraftTrace;
    type Mismatch = KraftMismatch;
    const LABEL: &'static str = "quorum ";
    fn kinds() -> Vec<&'static str> {
        KraftAction::KINDS.to_vec()
    }
    fn sometimes() -> Vec<&'static str> {
        sometimes_properties().iter().map(|p| p.name).collect()
    }
    fn replay(trace: &KraftTrace) -> (usize, Option<KraftMismatch>) {
        let outcome = replay(trace);
        (outcome.steps, outcome.mismatch)
    }
    fn step_kinds(trace: &KraftTrace) -> Vec<&'static str> {
        trace.actions().iter().map(|a| a.kind()).collect()
    }
    fn witnessed(trace: &KraftTrace) -> Vec<&'static str> {
        witnessed(trace)
    }
}
