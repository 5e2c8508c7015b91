//! Running the checker: exhaustive search of a model within its bounds, with progress reports,
//! each property's verdict, and the shortest counterexample found as a trace.

use crate::config::ModelConfig;
use crate::properties::expectation_name;
use crate::replication::PartitionModel;
use crate::trace::Trace;
use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::{Duration, Instant};

/// How the state space is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Breadth-first: counterexamples are as short as the search order allows.
    Bfs,
    /// Depth-first with symmetry reduction over broker ids: fewer states, longer counterexamples.
    DfsSymmetry,
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub threads: usize,
    pub engine: Engine,
    /// Stop at the first violated always-property (keeps the counterexample short).
    pub stop_at_first_violation: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            engine: Engine::Bfs,
            stop_at_first_violation: true,
        }
    }
}

/// A progress sample, reported while the checker runs.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyVerdict {
    pub name: String,
    pub expectation: String,
    /// Always: no state violates it. Sometimes: a witness state was reached.
    pub holds: bool,
}

/// What a check found; serialized as `osprey check --json` prints it. The partition model's
/// by default; the KRaft model's is `CheckReport<KraftConfig, KraftTrace>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport<C = ModelConfig, T = Trace> {
    pub verdict: String,
    pub protocol: String,
    pub variant: Option<String>,
    pub config: C,
    pub engine: Engine,
    pub threads: usize,
    /// Whether every reachable state within the bounds was explored.
    pub complete: bool,
    pub unique_states: usize,
    pub total_states: usize,
    pub max_depth: usize,
    pub elapsed_s: f64,
    pub states_per_s: f64,
    pub properties: Vec<PropertyVerdict>,
    pub counterexample: Option<T>,
}

impl<C, T> CheckReport<C, T> {
    pub fn violated(&self) -> bool {
        self.verdict == "violation"
    }
}

/// What reports print of a counterexample, whichever model it comes from.
pub trait Counterexample {
    /// Steps after the initial state.
    fn step_count(&self) -> usize;
    /// The always-properties its last state violates.
    fn violated_properties(&self) -> &[String];
    /// The run as a table.
    fn render(&self) -> String;
}

impl Counterexample for Trace {
    fn step_count(&self) -> usize {
        self.steps.len() - 1
    }
    fn violated_properties(&self) -> &[String] {
        &self.violated
    }
    fn render(&self) -> String {
        self.table()
    }
}

/// Reports progress until the checker is done, then joins its threads. Polls after 1 ms,
/// then doubling up to every 100 ms: a long check reports ten times a second, and a short
/// one (the criterion bench's) is not rounded up to the polling period.
pub fn wait_for_checker<M: Model>(
    checker: &mut (dyn Checker<M> + Send + Sync),
    start: Instant,
    on_progress: &mut impl FnMut(Progress),
) {
    let mut pause = Duration::from_millis(1);
    while !checker.is_done() {
        on_progress(Progress {
            unique_states: checker.unique_state_count(),
            total_states: checker.state_count(),
            max_depth: checker.max_depth(),
            elapsed: start.elapsed(),
        });
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    for h in checker.handles() {
        let _ = h.join();
    }
}

/// Checks the partition model within `config`'s bounds.
pub fn check_partition(
    config: ModelConfig,
    opts: &CheckOptions,
    mut on_progress: impl FnMut(Progress),
) -> CheckReport {
    let model = PartitionModel::new(config);
    let properties = model.properties();
    let start = Instant::now();
    let mut builder = model.clone().checker().threads(opts.threads.max(1));
    if opts.stop_at_first_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker: Box<dyn Checker<PartitionModel> + Send + Sync> = match opts.engine {
        Engine::Bfs => Box::new(builder.spawn_bfs()),
        Engine::DfsSymmetry => Box::new(builder.symmetry().spawn_dfs()),
    };
    let mut checker = checker;
    wait_for_checker(checker.as_mut(), start, &mut on_progress);
    let elapsed = start.elapsed();
    let discoveries = checker.discoveries();
    let mut verdicts = Vec::new();
    let mut counterexample = None;
    let mut violated = false;
    for p in &properties {
        let found = discoveries.get(p.name);
        let holds = match p.expectation {
            Expectation::Sometimes => found.is_some(),
            _ => found.is_none(),
        };
        if p.expectation != Expectation::Sometimes {
            if let Some(path) = found {
                violated = true;
                if counterexample.is_none() {
                    let actions = model.with_eager_steps(&path.clone().into_actions());
                    counterexample = Trace::from_actions(&model, &actions).ok();
                }
            }
        }
        verdicts.push(PropertyVerdict {
            name: p.name.to_string(),
            expectation: expectation_name(&p.expectation).to_string(),
            holds,
        });
    }
    // Prefer the shortest of the counterexamples found.
    for p in &properties {
        if p.expectation == Expectation::Sometimes {
            continue;
        }
        if let Some(path) = discoveries.get(p.name) {
            let actions = model.with_eager_steps(&path.clone().into_actions());
            if counterexample
                .as_ref()
                .is_none_or(|t: &Trace| actions.len() < t.steps.len() - 1)
            {
                counterexample = Trace::from_actions(&model, &actions).ok();
            }
        }
    }
    let unique = checker.unique_state_count();
    let secs = elapsed.as_secs_f64();
    CheckReport {
        verdict: if violated { "violation" } else { "ok" }.to_string(),
        protocol: "partition".to_string(),
        variant: config.variant.map(|v| v.name().to_string()),
        config,
        engine: opts.engine,
        threads: opts.threads,
        complete: !violated || !opts.stop_at_first_violation,
        unique_states: unique,
        total_states: checker.state_count(),
        max_depth: checker.max_depth(),
        elapsed_s: secs,
        states_per_s: if secs > 0.0 {
            unique as f64 / secs
        } else {
            0.0
        },
        properties: verdicts,
        counterexample,
    }
}
