//! The symmetry reduction's representative is a canonical form: every renaming of brokers of a
//! reachable state has the same representative, and a representative is its own. Checked on
//! states reached by random walks under several bounds.

use osprey_model::symmetry::renamed;
use osprey_model::{ModelConfig, PartitionModel, PartitionState, Variant};
use proptest::prelude::*;
use stateright::Representative;

/// Every permutation of `0..n`, as `order[new] = old` arrays with the ids above `n` fixed.
fn orders(n: usize) -> Vec<[u8; 5]> {
    let mut out = Vec::new();
    let mut ids: Vec<u8> = (0..n as u8).collect();
    permute(&mut ids, 0, &mut |p| {
        let mut o = [0, 1, 2, 3, 4];
        o[..n].copy_from_slice(p);
        out.push(o);
    });
    out
}

fn permute(ids: &mut Vec<u8>, k: usize, f: &mut impl FnMut(&[u8])) {
    if k == ids.len() {
        f(ids);
        return;
    }
    for i in k..ids.len() {
        ids.swap(k, i);
        permute(ids, k + 1, f);
        ids.swap(k, i);
    }
}

fn walk(model: &PartitionModel, choices: &[u16]) -> Vec<PartitionState> {
    let mut state = model.initial_state();
    let mut seen = vec![state];
    let mut actions = Vec::new();
    for c in choices {
        actions.clear();
        model.enabled_actions(&state, &mut actions);
        let next: Vec<_> = actions
            .iter()
            .filter_map(|a| model.step(&state, *a))
            .collect();
        if next.is_empty() {
            break;
        }
        state = next[*c as usize % next.len()];
        seen.push(state);
    }
    seen
}

