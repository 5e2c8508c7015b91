//! KRaft trace generation: seeded random walks of the quorum model, and a covering set that
//! reaches every step kind and every sometimes-property's witness by breadth-first search.
//! Deterministic in its inputs, as [`crate::generate`] is for the partition model.

use osprey_model::kraft::properties;
use osprey_model::kraft::trace::KraftTrace;
use osprey_model::kraft::{KraftAction, KraftConfig, KraftModel, KraftState, KraftVariant};

use crate::generate::{sometimes_of, walks_over, witnessed_along, SplitMix64};
use crate::search::{covering_search, covering_targets};

/// The steps enabled in `s`, with the states they lead to, in the model's order.
pub fn successors(model: &KraftModel, s: &KraftState) -> Vec<(KraftAction, KraftState)> {
    let mut actions = Vec::new();
    model.enabled_actions(s, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| model.step(s, a).map(|n| (a, n)))
        .collect()
}

/// How often a walk picks a step kind, relative to the others: the disruptions (timeouts,
/// resignations, crashes) are always enabled somewhere and would otherwise end most epochs
/// before anything is replicated.
fn weight(kind: &str) -> usize {
    match kind {
        "Timeout" | "Resign" | "Crash" => 1,
        "Restart" => 2,
        _ => 4,
    }
}

/// One random walk of at most `max_depth` steps. Each step first picks a step kind among
/// the enabled ones (by [`weight`]), then one of its steps uniformly: uniform over steps
/// alone would let the n² Vote and BeginQuorumEpoch pairs and the disruptions crowd out
/// replication.
pub fn random_walk(config: KraftConfig, max_depth: usize, rng: &mut SplitMix64) -> KraftTrace {
    let model = KraftModel::new(config);
    let mut s = model.initial_state();
    let mut actions = Vec::new();
    for _ in 0..max_depth {
        let next = successors(&model, &s);
        let mut kinds: Vec<&str> = next.iter().map(|(a, _)| a.kind()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.is_empty() {
            break;
        }
        let mut pick = rng.below(kinds.iter().map(|k| weight(k)).sum());
        let k = *kinds
            .iter()
            .find(|k| match pick.checked_sub(weight(k)) {
                Some(rest) => {
                    pick = rest;
                    false
                }
                None => true,
            })
            .expect("pick is below the total weight");
        let of_kind: Vec<_> = next.iter().filter(|(a, _)| a.kind() == k).collect();
        let &(a, n) = of_kind[rng.below(of_kind.len())];
        actions.push(a);
        s = n;
    }
    KraftTrace::from_actions(&model, &actions).expect("a walk takes only enabled steps")
}

/// The configurations random walks cycle through: the default bounds (3 voters, flush
/// every), more records, more crashes, more epochs, 2 and 5 voters, and KIP-595 without
/// Pre-Vote (`no-pre-vote`, the cores' `with_pre_vote(false)`). All run with flush every: Kafka's raft client fsyncs a voter's log before it
/// fetches again, and the core relies on it (a follower fetches only a durable log), so the
/// model's `--flush never` stress mode is not Kafka's and is not replayed. A quorum of one is
/// left out (its core elects itself in `Timeout`, see [`crate::kraft_replay::Quorum::new`]).
pub fn walk_configs() -> Vec<KraftConfig> {
    let d = KraftConfig::default();
    vec![
        d,
        KraftConfig { records: 3, ..d },
        KraftConfig {
            max_crashes: 3,
            ..d
        },
        KraftConfig {
            voters: 2,
            max_crashes: 2,
            ..d
        },
        KraftConfig {
            voters: 5,
            max_crashes: 2,
            ..d
        },
        KraftConfig {
            max_epoch: 5,
            max_crashes: 2,
            records: 3,
            ..d
        },
        KraftConfig {
            variant: Some(KraftVariant::NoPreVote),
            ..d
        },
    ]
}

/// `count` random walks, the i-th with configuration `walk_configs()[i % len]`, all from
/// one generator seeded with `seed`.
pub fn random_walks(count: usize, max_depth: usize, seed: u64) -> Vec<KraftTrace> {
    walks_over(&walk_configs(), count, seed, |c, rng| {
        random_walk(c, max_depth, rng)
    })
}

/// The model's sometimes-properties (LeaderElected, LeaderFailover, RecordCommitted).
pub fn sometimes_properties() -> Vec<stateright::Property<KraftModel>> {
    sometimes_of(properties::all())
}

/// The names of the sometimes-properties some state of `trace` witnesses.
pub fn witnessed(trace: &KraftTrace) -> Vec<&'static str> {
    let model = KraftModel::new(trace.config);
    witnessed_along(&model, model.initial_state(), trace.actions(), |s, a| {
        model.step(s, a)
    })
}

/// Shortest traces (breadth-first, default bounds) that take each step kind and reach each
/// sometimes-property's witness, visiting at most `state_limit` states. Returns one trace
/// per target found, with the target, and the targets not found.
pub fn covering_set(state_limit: usize) -> (Vec<(String, KraftTrace)>, Vec<String>) {
    let model = KraftModel::new(KraftConfig::default());
    let props = sometimes_properties();
    let mut open = covering_targets(&KraftAction::KINDS, &props);
    let hits = covering_search(
        &model,
        model.initial_state(),
        |s| successors(&model, s),
        KraftAction::kind,
        &props,
        &mut open,
        state_limit,
    );
    let found = hits
        .into_iter()
        .map(|(target, actions)| {
            let trace =
                KraftTrace::from_actions(&model, &actions).expect("search takes enabled steps");
            (target, trace)
        })
        .collect();
    (found, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_are_deterministic_in_the_seed_and_valid() {
        let a = random_walks(6, 16, 3);
        assert_eq!(a, random_walks(6, 16, 3));
        assert_ne!(a, random_walks(6, 16, 4));
        for t in &a {
            t.validate().unwrap();
            assert!(t.steps.len() <= 17);
        }
    }

    #[test]
    fn the_covering_set_reaches_every_step_kind_and_witness() {
        let (found, missing) = covering_set(400_000);
        assert!(missing.is_empty(), "not reached: {missing:?}");
        for (target, trace) in &found {
            trace.validate().unwrap();
            let last = trace.steps.last().and_then(|s| s.action).unwrap();
            if let Some(k) = target.strip_prefix("step:") {
                assert_eq!(last.kind(), k);
            } else {
                let name = target.strip_prefix("witness:").unwrap();
                assert!(witnessed(trace).contains(&name), "{target}");
            }
        }
    }
}
