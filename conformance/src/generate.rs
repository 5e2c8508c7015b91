//! Trace generation: seeded random walks of the model, and a covering set that reaches
//! every step kind and every sometimes-property's witness by breadth-first search.
//!
//! Everything here is deterministic in its inputs: the walks use [`SplitMix64`] seeded by
//! the caller, the search visits actions in the model's order.

use std::collections::VecDeque;
use std::path::Path;

use osprey_model::properties;
use osprey_model::trace::Trace;
use osprey_model::{Action, ModelConfig, PartitionModel, PartitionState};
use stateright::{Expectation, Model, Property};

use crate::search::{covering_search, covering_targets, Arena};

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed PRNG; good enough to pick
/// steps, and reproducible from one `u64` seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection so small ranges are unbiased.
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

/// The steps enabled in `s` that change it (what the checker would explore) and that
/// Kafka's controller takes the same way ([`crate::controller::kafka_takes`]), in the
/// model's order.
pub fn successors(model: &PartitionModel, s: &PartitionState) -> Vec<(Action, PartitionState)> {
    let mut actions = Vec::new();
    model.enabled_actions(s, &mut actions);
    actions
        .into_iter()
        .filter_map(|a| model.step(s, a).map(|n| (a, n)))
        .filter(|(a, n)| crate::controller::kafka_takes(model, s, *a, n))
        .collect()
}

/// One random walk of at most `max_depth` steps (shorter if the model has nothing left to do).
pub fn random_walk(config: ModelConfig, max_depth: usize, rng: &mut SplitMix64) -> Trace {
    let model = PartitionModel::new(config);
    let mut s = model.initial_state();
    let mut actions = Vec::new();
    for _ in 0..max_depth {
        let next = successors(&model, &s);
        if next.is_empty() {
            break;
        }
        let (a, n) = next[rng.below(next.len())];
        actions.push(a);
        s = n;
    }
    Trace::from_actions(&model, &actions).expect("a walk takes only enabled steps")
}

/// The configurations random walks cycle through: the default bounds, and variations of
/// the switches the broker reads (flush policy, acks, min ISR with unclean election, more
/// faults). All run the fixed protocol (no variant).
pub fn walk_configs() -> Vec<ModelConfig> {
    let d = ModelConfig::default();
    vec![
        d,
        ModelConfig {
            flush: osprey_model::FlushPolicy::Every,
            ..d
        },
        ModelConfig {
            acks: osprey_model::AcksChoice::Both,
            ..d
        },
        ModelConfig {
            min_isr: 1,
            unclean: true,
            ..d
        },
        ModelConfig {
            max_crashes: 2,
            max_isr_changes: 3,
            ..d
        },
        ModelConfig {
            max_log_failures: 1,
            ..d
        },
    ]
}

/// `count` random walks, the i-th with configuration `walk_configs()[i % len]`, all from
/// one generator seeded with `seed`.
pub fn random_walks(count: usize, max_depth: usize, seed: u64) -> Vec<Trace> {
    walks_over(&walk_configs(), count, seed, |c, rng| {
        random_walk(c, max_depth, rng)
    })
}

/// `count` walks, the i-th taken by `walk` with `configs[i % len]`, all from one generator
/// seeded with `seed` (for either model).
pub fn walks_over<C: Copy, T>(
    configs: &[C],
    count: usize,
    seed: u64,
    mut walk: impl FnMut(C, &mut SplitMix64) -> T,
) -> Vec<T> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| walk(configs[i % configs.len()], &mut rng))
        .collect()
}

/// The model's sometimes-properties, by name.
pub fn sometimes_properties() -> Vec<stateright::Property<PartitionModel>> {
    sometimes_of(properties::all())
}

/// The sometimes-properties among `properties`, in order (for either model).
pub fn sometimes_of<M: Model>(properties: Vec<Property<M>>) -> Vec<Property<M>> {
    properties
        .into_iter()
        .filter(|p| p.expectation == Expectation::Sometimes)
        .collect()
}

/// The names of the sometimes-properties some state of `trace` witnesses.
pub fn witnessed(trace: &Trace) -> Vec<&'static str> {
    let model = PartitionModel::new(trace.config);
    witnessed_along(&model, model.initial_state(), trace.actions(), |s, a| {
        model.step(s, a)
    })
}

