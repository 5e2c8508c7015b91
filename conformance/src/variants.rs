//! The model's bug variants against the broker's faults: which fault puts each flaw back,
//! the correct broker's settings for a variant's bounds, where in a counterexample the flaw
//! first acts, and a replay that reads the broker's own state for lost data.
//!
//! A counterexample (`conformance/counterexamples/VARIANT.json`, written by
//! `osprey traces counterexample --variant VARIANT`) is a run of the flawed model that ends
//! in a state breaking an always-property, keeping to Kafka's controller choices so the
//! broker's controller can take it. Replayed on the correct broker it must diverge where the
//! flaw first acts; on the broker with the matching fault it must match step by step and
//! lose data on the broker itself ([`replay_faulty`]).

use std::collections::BTreeMap;

use osprey_broker::faults::Fault;
use osprey_model::state::RecordStatus;
use osprey_model::trace::{Role, StateView, Trace};
use osprey_model::{ModelConfig, PartitionModel, Variant};

use crate::abstraction::diff;
use crate::replay::Cluster;

/// The broker fault that puts `v`'s flaw back.
pub fn fault_for(v: Variant) -> Fault {
    match v {
        Variant::UncleanElection => Fault::UncleanElection,
        Variant::HwTruncation => Fault::HwTruncation,
        Variant::SingleEpochTruncation => Fault::SingleEpochTruncation,
        Variant::UnfencedTruncation => Fault::UnfencedTruncation,
        Variant::NoExpandGuard => Fault::NoExpandGuard,
        Variant::EagerIsrShrink => Fault::EagerIsrShrink,
        Variant::LastReplicaStanding => Fault::LastReplicaStanding,
        Variant::AckBeforeReplication => Fault::AckBeforeReplication,
        Variant::StaleBrokerEpoch => Fault::StaleBrokerEpoch,
    }
}

/// The correct protocol with a variant's bounds: no variant, and unclean election off
/// (Kafka's default since 0.11; the unclean-election variant is that setting).
pub fn correct_config(c: ModelConfig) -> ModelConfig {
    ModelConfig {
        variant: None,
        unclean: false,
        ..c
    }
}

/// The first step of `trace` (a run of a flawed model) that the correct model does not take
/// to the same state: where the flaw first acts. `None` if the correct model follows the
/// whole trace.
pub fn where_the_flaw_acts(trace: &Trace) -> Option<usize> {
    let model = PartitionModel::new(correct_config(trace.config));
    let mut s = model.initial_state();
    for step in &trace.steps[1..] {
        let a = step.action?;
        match model.step(&s, a) {
            Some(n) if StateView::of(&model, &n) == step.state => s = n,
            _ => return Some(step.index),
        }
    }
    None
}

/// What a faulty replay did: the first mismatch with the model, if any, and the data the
/// broker itself lost, read from its own state after each step.
#[derive(Debug, Default)]
pub struct FaultyReplay {
    pub mismatch: Option<(usize, String)>,
    /// `(step, what was lost)` for every loss the broker's state shows, each starting with
    /// the name of the model's property it breaks.
    pub losses: Vec<(usize, String)>,
}

/// Replays `trace` on a broker with `fault` (and the correct settings of the trace's bounds),
/// comparing with the model after each step as `replay` does, and checks the broker's own
/// state for lost data: an acks=all acknowledged record missing at its offset from the log of
/// the controller's current leader once that leader has learned its epoch
/// (NoCommittedWriteLoss), and an entry that was once below a leader's high watermark
/// (consumable) missing or changed in a later leader's log (ConsumedNeverLost).
pub fn replay_faulty(trace: &Trace, fault: Option<Fault>) -> FaultyReplay {
    let mut out = FaultyReplay::default();
    let mut cluster = match Cluster::with_fault(correct_config(trace.config), fault) {
        Ok(c) => c,
        Err(e) => {
            out.mismatch = Some((0, e));
            return out;
        }
    };
    // Offset → the entry once consumable there.
    let mut consumed: BTreeMap<u8, (u8, u8)> = BTreeMap::new();
    for step in &trace.steps {
        if let Some(a) = step.action {
            if let Err(e) = cluster.apply(a) {
                out.mismatch = Some((step.index, e));
                return out;
            }
        }
        let view = match cluster.view() {
            Ok(v) => v,
            Err(e) => {
                out.mismatch = Some((step.index, e));
                return out;
            }
        };
        let d = diff(&step.state, &view);
        if !d.is_empty() {
            out.mismatch = Some((step.index, d.join("; ")));
            return out;
        }
        for loss in losses(&view, &mut consumed) {
            out.losses.push((step.index, loss));
        }
    }
    out
}

/// The losses `view` shows (see [`replay_faulty`]); records what is consumable now.
fn losses(view: &StateView, consumed: &mut BTreeMap<u8, (u8, u8)>) -> Vec<String> {
    let mut out = Vec::new();
    let c = &view.controller;
    let leader = c.leader.and_then(|l| {
        let b = &view.brokers[l as usize];
        (b.role == Role::Leader && b.leader_epoch == c.leader_epoch).then_some(b)
    });
    if let Some(l) = leader {
        for (i, st) in view.records.iter().enumerate() {
            let record = i as u8 + 1;
            if let RecordStatus::Acked {
                offset,
                epoch,
                acks_all: true,
            } = *st
            {
                if epoch <= l.leader_epoch && l.log.get(offset as usize) != Some(&(record, epoch)) {
                    out.push(format!(
                        "NoCommittedWriteLoss: acknowledged record {record} (offset {offset}, epoch {epoch}) is not in leader {}'s log {:?}",
                        l.id, l.log
                    ));
                }
            }
        }
        for (&o, &e) in consumed.iter() {
            if l.log.get(o as usize) != Some(&e) {
                out.push(format!(
                    "ConsumedNeverLost: entry {e:?} consumable at offset {o} is gone from leader {}'s log {:?}",
                    l.id, l.log
                ));
            }
        }
    }
    for b in view.brokers.iter().filter(|b| b.role == Role::Leader) {
        for o in 0..b.high_watermark.min(b.log_end_offset) {
            if let Some(&e) = b.log.get(o as usize) {
                consumed.entry(o).or_insert(e);
            }
        }
    }
    out
}
