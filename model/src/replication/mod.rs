//! The partition replication model: one Kafka partition replicated on every broker, with its
//! controller. `PartitionModel` implements stateright's `Model`; every step is a pure function
//! of the state, written so that it can be read next to the broker code that implements it.

use crate::action::Action;
use crate::config::{AcksChoice, ModelConfig, Variant};
use crate::state::*;
use crate::types::*;

/// One Kafka partition, replicated on `config.brokers` brokers, and its controller.
#[derive(Clone, Debug)]
pub struct PartitionModel {
    pub config: ModelConfig,
}

impl PartitionModel {
    pub fn new(config: ModelConfig) -> Self {
        PartitionModel { config }
    }

    fn n(&self) -> u8 {
        self.config.brokers
    }

    fn all(&self) -> BrokerSet {
        BrokerSet::all(self.n() as usize)
    }

    /// Whether the bounds allow one more partition change that is not an election. Elections
    /// bump both epochs, so the difference counts the other changes.
    fn isr_change_allowed(&self, c: &Controller) -> bool {
        c.partition_epoch - c.leader_epoch < self.config.max_isr_changes
    }

    fn elr_enabled(&self) -> bool {
        !self.config.is(Variant::LastReplicaStanding)
    }

    /// The initial state: the partition was just created, broker 0 leads in epoch 0 with every
    /// replica in the ISR, and every broker has learned it.
    pub fn initial_state(&self) -> PartitionState {
        let n = self.n();
        let mut brokers = [Replica::new(); MAX_BROKERS];
        for (b, r) in brokers.iter_mut().enumerate() {
            if b >= n as usize {
                r.alive = false;
                continue;
            }
            r.leader = 0;
            r.leader_epoch = 0;
            r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        }
        let leader = &mut brokers[0];
        leader.isr = BrokerSet::all(n as usize);
        leader.epoch_cache.assign(0, 0);
        PartitionState {
            brokers,
            controller: Controller {
                leader: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: BrokerSet::all(n as usize),
                elr: BrokerSet::EMPTY,
                fenced: BrokerSet::EMPTY,
                offline_logs: BrokerSet::EMPTY,
            },
            ghost: Ghost {
                records: [RecordStatus::NotSent; MAX_RECORDS],
                committed: [None; MAX_RECORDS],
                committed_conflict: false,
                crashes: 0,
                unclean_shutdown: BrokerSet::EMPTY,
                truncated_diverged_tail: false,
            },
            scope: Scope {
                brokers: n,
                max_crashes: self.config.max_crashes,
                fenced_fetch: !self.config.is(Variant::UnfencedTruncation),
                offline_epoch_unobservable: !self.config.is(Variant::HwTruncation),
                zombie_proposal_unobservable: !self.config.is(Variant::EagerIsrShrink)
                    && !self.config.is(Variant::UnfencedTruncation),
                min_isr: self.config.min_isr,
                hw_stops_below_min_isr: !self.config.is(Variant::LastReplicaStanding),
                expand_guard: !self.config.is(Variant::NoExpandGuard),
            },
        }
    }

