//! Bounded-exhaustive conformance of the quorum core: every state of the KRaft model
//! reachable within small bounds is reached once, depth first, by a [`Quorum`] that took
//! the same steps, and the core's view is compared with the model's after every step.
//!
//! Random walks and the covering set sample paths; this visits every model state (and
//! every step out of it) instead. Each state is expanded once, from the first path that
//! reached it: the cores along another path to the same model state may differ in what the
//! model does not show (messages in flight, a candidate's counted votes), and those paths
//! are the walks' business.

use std::collections::HashSet;

use osprey_model::kraft::trace::{KraftStateView, KraftTrace};
use osprey_model::kraft::{KraftAction, KraftConfig, KraftModel, KraftState};

use crate::kraft_abstraction::diff;
use crate::kraft_generate::successors;
use crate::kraft_replay::{KraftMismatch, Quorum};

/// What an exploration visited, and the first step where the core diverged.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// Distinct model states reached.
    pub states: usize,
    /// Steps taken on the cores and compared.
    pub steps: usize,
    /// Every reachable state was visited (the limit was not hit).
    pub complete: bool,
    /// The first divergence, with the trace that reaches it (replayable with
    /// [`crate::kraft_replay::replay`]).
    pub mismatch: Option<(KraftTrace, KraftMismatch)>,
}

/// Explores `config`'s state space depth first, up to `limit` distinct states.
pub fn explore(config: KraftConfig, limit: usize) -> Result<Exploration, String> {
    let model = KraftModel::new(config);
    let init = model.initial_state();
    let quorum = Quorum::new(config)?;
    let mut out = Exploration {
        states: 1,
        steps: 0,
        complete: true,
        mismatch: None,
    };
    let mut seen: HashSet<KraftState> = HashSet::from([init]);
    let mut stack: Vec<(KraftState, Quorum, Vec<KraftAction>)> = vec![(init, quorum, vec![])];
    while let Some((s, q, path)) = stack.pop() {
        for (a, n) in successors(&model, &s) {
            let mut next = q.clone();
            let expected = KraftStateView::of(&model, &n);
            let step = path.len() + 1;
            let failed = |reason: String, core: Option<KraftStateView>, d: Vec<String>| {
                let mut actions = path.clone();
                actions.push(a);
                let trace = KraftTrace::from_actions(&model, &actions)
                    .expect("the exploration takes enabled steps");
                let m = KraftMismatch {
                    step,
                    action: Some(a),
                    reason,
                    diff: d,
                    model: Some(expected.clone()),
                    implementation: core,
                    side: "core",
                };
                Some((trace, m))
            };
            out.steps += 1;
            if let Err(e) = next.apply(a) {
                out.mismatch = failed(e, next.view().ok(), vec![]);
                return Ok(out);
            }
            let view = match next.view() {
                Ok(v) => v,
                Err(e) => {
                    out.mismatch = failed(e, None, vec![]);
                    return Ok(out);
                }
            };
            let d = diff(&expected, &view);
            if !d.is_empty() {
                out.mismatch = failed("the core's state is not the model's".into(), Some(view), d);
                return Ok(out);
            }
            if seen.contains(&n) {
                continue;
            }
            if seen.len() >= limit {
                out.complete = false;
                continue;
            }
            seen.insert(n);
            out.states += 1;
            let mut p = path.clone();
            p.push(a);
            stack.push((n, next, p));
        }
    }
    Ok(out)
}
