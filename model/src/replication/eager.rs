//! The eager-step reduction: steps the checker takes in the same transition as the one
//! that enables them, with why that is sound (see `PartitionModel::eager_follower`).

use super::PartitionModel;
use crate::action::Action;
use crate::config::FetchDelivery;
use crate::state::*;
use crate::types::*;

impl PartitionModel {
    /// The successor the checker explores: `action`'s step followed by the eager steps it
    /// enables (see [`PartitionModel::eager_step`]). Together with those steps it is a run of
    /// the model; [`PartitionModel::with_eager_steps`] names them.
    pub fn successor(&self, s: &PartitionState, action: Action) -> Option<PartitionState> {
        let mut n = self.step(s, action)?;
        let mut last = action;
        while let Some(eager) = self.eager_step(last, &n) {
            n = self
                .step(&n, eager)
                .expect("an eager step is enabled and changes the state");
            last = eager;
        }
        Some(n)
    }

    /// The steps of the checker's transitions taken by `actions` from the initial state: each
    /// action followed by the eager steps [`PartitionModel::successor`] takes with it.
    /// The result replays step by step with [`PartitionModel::step`].
    pub fn with_eager_steps(&self, actions: &[Action]) -> Vec<Action> {
        let mut s = self.initial_state();
        let mut out = Vec::with_capacity(actions.len());
        for a in actions {
            out.push(*a);
            let Some(mut n) = self.step(&s, *a) else {
                // Not a run of the model: keep the rest as is, so replay reports this step.
                out.extend_from_slice(&actions[out.len()..]);
                return out;
            };
            let mut last = *a;
            while let Some(eager) = self.eager_step(last, &n) {
                n = self
                    .step(&n, eager)
                    .expect("an eager step is enabled and changes the state");
                out.push(eager);
                last = eager;
            }
            s = n;
        }
        out
    }

    /// The step the checker takes at once after `last`, in the same transition, if any:
    /// - under atomic fetch delivery ([`FetchDelivery::Atomic`]), the follower handles the
    ///   response to the Fetch it just sent (a fetch whose response would change nothing
    ///   leaves none in flight);
    /// - otherwise a BecomeFollower of a live follower whose metadata is dead
    ///   ([`PartitionModel::eager_follower`]).
    pub fn eager_step(&self, last: Action, s: &PartitionState) -> Option<Action> {
        if let Action::Fetch { follower } = last {
            if self.config.fetch == FetchDelivery::Atomic
                && s.replica(follower).inflight_fetch.is_some()
            {
                return Some(Action::HandleFetchResponse { follower });
            }
        }
        self.eager_follower(s)
            .map(|broker| Action::BecomeFollower { broker })
    }

    /// A live follower whose metadata is dead and that the checker moves to the controller's
    /// metadata at once, in the transition that killed it (an "eager local step").
    ///
    /// Dead metadata, as in `canonical::erase_unobservable`: the follower `b` has no response
    /// in flight, and its (leader, leader epoch) is not the controller's and is not led by
    /// that leader any more (or names no leader). Then no step can ever fetch with it (the
    /// controller's leader epoch only grows and has one leader per epoch, fetches are fenced
    /// by epoch, KIP-320), and while it stays dead no step and no property reads it: other
    /// brokers' steps and the controller's never read a follower's leader, leader epoch or
    /// validation flag; b's own Fetch and HandleFetchResponse are disabled; BecomeFollower
    /// and BecomeLeader overwrite it without reading it (b is not its old leader, so no
    /// delayed produce fails); Crash resets it (the leader epoch of a broker with no leader
    /// is erased). LeaderEpochsMonotonic reads the leader epoch, but holds for every copy of
    /// a controller epoch.
    ///
    /// Soundness: let `t` be the state with b's metadata dead and `t'` the state after b's
    /// BecomeFollower. Relate two states when they are equal but for some live brokers whose
    /// metadata is dead on the left and whatever (not themselves as leader, nothing in
    /// flight) on the right. Every step from the left state is enabled on the right and leads
    /// to related states: the steps of other brokers and of the controller do not read the
    /// differing fields, b's BecomeFollower, BecomeLeader and Crash lead to equal states, and
    /// dead metadata stays dead. Related states give every property the same verdict. So
    /// every state reachable without the eager step is related to one reachable with it,
    /// which violates the same properties; conversely the eager transitions are runs of the
    /// model, so every state the reduced search reaches is reachable. The reduced search loses
    /// only interleavings of an invisible step whose every alternative it simulates. Each
    /// stored state is expanded in full (the eager steps only skip transient states), so no
    /// step is ignored along a cycle.
    ///
    /// Off under the unfenced-truncation variant (unfenced fetches make old metadata live)
    /// and the hw-truncation variant (its BecomeFollower truncates the log, so it is visible).
    /// Never for the controller's leader (that is BecomeLeader, which is visible) nor while
    /// the partition is offline (BecomeFollower then only copies an epoch that is erased).
    pub fn eager_follower(&self, s: &PartitionState) -> Option<BrokerId> {
        if !s.scope.fenced_fetch || !s.scope.offline_epoch_unobservable {
            return None;
        }
        let c = &s.controller;
        if c.leader == NO_BROKER {
            return None;
        }
        (0..self.n()).find(|&b| {
            let r = s.replica(b);
            r.alive
                && !c.offline_logs.contains(b)
                && c.leader != b
                && r.leader != b
                && r.inflight_fetch.is_none()
                && (r.leader, r.leader_epoch) != (c.leader, c.leader_epoch)
                && (r.leader >= self.n() || {
                    let l = s.replica(r.leader);
                    !(l.is_leader(r.leader) && l.leader_epoch == r.leader_epoch)
                })
        })
    }
}
