//! Broker → model: random interleavings of the broker's own operations (produce, fetch
//! round trips, ISR shrinks and expands with their AlterPartition, metadata propagation,
//! crashes that lose the unflushed tail, restarts, fencing and elections through the
//! controller), recorded as model actions. Every step the broker takes must be a legal step
//! of the (fixed) model from the matching model state, land in the state the abstraction
//! reads from the broker, and keep every always-property. [`run`] is one such run; the
//! property tests (`tests/broker_to_model.rs`, `tests/faults.rs`) feed it random schedules
//! and shrink failures to a short one.

use osprey_broker::faults::Fault;
use osprey_model::trace::{violated_properties, StateView, Trace};
use osprey_model::{Action, FlushPolicy, ModelConfig, PartitionModel};
use proptest::prelude::*;

use crate::replay::Cluster;

/// Generous bounds: the run is limited by its length, not by the model's bounds, except
/// where the test keeps to them (crashes, elections) before asking the broker.
pub fn config(flush_every: bool, min_isr: u8) -> ModelConfig {
    ModelConfig {
        brokers: 3,
        records: 4,
        max_epoch: 7,
        max_crashes: 3,
        max_isr_changes: 20,
        min_isr,
        unclean: false,
        flush: if flush_every {
            FlushPolicy::Every
        } else {
            FlushPolicy::Never
        },
        acks: osprey_model::AcksChoice::Both,
        // The broker's fetch responses travel on their own: the finer grain.
        fetch: osprey_model::FetchDelivery::Split,
        variant: None,
        max_log_failures: 1,
    }
}

/// Every operation the run may try, for brokers `0..n`.
fn alphabet(n: u8) -> Vec<Action> {
    let mut out = Vec::new();
    for b in 0..n {
        out.push(Action::Produce {
            leader: b,
            acks_all: true,
        });
        out.push(Action::Produce {
            leader: b,
            acks_all: false,
        });
        out.push(Action::Fetch { follower: b });
        out.push(Action::HandleFetchResponse { follower: b });
        out.push(Action::AlterPartition { leader: b });
        out.push(Action::BecomeLeader { broker: b });
        out.push(Action::BecomeFollower { broker: b });
        out.push(Action::Restart { broker: b });
        out.push(Action::UnfenceBroker { broker: b });
        out.push(Action::ElectLeader {
            broker: b,
            unclean: false,
        });
        out.push(Action::MoveLeader { to: b });
        out.push(Action::FenceBroker {
            broker: b,
            new_leader: None,
        });
        out.push(Action::LogFails {
            broker: b,
            new_leader: None,
        });
        for o in 0..n {
            if o != b {
                out.push(Action::ProposeIsrShrink {
                    leader: b,
                    follower: o,
                });
                out.push(Action::ProposeIsrExpand {
                    leader: b,
                    follower: o,
                });
                out.push(Action::FenceBroker {
                    broker: b,
                    new_leader: Some(o),
                });
                out.push(Action::LogFails {
                    broker: b,
                    new_leader: Some(o),
                });
            }
        }
    }
    out
}

/// The crash the broker would have: a clean one keeps the whole log, an unclean one the
/// flushed prefix, both read from the broker's own state.
fn crash_action(view: &StateView, b: u8, clean: bool) -> Action {
    let v = &view.brokers[b as usize];
    Action::Crash {
        broker: b,
        clean,
        kept: if clean {
            v.log_end_offset
        } else {
            v.flushed_offset
        },
    }
}

pub fn run(
    config: ModelConfig,
    fault: Option<Fault>,
    choices: &[(u16, bool)],
) -> Result<(), TestCaseError> {
    run_recording(config, fault, choices, &mut Vec::new())
}