    /// Every step enabled in `s`. A step whose effect would leave the state unchanged is
    /// dropped by `next_state`.
    pub fn enabled_actions(&self, s: &PartitionState, out: &mut Vec<Action>) {
        let cfg = &self.config;
        let c = &s.controller;
        for b in 0..self.n() {
            let r = s.replica(b);
            // A replica whose log failed takes no step of its own (its broker hosts no log).
            if r.alive && !c.offline_logs.contains(b) {
                if r.is_leader(b) && s.next_record(cfg.records).is_some() {
                    out.push(Action::Produce {
                        leader: b,
                        acks_all: true,
                    });
                    if cfg.acks == AcksChoice::Both {
                        out.push(Action::Produce {
                            leader: b,
                            acks_all: false,
                        });
                    }
                }
                if r.leader != b && r.leader != NO_BROKER && r.inflight_fetch.is_none() {
                    out.push(Action::Fetch { follower: b });
                }
                if r.inflight_fetch.is_some() {
                    out.push(Action::HandleFetchResponse { follower: b });
                }
                if r.is_leader(b) && r.pending_isr.is_none() {
                    for f in 0..self.n() {
                        if f != b {
                            out.push(Action::ProposeIsrShrink {
                                leader: b,
                                follower: f,
                            });
                            out.push(Action::ProposeIsrExpand {
                                leader: b,
                                follower: f,
                            });
                        }
                    }
                }
                if r.pending_isr.is_some() {
                    out.push(Action::AlterPartition { leader: b });
                }
                if c.leader == b {
                    out.push(Action::BecomeLeader { broker: b });
                } else {
                    out.push(Action::BecomeFollower { broker: b });
                }
                if s.ghost.crashes < cfg.max_crashes {
                    out.push(Action::Crash {
                        broker: b,
                        clean: true,
                        kept: r.log_end_offset(),
                    });
                    out.push(Action::Crash {
                        broker: b,
                        clean: false,
                        kept: r.flushed,
                    });
                }
                if c.fenced.contains(b) {
                    out.push(Action::UnfenceBroker { broker: b });
                }
                if c.offline_logs.len() < cfg.max_log_failures as usize {
                    self.log_failure_actions(c, b, out);
                }
            } else if r.alive && c.fenced.contains(b) {
                // The broker still heartbeats: only its replica is offline.
                out.push(Action::UnfenceBroker { broker: b });
            } else if !r.alive && c.fenced.contains(b) {
                out.push(Action::Restart { broker: b });
            }
            if !c.fenced.contains(b) && (!s.replica(b).alive || s.ghost.crashes < cfg.max_crashes) {
                if c.leader == b {
                    let candidates = self.election_candidates(c, b);
                    if candidates.1.is_empty() {
                        out.push(Action::FenceBroker {
                            broker: b,
                            new_leader: None,
                        });
                    }
                    for l in candidates.1.iter() {
                        out.push(Action::FenceBroker {
                            broker: b,
                            new_leader: Some(l),
                        });
                    }
                } else {
                    out.push(Action::FenceBroker {
                        broker: b,
                        new_leader: None,
                    });
                }
            }
        }
        if c.leader == NO_BROKER {
            let (unclean, candidates) = self.election_candidates(c, NO_BROKER);
            for b in candidates.iter() {
                out.push(Action::ElectLeader { broker: b, unclean });
            }
        } else {
            for to in c.isr.iter() {
                if to != c.leader && !c.fenced.contains(to) {
                    out.push(Action::MoveLeader { to });
                }
            }
        }
    }

    /// Applies `action` to `s`; `None` when it is not enabled or would change nothing.
    pub fn step(&self, s: &PartitionState, action: Action) -> Option<PartitionState> {
        if action
            .replica_step_of()
            .is_some_and(|b| s.controller.offline_logs.contains(b))
        {
            return None;
        }
        let mut n = *s;
        let applied = match action {
            Action::Produce { leader, acks_all } => self.produce(&mut n, leader, acks_all),
            Action::Fetch { follower } => self.fetch(&mut n, follower),
            Action::HandleFetchResponse { follower } => {
                self.handle_fetch_response(&mut n, follower)
            }
            Action::ProposeIsrShrink { leader, follower } => {
                self.propose_isr_shrink(&mut n, leader, follower)
            }
            Action::ProposeIsrExpand { leader, follower } => {
                self.propose_isr_expand(&mut n, leader, follower)
            }
            Action::AlterPartition { leader } => self.alter_partition(&mut n, leader),
            Action::BecomeLeader { broker } => self.become_leader(&mut n, broker),
            Action::BecomeFollower { broker } => self.become_follower(&mut n, broker),
            Action::Crash {
                broker,
                clean,
                kept,
            } => self.crash(&mut n, broker, clean, kept),
            Action::Restart { broker } => self.restart(&mut n, broker),
            Action::FenceBroker { broker, new_leader } => {
                self.fence_broker(&mut n, broker, new_leader)
            }
            Action::UnfenceBroker { broker } => self.unfence_broker(&mut n, broker),
            Action::ElectLeader { broker, unclean } => self.elect_leader(&mut n, broker, unclean),
            Action::MoveLeader { to } => self.move_leader(&mut n, to),
            Action::LogFails { broker, new_leader } => self.log_fails(&mut n, broker, new_leader),
        };
        if applied {
            crate::canonical::drop_stale_fetch_responses(&mut n);
        }
        (applied && n != *s).then_some(n)
    }
}

impl stateright::Model for PartitionModel {
    type State = PartitionState;
    type Action = Action;

    fn init_states(&self) -> Vec<PartitionState> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &PartitionState, actions: &mut Vec<Action>) {
        self.enabled_actions(state, actions);
    }

    fn next_state(&self, last: &PartitionState, action: Action) -> Option<PartitionState> {
        self.successor(last, action)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::all()
    }

    fn format_action(&self, action: &Action) -> String {
        action.describe()
    }
}

mod broker;
mod check;
mod controller;
mod eager;

pub use broker::truncate_replica;
pub use check::Replication;

#[cfg(test)]
mod tests;
