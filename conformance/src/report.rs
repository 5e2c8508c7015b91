//! Replaying a corpus of trace files: how many traces and steps, which mismatched, and the
//! coverage (per step kind and per sometimes-property witness, how many traces exercise it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use osprey_model::replication::Replication;
use osprey_model::trace::Trace;
use osprey_model::Action;
use serde::Serialize;

use crate::generate::{sometimes_properties, witnessed};
use crate::replay::{replay, Mismatch};

/// One trace that did not replay cleanly (`M`: the replication replay's or the quorum
/// replay's mismatch).
#[derive(Debug, Clone, Serialize)]
pub struct FileMismatch<M = Mismatch> {
    pub file: PathBuf,
    pub mismatch: M,
}

/// What replaying a corpus found; `osprey conformance --json` prints it (the quorum corpus's
/// under `quorum`).
#[derive(Debug, Clone, Serialize)]
pub struct CorpusReport<M = Mismatch> {
    /// Prefix of the rendered labels ("quorum " for the quorum corpus).
    #[serde(skip)]
    pub label: &'static str,
    pub traces: usize,
    pub steps: usize,
    /// How many traces mismatched.
    pub mismatches: usize,
    /// Step kind → traces that take at least one step of that kind (every kind listed).
    pub coverage: BTreeMap<String, usize>,
    /// Sometimes-property → traces with a state that witnesses it (every property listed).
    pub witnesses: BTreeMap<String, usize>,
    pub mismatch_details: Vec<FileMismatch<M>>,
}

impl<M: std::fmt::Display> CorpusReport<M> {
    /// An empty report over `traces` traces, listing every step kind and witness at 0.
    pub fn new<'a>(
        label: &'static str,
        traces: usize,
        kinds: impl IntoIterator<Item = &'a str>,
        witnesses: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        CorpusReport {
            label,
            traces,
            steps: 0,
            mismatches: 0,
            coverage: kinds.into_iter().map(|k| (k.to_string(), 0)).collect(),
            witnesses: witnesses.into_iter().map(|w| (w.to_string(), 0)).collect(),
            mismatch_details: Vec::new(),
        }
    }

    /// Adds one replayed trace: its steps, the step kinds it takes, the witnesses it reaches,
    /// and its mismatch if any.
    pub fn record<'a>(
        &mut self,
        file: &Path,
        steps: usize,
        kinds: impl IntoIterator<Item = &'a str>,
        witnessed: impl IntoIterator<Item = &'a str>,
        mismatch: Option<M>,
    ) {
        self.steps += steps;
        let mut kinds: Vec<&str> = kinds.into_iter().collect();
        kinds.sort_unstable();
        kinds.dedup();
        for k in kinds {
            *self.coverage.entry(k.to_string()).or_default() += 1;
        }
        for w in witnessed {
            *self.witnesses.entry(w.to_string()).or_default() += 1;
        }
        if let Some(mismatch) = mismatch {
            self.mismatches += 1;
            self.mismatch_details.push(FileMismatch {
                file: file.to_path_buf(),
                mismatch,
            });
        }
    }

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
        let l = self.label;
        let mut out = format!(
            "{l}traces replayed: {}\n{l}steps: {}\n{l}mismatches: {}\n\n",
            self.traces, self.steps, self.mismatches
        );
        let kinds_label = format!("{l}step kind");
        let witness_label = format!("{l}sometimes witness");
        let width = self
            .coverage
            .keys()
            .chain(self.witnesses.keys())
            .map(|k| k.len())
            .chain([witness_label.len()])
            .max()
            .unwrap_or(0);
        out.push_str(&format!("{kinds_label:<width$}  traces\n"));
        for (k, n) in &self.coverage {
            out.push_str(&format!("{k:<width$}  {n}\n"));
        }
        out.push_str(&format!("\n{witness_label:<width$}  traces\n"));
        for (k, n) in &self.witnesses {
            out.push_str(&format!("{k:<width$}  {n}\n"));
        }
        for m in &self.mismatch_details {
            out.push_str(&format!("\n{}: {}", m.file.display(), m.mismatch));
        }
        out
    }
}

/// Reads every partition trace in `dir` (`*.json`, sorted by name); KRaft traces
/// (`"protocol": "kraft"`) are left to [`crate::kraft_report::load_kraft`].
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Trace)>, String> {
    let mut out = Vec::new();
    for (p, json) in read_json_dir(dir)? {
        if is_kraft(&json) {
            continue;
        }
        let trace: Trace = serde_json::from_value(json)
            .map_err(|e| format!("{} is not a trace: {e}", p.display()))?;
        out.push((p, trace));
    }
    Ok(out)
}

/// Whether a parsed trace file is a KRaft trace.
pub fn is_kraft(json: &serde_json::Value) -> bool {
    json.get("protocol").and_then(|p| p.as_str()) == Some("kraft")
}

/// Every `*.json` file in `dir`, sorted by name, parsed as JSON.
pub fn read_json_dir(dir: &Path) -> Result<Vec<(PathBuf, serde_json::Value)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            let json = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", p.display()))?;
            Ok((p, json))
        })
        .collect()
}

/// A protocol's traces as a corpus replay counts them.
pub trait Corpus {
    type Trace;
    type Mismatch: std::fmt::Display;
    /// Prefix of the rendered labels ("" for replication, "quorum " for the quorum).
    const LABEL: &'static str;
    /// Every step kind of the model.
    fn kinds() -> Vec<&'static str>;
    /// The model's sometimes-properties, by name.
    fn sometimes() -> Vec<&'static str>;
    /// Replays one trace: the steps matched and the first mismatch.
    fn replay(trace: &Self::Trace) -> (usize, Option<Self::Mismatch>);
    /// The kind of every step the trace takes.
    fn step_kinds(trace: &Self::Trace) -> Vec<&'static str>;
    /// The sometimes-properties some state of the trace witnesses.
    fn witnessed(trace: &Self::Trace) -> Vec<&'static str>;
}

/// Replays every trace and gathers the report.
pub fn replay_corpus<C: Corpus>(traces: &[(PathBuf, C::Trace)]) -> CorpusReport<C::Mismatch> {
    let mut report = CorpusReport::new(C::LABEL, traces.len(), C::kinds(), C::sometimes());
    for (file, trace) in traces {
        let (steps, mismatch) = C::replay(trace);
        report.record(
            file,
            steps,
            C::step_kinds(trace),
            C::witnessed(trace),
            mismatch,
        );
    }
    report
}

impl Corpus for Replication {
    type Trace = Trace;
    type Mismatch = Mismatch;
    const LABEL: &'static str = "";
    fn kinds() -> Vec<&'static str> {
        Action::KINDS.to_vec()
    }
    fn sometimes() -> Vec<&'static str> {
        sometimes_properties().iter().map(|p| p.name).collect()
    }
    fn replay(trace: &Trace) -> (usize, Option<Mismatch>) {
        let outcome = replay(trace);
        (outcome.steps, outcome.mismatch)
    }
    fn step_kinds(trace: &Trace) -> Vec<&'static str> {
        trace.actions().iter().map(|a| a.kind()).collect()
    }
    fn witnessed(trace: &Trace) -> Vec<&'static str> {
        witnessed(trace)
    }
}