/// [`run`], leaving the model steps the broker took in `recorded` (also when it fails: the
/// failing step is the last one recorded, unless the broker took a step the model has not).
pub fn run_recording(
    config: ModelConfig,
    fault: Option<Fault>,
    choices: &[(u16, bool)],
    recorded: &mut Vec<Action>,
) -> Result<(), TestCaseError> {
    let model = PartitionModel::new(config);
    let mut cluster = Cluster::with_fault(config, fault).map_err(TestCaseError::fail)?;
    let mut state = model.initial_state();
    recorded.clear();
    let mut faults = 0u8;
    let ops = alphabet(config.brokers);
    for &(pick, crash_clean) in choices {
        let before = cluster.view().map_err(TestCaseError::fail)?;
        // Half the picks are operations the broker may or may not take from here (which it
        // refuses is part of the test); the other half are steps the model enables now with
        // Kafka's controller choices, so that runs get deep enough to reach elections after
        // crashes, restarts and ISR changes.
        let enabled = if pick % 2 == 0 {
            crate::generate::successors(&model, &state)
        } else {
            Vec::new()
        };
        let action = if let Some((a, _)) = enabled.get((pick as usize / 2) % enabled.len().max(1)) {
            *a
        } else {
            let idx = (pick as usize / 2) % (ops.len() + 3);
            match ops.get(idx) {
                Some(a) => *a,
                None => crash_action(&before, (idx - ops.len()) as u8, crash_clean),
            }
        };
        // Keep within the model's fault and election bounds (the broker has none).
        let c = &before.controller;
        let live_fencing = matches!(action, Action::FenceBroker { broker, .. }
            if before.brokers[broker as usize].role != osprey_model::trace::Role::Down);
        let is_crash = matches!(action, Action::Crash { .. });
        if (is_crash || live_fencing) && faults >= config.max_crashes {
            continue;
        }
        if matches!(action, Action::LogFails { .. })
            && c.offline_logs.len() >= usize::from(config.max_log_failures)
        {
            continue;
        }
        let elects = matches!(
            action,
            Action::ElectLeader { .. } | Action::MoveLeader { .. }
        ) || matches!(action, Action::FenceBroker { broker, .. } | Action::LogFails { broker, .. } if c.leader == Some(broker))
            // An unfence may elect (Kafka's controller does it in the same event).
            || matches!(action, Action::UnfenceBroker { .. } if c.leader.is_none());
        if elects && c.leader_epoch >= config.max_epoch {
            continue;
        }
        if is_crash
            && before.brokers[action_broker(action) as usize].role
                == osprey_model::trace::Role::Down
        {
            continue;
        }
        step(
            &model,
            &mut cluster,
            &mut state,
            recorded,
            action,
            &mut faults,
        )?;
        // Kafka's controller elects in the unfence that makes a candidate live; the model
        // takes that election as its own step, next.
        if let Some(owed) = cluster.owed_step() {
            step(
                &model,
                &mut cluster,
                &mut state,
                recorded,
                owed,
                &mut faults,
            )?;
            prop_assert!(
                cluster.owed_step().is_none(),
                "the owed election was refused"
            );
        }
    }
    let trace = Trace::from_actions(&model, recorded).map_err(TestCaseError::fail)?;
    trace.validate().map_err(TestCaseError::fail)?;
    prop_assert!(trace.violated.is_empty());
    Ok(())
}

/// Applies `action` to the broker and, if the broker took it, to the model; checks the
/// states agree and every always-property holds.
fn step(
    model: &PartitionModel,
    cluster: &mut Cluster,
    state: &mut osprey_model::PartitionState,
    recorded: &mut Vec<Action>,
    action: Action,
    faults: &mut u8,
) -> Result<(), TestCaseError> {
    let config = model.config;
    let before = cluster.view().map_err(TestCaseError::fail)?;
    let is_crash = matches!(action, Action::Crash { .. });
    let live_fencing = matches!(action, Action::FenceBroker { broker, .. }
        if before.brokers[broker as usize].role != osprey_model::trace::Role::Down);
    {
        let inflight_before: Vec<bool> = (0..config.brokers)
            .map(|b| cluster.has_inflight_fetch(b))
            .collect();
        if cluster.apply(action).is_err() {
            // The broker (or its controller) refused: nothing happened, nothing is recorded.
            let after = cluster.view().map_err(TestCaseError::fail)?;
            prop_assert_eq!(
                &after,
                &before,
                "a refused {} changed the broker",
                action.describe()
            );
            return Ok(());
        }
        let after = cluster.view().map_err(TestCaseError::fail)?;
        let inflight_after: Vec<bool> = (0..config.brokers)
            .map(|b| cluster.has_inflight_fetch(b))
            .collect();
        match model.step(state, action) {
            Some(next) => {
                *state = next;
                recorded.push(action);
                if is_crash || live_fencing {
                    *faults += 1;
                }
            }
            None => {
                // The model has no such step from here: legal only if the broker did nothing
                // the model can see either (a no-op request).
                prop_assert!(
                    after == before && inflight_after == inflight_before,
                    "after {:?}: {} is not a model step, yet the broker changed",
                    recorded.iter().map(|a| a.describe()).collect::<Vec<_>>(),
                    action.describe()
                );
                return Ok(());
            }
        }
        let expected = StateView::of(model, state);
        let diff = crate::abstraction::diff(&expected, &after);
        prop_assert!(
            diff.is_empty(),
            "after {:?}: the broker's state is not the model's: {:?}",
            recorded.iter().map(|a| a.describe()).collect::<Vec<_>>(),
            diff
        );
        let broken = violated_properties(model, state);
        prop_assert!(
            broken.is_empty(),
            "{} broke {:?}",
            action.describe(),
            broken
        );
    }
    Ok(())
}

fn action_broker(a: Action) -> u8 {
    match a {
        Action::Crash { broker, .. } => broker,
        _ => 0,
    }
}
