//! Checking the KRaft quorum model: the same options, progress and report as the partition
//! model's checker (`crate::check`), with KRaft's configuration and traces.

use super::config::KraftConfig;
use super::model::KraftModel;
use super::trace::KraftTrace;
use crate::check::{
    wait_for_checker, CheckOptions, CheckReport, Engine, Progress, PropertyVerdict,
};
use crate::properties::expectation_name;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::Instant;

/// The report of a KRaft check.
pub type KraftCheckReport = CheckReport<KraftConfig, KraftTrace>;

/// Checks the KRaft quorum model within `config`'s bounds.
pub fn check_kraft(
    config: KraftConfig,
    opts: &CheckOptions,
    mut on_progress: impl FnMut(Progress),
) -> KraftCheckReport {
    let model = KraftModel::new(config);
    let properties = model.properties();
    let start = Instant::now();
    let mut builder = model.clone().checker().threads(opts.threads.max(1));
    if opts.stop_at_first_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let mut checker: Box<dyn Checker<KraftModel> + Send + Sync> = match opts.engine {
        Engine::Bfs => Box::new(builder.spawn_bfs()),
        Engine::DfsSymmetry => Box::new(builder.symmetry().spawn_dfs()),
    };
    wait_for_checker(checker.as_mut(), start, &mut on_progress);
    let elapsed = start.elapsed();
    let discoveries = checker.discoveries();
    let mut verdicts = Vec::new();
    let mut counterexample: Option<KraftTrace> = None;
    for p in &properties {
        let found = discoveries.get(p.name);
        let always = p.expectation != Expectation::Sometimes;
        if let (true, Some(path)) = (always, found) {
            // Keep the shortest counterexample found.
            let actions = path.clone().into_actions();
            if counterexample
                .as_ref()
                .is_none_or(|t| actions.len() < t.steps.len() - 1)
            {
                counterexample = KraftTrace::from_actions(&model, &actions).ok();
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
        protocol: "kraft".to_string(),
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

impl crate::check::Counterexample for KraftTrace {
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