fn assert_canonical(config: ModelConfig, choices: &[u16]) -> Result<(), TestCaseError> {
    let model = PartitionModel::new(config);
    let all = orders(config.brokers as usize);
    for s in walk(&model, choices) {
        let rep = s.representative();
        prop_assert_eq!(rep.representative(), rep, "not idempotent on {:?}", s);
        for o in &all {
            let t = renamed(&s, o);
            prop_assert_eq!(t.representative(), rep, "renaming {:?} of {:?}", o, s);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn every_renaming_has_the_same_representative(
        brokers in 2u8..=4,
        records in 1u8..=3,
        variant in proptest::option::of(0usize..Variant::ALL.len()),
        choices in proptest::collection::vec(any::<u16>(), 1..80),
    ) {
        let config = ModelConfig {
            brokers,
            records,
            max_epoch: 4,
            max_crashes: 2,
            max_isr_changes: 4,
            min_isr: 2.min(brokers),
            variant: variant.map(|v| Variant::ALL[v]),
            ..ModelConfig::default()
        };
        assert_canonical(config, &choices)?;
    }
}

/// The partition model with its steps offered in reverse order, so that the depth-first
/// search keeps other members of each equivalence class.
#[derive(Clone)]
struct Reversed(PartitionModel);

impl stateright::Model for Reversed {
    type State = PartitionState;
    type Action = osprey_model::Action;
    fn init_states(&self) -> Vec<PartitionState> {
        self.0.init_states()
    }
    fn actions(&self, s: &PartitionState, actions: &mut Vec<osprey_model::Action>) {
        self.0.actions(s, actions);
        actions.reverse();
    }
    fn next_state(&self, s: &PartitionState, a: osprey_model::Action) -> Option<PartitionState> {
        self.0.next_state(s, a)
    }
    fn properties(&self) -> Vec<stateright::Property<Self>> {
        vec![stateright::Property::always(
            "explore everything",
            |_, _| true,
        )]
    }
}

/// Merging states is sound only if whichever member of a class the search keeps reaches the
/// same classes as the others: then the number of classes does not depend on the search
/// order. (Erasing a stale fetch response only in the representative broke this: the kept
/// state could be the one still holding it.)
#[test]
fn the_reduced_state_space_does_not_depend_on_the_search_order() {
    use stateright::{Checker, Model};
    let config = ModelConfig {
        records: 1,
        max_epoch: 1,
        max_isr_changes: 1,
        ..ModelConfig::default()
    };
    let model = PartitionModel::new(config);
    let a = model
        .clone()
        .checker()
        .threads(1)
        .symmetry()
        .spawn_dfs()
        .join()
        .unique_state_count();
    let b = Reversed(model)
        .checker()
        .threads(1)
        .symmetry()
        .spawn_dfs()
        .join()
        .unique_state_count();
    assert_eq!(a, b);
    assert!(a > 10_000, "{a}");
}

/// Broker 0 led epoch 0; the controller moved leadership to broker 1 and both other brokers
/// learned it, so nobody fetches from broker 0 in epoch 0 and its high watermark cannot move
/// (it never learned its followers' ends). A produce it takes is never acknowledged.
fn frozen_zombie_state(model: &PartitionModel) -> PartitionState {
    use osprey_model::Action::*;
    run(
        model,
        &[
            MoveLeader { to: 1 },
            BecomeLeader { broker: 1 },
            BecomeFollower { broker: 2 },
            Produce {
                leader: 0,
                acks_all: true,
            },
        ],
    )
}

/// The state `actions` lead to from the initial state, each of them enabled.
fn run(model: &PartitionModel, actions: &[osprey_model::Action]) -> PartitionState {
    actions.iter().fold(model.initial_state(), |s, a| {
        model
            .step(&s, *a)
            .unwrap_or_else(|| panic!("{a:?} is enabled"))
    })
}

#[test]
fn a_frozen_zombie_is_known_only_by_what_outlives_its_leadership() {
    use osprey_model::state::RecordStatus;
    use osprey_model::types::BrokerSet;
    let model = PartitionModel::new(ModelConfig::default());
    let s = frozen_zombie_state(&model);
    assert!(s.replica(0).is_leader(0));
    assert!(matches!(
        s.ghost.records[0],
        RecordStatus::Pending { leader: 0, .. }
    ));
    // Its pending produce, ISR proposal and followers' ends are unobservable: states that
    // differ in them have the same representative.
    let mut t = s;
    t.ghost.records[0] = RecordStatus::Failed;
    t.replica_mut(0).pending_isr = Some(BrokerSet::all(3).without(2));
    t.replica_mut(0).follower_end_offset[2] = 0;
    t.replica_mut(0).follower_broker_epoch[2] = 0;
    assert_eq!(s.representative(), t.representative());
    // Its log is not: it outlives the leadership (broker 0 may be elected again with it).
    let mut u = s;
    u.replica_mut(0).log.truncate(0);
    u.replica_mut(0).epoch_cache.truncate_from_end(0);
    assert_ne!(s.representative(), u.representative());
    // Nor is whether its ISR is below min.insync.replicas (its next produce is refused).
    let mut v = s;
    v.replica_mut(0).isr = BrokerSet::single(0);
    assert_ne!(s.representative(), v.representative());
}

#[test]
fn a_zombie_someone_still_fetches_from_is_not_frozen() {
    use osprey_model::state::RecordStatus;
    use osprey_model::Action::*;
    let model = PartitionModel::new(ModelConfig::default());
    let s = run(
        &model,
        &[
            MoveLeader { to: 1 },
            BecomeLeader { broker: 1 },
            Produce {
                leader: 0,
                acks_all: true,
            },
        ],
    );
    // Broker 2 still follows broker 0 in epoch 0, and its fetches still reach broker 0 and
    // change what broker 0 knows: the zombie is not frozen, and its pending produce is kept.
    let mut t = s;
    t.ghost.records[0] = RecordStatus::Failed;
    assert_ne!(s.representative(), t.representative());
    assert!(model.step(&s, Fetch { follower: 2 }).is_some());
}
