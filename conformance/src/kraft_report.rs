//! Replaying a corpus of KRaft traces against the quorum core: how many traces and steps,
//! which mismatched, and the coverage per step kind and per sometimes-property witness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use osprey_model::kraft::trace::KraftTrace;
use serde::Serialize;

use crate::kraft_generate::{kind, sometimes_properties, witnessed, KINDS};
use crate::kraft_replay::{replay, KraftMismatch};
use crate::report::{is_kraft, read_json_dir};

/// The subdirectory of a corpus that holds its KRaft traces.
pub const KRAFT_SUBDIR: &str = "kraft";

/// One KRaft trace that did not replay cleanly.
#[derive(Debug, Clone, Serialize)]
pub struct KraftFileMismatch {
    pub file: PathBuf,
    pub mismatch: KraftMismatch,
}

/// What replaying a KRaft corpus found (`osprey conformance --json`'s `kraft` section).
#[derive(Debug, Clone, Serialize)]
pub struct KraftCorpusReport {
    pub traces: usize,
    pub steps: usize,
    /// How many traces mismatched.
    pub mismatches: usize,
    /// Step kind → traces that take at least one step of that kind (every kind listed).
    pub coverage: BTreeMap<String, usize>,
    /// Sometimes-property → traces with a state that witnesses it (every property listed).
    pub witnesses: BTreeMap<String, usize>,
    pub mismatch_details: Vec<KraftFileMismatch>,
}

impl KraftCorpusReport {
    /// Step kinds no trace exercises.
    pub fn uncovered_kinds(&self) -> Vec<&str> {
        self.coverage
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// A readable summary with the coverage table and each mismatch.
    pub fn render(&self) -> String {
        let mut out = format!(
            "kraft traces replayed: {}\nkraft steps: {}\nkraft mismatches: {}\n\n",
            self.traces, self.steps, self.mismatches
        );
        let width = self
            .coverage
            .keys()
            .chain(self.witnesses.keys())
            .map(|k| k.len())
            .max()
            .unwrap_or(0)
            .max("kraft sometimes witness".len());
        out.push_str(&format!("{:<width$}  traces\n", "kraft step kind"));
        for (k, n) in &self.coverage {
            out.push_str(&format!("{k:<width$}  {n}\n"));
        }
        out.push_str(&format!(
            "\n{:<width$}  traces\n",
            "kraft sometimes witness"
        ));
        for (k, n) in &self.witnesses {
            out.push_str(&format!("{k:<width$}  {n}\n"));
        }
        for m in &self.mismatch_details {
            out.push_str(&format!("\n{}: {}", m.file.display(), m.mismatch));
        }
        out
    }
}

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
    let mut report = KraftCorpusReport {
        traces: traces.len(),
        steps: 0,
        mismatches: 0,
        coverage: KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
        witnesses: sometimes_properties()
            .iter()
            .map(|p| (p.name.to_string(), 0))
            .collect(),
        mismatch_details: Vec::new(),
    };
    for (file, trace) in traces {
        let outcome = replay(trace);
        report.steps += outcome.steps;
        let mut kinds: Vec<&str> = trace.actions().iter().map(kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for k in kinds {
            *report.coverage.entry(k.to_string()).or_default() += 1;
        }
        for w in witnessed(trace) {
            *report.witnesses.entry(w.to_string()).or_default() += 1;
        }
        if let Some(m) = outcome.mismatch {
            report.mismatches += 1;
            report.mismatch_details.push(KraftFileMismatch {
                file: file.clone(),
                mismatch: m,
            });
        }
    }
    report
}
