//! Running the checker: exhaustive search of a model within its bounds, with progress reports,
//! each property's verdict, and the shortest counterexample found as a trace.

use crate::config::ModelConfig;
use crate::properties::expectation_name;
use crate::trace::Trace;
use serde::{Deserialize, Serialize};
use stateright::{Checker, Expectation, HasDiscoveries, Model, Representative};
use std::fmt::Debug;
use std::hash::Hash;
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

/// What a check found; serialized as `osprey check --json` prints it. The replication
/// model's by default; the quorum model's is `CheckReport<KraftConfig, KraftTrace>`.
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

/// What a protocol supplies to the one checker path: its model, its configuration (the
/// bounds, serialized into reports) and its trace type (the counterexample). The checker,
/// the shortening policy and the report are the same for every protocol, as in stateright's
/// own examples, where a protocol supplies only its `Model`.
pub trait Protocol {
    /// The protocol's name in reports and on the command line: `replication` or `quorum`.
    const NAME: &'static str;
    type Config: Copy + Serialize;
    type State: Clone + Debug + Hash + PartialEq + Send + Sync + Representative + 'static;
    type Action: Clone + Debug + PartialEq + Send + Sync + 'static;
    type Model: Model<State = Self::State, Action = Self::Action> + Clone + Send + Sync + 'static;
    type Trace: Counterexample + Serialize;

    fn model(config: Self::Config) -> Self::Model;
    /// The historical flaw switched on, by name.
    fn variant(config: &Self::Config) -> Option<String>;
    /// The engine `--engine auto` starts with: breadth-first where a violation is expected
    /// (its first counterexample is then the shortest), else the reduced depth-first search.
    fn auto_engine(config: &Self::Config) -> Engine;
    /// The counterexample for the actions of a path the checker found.
    fn trace(model: &Self::Model, actions: Vec<Self::Action>) -> Option<Self::Trace>;
}

/// Checks `P`'s model within `config`'s bounds.
pub fn check<P: Protocol>(
    config: P::Config,
    opts: &CheckOptions,
    mut on_progress: impl FnMut(Progress),
) -> CheckReport<P::Config, P::Trace> {
    let model = P::model(config);
    let properties = model.properties();
    let start = Instant::now();
    let mut builder = model.clone().checker().threads(opts.threads.max(1));
    if opts.stop_at_first_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let mut checker: Box<dyn Checker<P::Model> + Send + Sync> = match opts.engine {
        Engine::Bfs => Box::new(builder.spawn_bfs()),
        Engine::DfsSymmetry => Box::new(builder.symmetry().spawn_dfs()),
    };
    wait_for_checker(checker.as_mut(), start, &mut on_progress);
    let elapsed = start.elapsed();
    let discoveries = checker.discoveries();
    let mut verdicts = Vec::new();
    let mut counterexample: Option<P::Trace> = None;
    for p in &properties {
        let found = discoveries.get(p.name);
        let always = p.expectation != Expectation::Sometimes;
        if let (true, Some(path)) = (always, found) {
            // Keep the shortest counterexample found (the first of equal length).
            if let Some(t) = P::trace(&model, path.clone().into_actions()) {
                if counterexample
                    .as_ref()
                    .is_none_or(|c| t.step_count() < c.step_count())
                {
                    counterexample = Some(t);
                }
            }
        }
        verdicts.push(PropertyVerdict {
            name: p.name.to_string(),
            expectation: expectation_name(&p.expectation).to_string(),
            holds: found.is_some() != always,
        });
    }
    let violated = verdicts
        .iter()
        .any(|v| v.expectation != "sometimes" && !v.holds);
    let unique = checker.unique_state_count();
    let secs = elapsed.as_secs_f64();
    CheckReport {
        verdict: if violated { "violation" } else { "ok" }.to_string(),
        protocol: P::NAME.to_string(),
        variant: P::variant(&config),
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

/// [`check`], and when the reduced depth-first search finds a violation, a breadth-first
/// search for a short counterexample (depth-first paths are long). With `engine` `None`
/// (`--engine auto`) the protocol picks the first engine ([`Protocol::auto_engine`]).
pub fn check_shortened<P: Protocol>(
    config: P::Config,
    engine: Option<Engine>,
    opts: &CheckOptions,
    on_progress: impl FnMut(Progress),
) -> CheckReport<P::Config, P::Trace> {
    let opts = CheckOptions {
        engine: engine.unwrap_or_else(|| P::auto_engine(&config)),
        ..opts.clone()
    };
    let mut report = check::<P>(config, &opts, on_progress);
    if report.violated() && opts.engine == Engine::DfsSymmetry && engine.is_none() {
        let bfs = CheckOptions {
            engine: Engine::Bfs,
            stop_at_first_violation: true,
            ..opts
        };
        let shorter = check::<P>(config, &bfs, |_| {});
        report.counterexample = shorter.counterexample.or(report.counterexample);
    }
    report
}