/// The names of `model`'s sometimes-properties that some state of a run witnesses: the run
/// starts at `init` and takes `actions` by `step` (the model's own steps, eager ones listed
/// as steps, as traces list them) while they are enabled.
pub fn witnessed_along<M: Model>(
    model: &M,
    init: M::State,
    actions: impl IntoIterator<Item = M::Action>,
    step: impl Fn(&M::State, M::Action) -> Option<M::State>,
) -> Vec<&'static str> {
    let mut states = vec![init];
    for a in actions {
        match step(states.last().expect("non-empty"), a) {
            Some(n) => states.push(n),
            None => break,
        }
    }
    sometimes_of(model.properties())
        .into_iter()
        .filter(|p| states.iter().any(|s| (p.condition)(model, s)))
        .map(|p| p.name)
        .collect()
}

/// The configurations the covering search runs, smallest first: two brokers with min ISR 1
/// reach every step kind (an offline partition needs an ISR of one) within a few thousand
/// states; the default bounds give the witnesses in the default setting; one failed log
/// (`LogFails`) last, so that the earlier traces stay as they were.
pub fn covering_configs() -> Vec<ModelConfig> {
    let d = ModelConfig::default();
    vec![
        ModelConfig {
            brokers: 2,
            records: 1,
            max_epoch: 2,
            min_isr: 1,
            ..d
        },
        d,
        ModelConfig {
            brokers: 2,
            records: 1,
            max_epoch: 2,
            min_isr: 1,
            max_log_failures: 1,
            ..d
        },
    ]
}

/// Shortest traces (breadth-first) that take each step kind and reach each sometimes
/// property's witness, searching `covering_configs()` in order and each for at most
/// `state_limit` states. Returns one trace per target found, each with the targets it was
/// searched for, and the targets not found.
pub fn covering_set(state_limit: usize) -> (Vec<(String, Trace)>, Vec<String>) {
    let props = sometimes_properties();
    let mut missing = covering_targets(&Action::KINDS, &props);
    let mut found = Vec::new();
    for config in covering_configs() {
        if missing.is_empty() {
            break;
        }
        let model = PartitionModel::new(config);
        let hits = covering_search(
            &model,
            model.initial_state(),
            |s| successors(&model, s),
            Action::kind,
            &props,
            &mut missing,
            state_limit,
        );
        for (target, actions) in hits {
            let trace = Trace::from_actions(&model, &actions).expect("search takes enabled steps");
            found.push((target, trace));
        }
    }
    (found, missing)
}

/// The shortest run (breadth-first, at most `limit` states) that keeps to Kafka's
/// controller choices ([`successors`]) and ends in a state breaking an always-property:
/// a variant's counterexample that the broker's own controller can replay. The checker's
/// counterexample may elect another candidate than Kafka would.
pub fn kafka_counterexample(config: ModelConfig, limit: usize) -> Option<Trace> {
    let model = PartitionModel::new(config);
    let mut arena = Arena::new();
    let mut seen: std::collections::HashSet<PartitionState> = std::collections::HashSet::new();
    let init = model.initial_state();
    seen.insert(init);
    let mut queue = VecDeque::from([(init, 0usize)]);
    while let Some((s, i)) = queue.pop_front() {
        if arena.len() > limit {
            return None;
        }
        for (a, n) in successors(&model, &s) {
            if !seen.insert(n) {
                continue;
            }
            let j = arena.push(i, a);
            if !osprey_model::trace::violated_properties(&model, &n).is_empty() {
                return Trace::from_actions(&model, &arena.path(j)).ok();
            }
            queue.push_back((n, j));
        }
    }
    None
}

/// Writes each trace as `{prefix}-{index:04}.json` in `dir` (created if needed).
pub fn write_traces<T: serde::Serialize>(
    dir: &Path,
    prefix: &str,
    traces: &[T],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, t) in traces.iter().enumerate() {
        let json = serde_json::to_string(t).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("{prefix}-{i:04}.json")), json + "\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_are_deterministic_in_the_seed_and_valid() {
        let a = random_walks(5, 12, 7);
        let b = random_walks(5, 12, 7);
        assert_eq!(a, b);
        assert_ne!(a, random_walks(5, 12, 8));
        for t in &a {
            t.validate().unwrap();
            assert!(t.steps.len() <= 13);
        }
    }

    #[test]
    fn the_covering_set_reaches_every_step_kind_and_witness() {
        let (found, missing) = covering_set(200_000);
        assert!(missing.is_empty(), "not reached: {missing:?}");
        for (target, trace) in &found {
            trace.validate().unwrap();
            let last = trace.steps.last().and_then(|s| s.action).unwrap();
            if let Some(kind) = target.strip_prefix("step:") {
                assert_eq!(last.kind(), kind);
            } else {
                let name = target.strip_prefix("witness:").unwrap();
                assert!(witnessed(trace).contains(&name), "{target}");
            }
        }
    }
}
