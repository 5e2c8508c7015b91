//! The controller side of the replay: the broker's own controller core
//! (`osprey_broker::controller::Controller`, event-sourced, with registration, heartbeats and
//! fencing, elections ISR → ELR → unclean, AlterPartition with KIP-841/903 checks, preferred
//! election) behind [`ControllerDriver`].
//!
//! [`KafkaController`] drives one topic with one partition replicated on every broker, in
//! replica order `0, 1, ..`. Model steps become what happens to a real controller: fencing is
//! a session that expires ([`Controller::tick`] after every other unfenced broker
//! heartbeated), unfencing a heartbeat, a restart a new registration, MoveLeader an
//! ElectLeaders(Preferred), AlterPartition the request with the leader's broker epoch.
//!
//! Where the model leaves a choice open that Kafka's controller makes deterministically, the
//! driver refuses the model's step unless it is Kafka's choice ([`Refused`] says which):
//! * **Which candidate is elected.** The model elects any candidate; Kafka's
//!   `PartitionChangeBuilder` (and this controller) the first in replica order.
//! * **Preferred election.** The model's MoveLeader moves leadership to any unfenced ISR
//!   member; Kafka's preferred election only to the first replica.
//!
//! One difference is a matter of granularity, and is bridged here: **Kafka elects at
//! unfencing.** An unfence that gives an offline partition a live candidate elects it in the
//! same controller event (`handleBrokerUnfenced`); the model takes UnfenceBroker and then
//! ElectLeader. After such an unfence the driver shows the partition as it was before the
//! election ([`KafkaController::view`], [`ControllerDriver::partition_state`]) and owes the
//! model its ElectLeader ([`ControllerDriver::owed_step`]); any other step is refused until it
//! is taken.
//!
//! Model bounds (`max_epoch`, `max_isr_changes`, `max_crashes`) are not the controller's
//! business: a trace only contains steps the model enabled, so within a replay they hold.

use osprey_broker::controller::{
    AlterPartitionRequest, Controller, ControllerConfig, ElectionType, LeaderRecoveryState,
    PartitionImage, TopicId, DIRECTORY_LOST,
};
use osprey_broker::faults::Faults;
use osprey_broker::replication::{
    AlterPartitionProposal, AlterPartitionResponse, BrokerId, PartitionRegistration, NO_BROKER,
    UNKNOWN_BROKER_EPOCH,
};
use osprey_model::trace::ControllerView;
use osprey_model::Action;

/// A controller step the controller refused, with why. In a replay this is a mismatch:
/// the model took the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What the replay needs from a controller, in the broker's vocabulary.
pub trait ControllerDriver {
    /// The partition state brokers learn from the metadata log (BecomeLeader/BecomeFollower).
    fn partition_state(&self) -> PartitionRegistration;
    /// Broker `broker`'s current broker epoch (KIP-903).
    fn broker_epoch(&self, broker: BrokerId) -> i64;
    /// A broker registers again after a crash; returns its new broker epoch. `clean_shutdown`
    /// is false after an unclean shutdown: the broker then leaves the ELR (KIP-966). It stays
    /// fenced.
    fn register(&mut self, broker: BrokerId, clean_shutdown: bool) -> Result<i64, Refused>;
    /// Missed heartbeats: fence `broker`, drop it from the ISR (into the ELR below min ISR),
    /// and if it led elect `new_leader` in the same change (`None`: the partition goes
    /// offline, allowed only when nobody is eligible).
    fn fence(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused>;
    /// Heartbeats resumed.
    fn unfence(&mut self, broker: BrokerId) -> Result<(), Refused>;
    /// Elect `broker` for an offline partition; `unclean` must match the kind of election
    /// the controller's rules give.
    fn elect(&mut self, broker: BrokerId, unclean: bool) -> Result<(), Refused>;
    /// Preferred-leader election to `to`.
    fn move_leader(&mut self, to: BrokerId) -> Result<(), Refused>;
    /// Broker `broker`'s log for the partition failed: it assigns the replica to
    /// `DirectoryId.LOST` (AssignReplicasToDirs, KIP-858). The replica leaves the ISR and the
    /// ELR; if it led, `new_leader` is elected in the same change (`None`: nobody can lead).
    fn log_fails(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused>;
    /// Handle a leader's AlterPartition (KIP-497, KIP-841, KIP-903).
    fn alter_partition(&mut self, proposal: &AlterPartitionProposal) -> AlterPartitionResponse;
    /// The model step the controller already took as part of the last one and the model
    /// must take next (see the module docs), if any.
    fn owed_step(&self) -> Option<Action>;
    /// The controller's state as the model's traces show it.
    fn view(&self) -> ControllerView;
}

/// `broker.session.timeout.ms` of the driven controller.
const SESSION_TIMEOUT_MS: u64 = 9_000;
/// The topic the driver creates.
const TOPIC: &str = "conformance";

/// The broker's controller driving one partition (see the module docs).
#[derive(Debug, Clone)]
pub struct KafkaController {
    controller: Controller,
    topic_id: TopicId,
    brokers: i32,
    now_ms: u64,
    /// Registrations so far per broker (names each incarnation).
    incarnations: Vec<u32>,
    /// After an unfence that elected: the partition as it was before the election, and the
    /// ElectLeader the model owes.
    owed: Option<(PartitionImage, Action)>,
}

impl KafkaController {
    /// Registers brokers `0..brokers`, unfences them, and creates the partition with replicas
    /// in id order: broker 0 leads in epoch 0 with every replica in the ISR (the model's
    /// initial state).
    pub fn new(
        brokers: u8,
        min_isr: u8,
        unclean_election: bool,
        faults: Faults,
    ) -> Result<Self, Refused> {
        let config = ControllerConfig {
            faults,
            broker_session_timeout_ms: SESSION_TIMEOUT_MS,
            min_insync_replicas: i32::from(min_isr),
            unclean_leader_election_enable: unclean_election,
            default_replication_factor: i16::from(brokers),
            ..ControllerConfig::default()
        };
        let mut c = KafkaController {
            controller: Controller::new(config),
            topic_id: TopicId::default(),
            brokers: i32::from(brokers),
            now_ms: 0,
            incarnations: vec![0; brokers as usize],
            owed: None,
        };
        for b in 0..c.brokers {
            let epoch = c.register_incarnation(b, UNKNOWN_BROKER_EPOCH)?;
            c.heartbeat(b, epoch)?;
        }
        let replicas: Vec<BrokerId> = (0..c.brokers).collect();
        c.topic_id = c
            .controller
            .create_topic(TOPIC, None, None, Some(vec![replicas]), &[])
            .map_err(|e| Refused(format!("creating the partition: {e}")))?;
        c.controller.drain_records();
        Ok(c)
    }

    /// The driven controller.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    fn partition(&self) -> PartitionImage {
        self.controller
            .image()
            .partition(TOPIC, 0)
            .cloned()
            .expect("the driver's partition exists")
    }

    fn register_incarnation(&mut self, b: BrokerId, previous: i64) -> Result<i64, Refused> {
        let n = &mut self.incarnations[b as usize];
        *n += 1;
        let incarnation = format!("broker-{b}-{n}");
        self.controller
            .register_broker(b, &incarnation, vec![], None, previous, self.now_ms)
            .map_err(|e| Refused(format!("registering broker {b}: {e}")))
    }

    fn heartbeat(&mut self, b: BrokerId, epoch: i64) -> Result<(), Refused> {
        self.controller
            .heartbeat(b, epoch, i64::MAX, false, false, self.now_ms)
            .map(|_| ())
            .map_err(|e| Refused(format!("heartbeat of broker {b}: {e}")))
    }

    /// Lets `broker.session.timeout.ms` pass while every other unfenced broker heartbeats,
    /// so that only `broker`'s session can expire; returns the brokers the controller fenced.
    fn expire_session_of(&mut self, broker: BrokerId) -> Result<Vec<BrokerId>, Refused> {
        self.now_ms += SESSION_TIMEOUT_MS + 1;
        let others: Vec<BrokerId> = (0..self.brokers)
            .filter(|&b| b != broker && !self.fenced(b))
            .collect();
        for b in others {
            self.heartbeat(b, self.broker_epoch(b))?;
        }
        Ok(self.controller.tick(self.now_ms))
    }

    fn fenced(&self, b: BrokerId) -> bool {
        !self.controller.image().is_live(b)
    }

    fn no_owed_step(&self) -> Result<(), Refused> {
        match &self.owed {
            Some((_, a)) => Err(Refused(format!(
                "Kafka's controller elected at the unfence: the model must take {} next",
                a.describe()
            ))),
            None => Ok(()),
        }
    }

    /// Runs `f` on a copy and keeps it only if it succeeds, so a refused step changes nothing.
    fn atomically(
        &mut self,
        f: impl FnOnce(&mut KafkaController) -> Result<(), Refused>,
    ) -> Result<(), Refused> {
        let mut next = self.clone();
        f(&mut next)?;
        next.controller.drain_records();
        *self = next;
        Ok(())
    }
}

impl ControllerDriver for KafkaController {
    fn partition_state(&self) -> PartitionRegistration {
        let p = match &self.owed {
            Some((before, _)) => before.clone(),
            None => self.partition(),
        };
        PartitionRegistration {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr,
            replicas: p.replicas,
        }
    }

    fn broker_epoch(&self, broker: BrokerId) -> i64 {
        self.controller
            .image()
            .broker_epoch(broker)
            .unwrap_or(UNKNOWN_BROKER_EPOCH)
    }

    fn register(&mut self, broker: BrokerId, clean_shutdown: bool) -> Result<i64, Refused> {
        self.no_owed_step()?;
        if !self.fenced(broker) {
            return Err(Refused(format!(
                "broker {broker} registers again before its session expired"
            )));
        }
        let previous = if clean_shutdown {
            self.broker_epoch(broker)
        } else {
            UNKNOWN_BROKER_EPOCH
        };
        let mut epoch = 0;
        self.atomically(|c| {
            // A broker that crashed again after registering, before it was unfenced, still
            // has a session: Kafka refuses the new incarnation (DUPLICATE_BROKER_REGISTRATION)
            // until that session expires, and the broker retries. The model's Restart is the
            // registration that succeeds, so the old session expires first (the other
            // unfenced brokers heartbeat meanwhile).
            if c.controller.session_alive(broker, c.now_ms) {
                c.expire_session_of(broker)?;
            }
            epoch = c.register_incarnation(broker, previous)?;
            Ok(())
        })?;
        Ok(epoch)
    }

    fn fence(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused> {
        self.no_owed_step()?;
        if !(0..self.brokers).contains(&broker) || self.fenced(broker) {
            return Err(Refused(format!(
                "broker {broker} is not an unfenced broker"
            )));
        }
        let before = self.partition();
        self.atomically(|c| {
            let expired = c.expire_session_of(broker)?;
            if expired != [broker] {
                return Err(Refused(format!("expired sessions {expired:?}")));
            }
            let after = c.partition();
            let want = new_leader.unwrap_or(NO_BROKER);
            if before.leader == broker && after.leader != want {
                return Err(Refused(format!(
                    "Kafka's controller elects {} when broker {broker} is fenced, not {want}",
                    after.leader
                )));
            }
            if before.leader != broker && new_leader.is_some() {
                return Err(Refused(format!(
                    "broker {broker} does not lead: no election"
                )));
            }
            Ok(())
        })
    }

    fn unfence(&mut self, broker: BrokerId) -> Result<(), Refused> {
        self.no_owed_step()?;
        if !(0..self.brokers).contains(&broker) || !self.fenced(broker) {
            return Err(Refused(format!("broker {broker} is not fenced")));
        }
        self.atomically(|c| {
            let before = c.partition();
            c.heartbeat(broker, c.broker_epoch(broker))?;
            if c.fenced(broker) {
                return Err(Refused(format!("broker {broker} stayed fenced")));
            }
            let after = c.partition();
            if before.leader == NO_BROKER && after.leader != NO_BROKER {
                let unclean =
                    !before.isr.contains(&after.leader) && !before.elr.contains(&after.leader);
                let elect = Action::ElectLeader {
                    broker: after.leader as u8,
                    unclean,
                };
                c.owed = Some((before, elect));
            }
            Ok(())
        })
    }

    fn elect(&mut self, broker: BrokerId, unclean: bool) -> Result<(), Refused> {
        let want = Action::ElectLeader {
            broker: broker as u8,
            unclean,
        };
        match &self.owed {
            Some((_, owed)) if *owed == want => {
                self.owed = None;
                Ok(())
            }
            Some((_, owed)) => Err(Refused(format!(
                "Kafka's controller elected at the unfence: {}, not {}",
                owed.describe(),
                want.describe()
            ))),
            None => Err(Refused(format!(
                "Kafka's controller elects only when a candidate is unfenced (no election pending for broker {broker})"
            ))),
        }
    }

    fn move_leader(&mut self, to: BrokerId) -> Result<(), Refused> {
        self.no_owed_step()?;
        let preferred = self.partition().replicas.first().copied();
        if preferred != Some(to) {
            return Err(Refused(format!(
                "Kafka's preferred election moves leadership to the first replica ({preferred:?}), not {to}"
            )));
        }
        self.atomically(|c| {
            let r = c
                .controller
                .elect_leaders(ElectionType::Preferred, &[(TOPIC.to_string(), 0)]);
            match r.into_iter().next() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(Refused(format!("preferred election: {e}"))),
                None => Err(Refused("preferred election: no result".into())),
            }
        })
    }

    fn log_fails(&mut self, broker: BrokerId, new_leader: Option<BrokerId>) -> Result<(), Refused> {
        self.no_owed_step()?;
        let before = self.partition();
        if before.is_log_offline(broker) {
            return Err(Refused(format!("broker {broker}'s log is already offline")));
        }
        self.atomically(|c| {
            let epoch = c.broker_epoch(broker);
            let results = c
                .controller
                .assign_replicas_to_dirs(broker, epoch, &[(c.topic_id, 0, DIRECTORY_LOST)])
                .map_err(|e| Refused(format!("AssignReplicasToDirs of broker {broker}: {e}")))?;
            if let Some(Err(e)) = results.into_iter().next() {
                return Err(Refused(format!(
                    "AssignReplicasToDirs of broker {broker}: {e}"
                )));
            }
            let after = c.partition();
            let want = new_leader.unwrap_or(NO_BROKER);
            if before.leader == broker && after.leader != want {
                return Err(Refused(format!(
                    "Kafka's controller elects {} when broker {broker}'s log goes offline, not {want}",
                    after.leader
                )));
            }
            if before.leader != broker && new_leader.is_some() {
                return Err(Refused(format!(
                    "broker {broker} does not lead: no election"
                )));
            }
            Ok(())
        })
    }

    fn alter_partition(&mut self, p: &AlterPartitionProposal) -> AlterPartitionResponse {
        let req = AlterPartitionRequest {
            topic_id: self.topic_id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            new_isr_with_epochs: p
                .new_isr
                .iter()
                .map(|m| (m.broker_id, m.broker_epoch))
                .collect(),
            partition_epoch: p.partition_epoch,
            leader_recovery_state: LeaderRecoveryState::Recovered,
        };
        let sender_epoch = self.broker_epoch(p.leader_id);
        let r = self
            .controller
            .alter_partition(p.leader_id, sender_epoch, &req);
        self.controller.drain_records();
        match r {
            Ok(image) => AlterPartitionResponse::Committed {
                leader_epoch: image.leader_epoch,
                partition_epoch: image.partition_epoch,
                isr: image.isr,
            },
            Err(e) => AlterPartitionResponse::Error(e.code()),
        }
    }

    fn owed_step(&self) -> Option<Action> {
        self.owed.as_ref().map(|(_, a)| *a)
    }

    fn view(&self) -> ControllerView {
        let p = match &self.owed {
            Some((before, _)) => before.clone(),
            None => self.partition(),
        };
        let ids = |v: &[BrokerId]| {
            let mut v: Vec<u8> = v.iter().map(|&b| b as u8).collect();
            v.sort_unstable();
            v
        };
        let fenced: Vec<BrokerId> = (0..self.brokers).filter(|&b| self.fenced(b)).collect();
        let offline: Vec<BrokerId> = p
            .replicas
            .iter()
            .copied()
            .filter(|&b| p.is_log_offline(b))
            .collect();
        ControllerView {
            leader: (p.leader != NO_BROKER).then_some(p.leader as u8),
            leader_epoch: p.leader_epoch as u8,
            partition_epoch: p.partition_epoch as u8,
            isr: ids(&p.isr),
            elr: ids(&p.elr),
            fenced: ids(&fenced),
            offline_logs: ids(&offline),
        }
    }
}

/// Whether Kafka's controller (this one) can take model step `a` from `s` to `next`: the
/// model's choices that it makes the same way (see the module docs). The trace generator
/// keeps to these steps, so every generated trace can be replayed on the real controller.
pub fn kafka_takes(
    model: &osprey_model::PartitionModel,
    s: &osprey_model::PartitionState,
    a: Action,
    next: &osprey_model::PartitionState,
) -> bool {
    let first_candidate = |st: &osprey_model::PartitionState, excluding: u8| {
        let (unclean, candidates) = model.election_candidates(&st.controller, excluding);
        candidates.iter().next().map(|b| (b, unclean))
    };
    let c = &s.controller;
    // An offline partition with a live candidate exists only between an unfence and the
    // election Kafka makes with it: the election must come next.
    if c.leader == osprey_model::state::NO_BROKER {
        if let Some((b, unclean)) = first_candidate(s, osprey_model::state::NO_BROKER) {
            return a == Action::ElectLeader { broker: b, unclean };
        }
    }
    match a {
        Action::MoveLeader { to } => to == 0,
        Action::FenceBroker { broker, new_leader } | Action::LogFails { broker, new_leader } => {
            c.leader != broker || new_leader == first_candidate(s, broker).map(|(b, _)| b)
        }
        Action::ElectLeader { .. } => false,
        Action::UnfenceBroker { .. } => {
            // Kafka elects in the same event; the model must be able to take that election.
            let n = &next.controller;
            match first_candidate(next, osprey_model::state::NO_BROKER) {
                Some((b, unclean)) if n.leader == osprey_model::state::NO_BROKER => model
                    .step(next, Action::ElectLeader { broker: b, unclean })
                    .is_some(),
                _ => true,
            }
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_broker::error_codes::{INELIGIBLE_REPLICA, INVALID_UPDATE_VERSION};
    use osprey_broker::replication::IsrMember;

    fn member(broker_id: BrokerId, broker_epoch: i64) -> IsrMember {
        IsrMember {
            broker_id,
            broker_epoch,
        }
    }

    #[test]
    fn fencing_the_leader_elects_the_first_isr_member_then_the_elr() {
        let mut c = KafkaController::new(3, 2, false, Faults::default()).unwrap();
        assert!(c.fence(0, Some(2)).is_err(), "Kafka elects broker 1");
        assert_eq!(c.view().leader, Some(0), "a refused step changes nothing");
        c.fence(0, Some(1)).unwrap();
        assert_eq!(c.view().isr, vec![1, 2]);
        assert_eq!((c.view().leader_epoch, c.view().partition_epoch), (1, 1));
        c.fence(2, None).unwrap();
        // The ISR fell below min ISR: the broker that left is eligible (KIP-966).
        assert_eq!(c.view().elr, vec![2]);
        c.fence(1, None).unwrap();
        assert_eq!(c.view().leader, None);
        assert_eq!(c.view().elr, vec![1, 2]);
        // Unfencing an eligible broker elects it in the same event; the model owes the step.
        c.unfence(2).unwrap();
        assert_eq!(c.view().leader, None);
        let owed = Action::ElectLeader {
            broker: 2,
            unclean: false,
        };
        assert_eq!(c.owed_step(), Some(owed));
        assert!(c.unfence(1).is_err(), "the election comes first");
        c.elect(2, false).unwrap();
        assert_eq!(c.view().leader, Some(2));
        assert_eq!(c.view().isr, vec![2]);
        assert_eq!(c.view().elr, vec![1]);
    }

    #[test]
    fn a_failed_log_leaves_isr_and_elr_and_is_never_elected() {
        let mut c = KafkaController::new(3, 2, false, Faults::default()).unwrap();
        assert!(c.log_fails(0, Some(2)).is_err(), "Kafka elects broker 1");
        c.log_fails(0, Some(1)).unwrap();
        let v = c.view();
        assert_eq!(
            (v.leader, v.isr.clone(), v.offline_logs.clone()),
            (Some(1), vec![1, 2], vec![0])
        );
        assert!(c.log_fails(0, None).is_err(), "already offline");
        // The others are fenced: nobody may lead, the failed replica least of all.
        c.fence(2, None).unwrap();
        c.fence(1, None).unwrap();
        let v = c.view();
        assert_eq!((v.leader, v.elr.clone()), (None, vec![1, 2]));
        assert!(!v.elr.contains(&0));
    }

    #[test]
    fn fencing_a_broker_outside_the_isr_changes_no_partition() {
        let mut c = KafkaController::new(3, 1, false, Faults::default()).unwrap();
        c.fence(2, None).unwrap();
        c.unfence(2).unwrap();
        let before = c.view();
        c.fence(2, None).unwrap();
        let after = c.view();
        assert_eq!(after.partition_epoch, before.partition_epoch);
        assert_eq!(after.isr, before.isr);
        assert_eq!(after.fenced, vec![2]);
    }

    #[test]
    fn preferred_election_goes_to_the_first_replica_only() {
        let mut c = KafkaController::new(3, 1, false, Faults::default()).unwrap();
        c.fence(0, Some(1)).unwrap();
        assert!(c.move_leader(2).is_err());
        assert!(
            c.move_leader(0).is_err(),
            "broker 0 is fenced and out of the ISR"
        );
    }

    #[test]
    fn alter_partition_checks_epochs_fencing_and_broker_epochs() {
        let mut c = KafkaController::new(3, 2, false, Faults::default()).unwrap();
        let e = |c: &KafkaController, b| c.broker_epoch(b);
        let shrink = AlterPartitionProposal {
            leader_id: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            new_isr: vec![member(0, e(&c, 0)), member(1, e(&c, 1))],
        };
        assert!(matches!(
            c.alter_partition(&shrink),
            AlterPartitionResponse::Committed {
                partition_epoch: 1,
                ..
            }
        ));
        assert_eq!(
            c.alter_partition(&shrink),
            AlterPartitionResponse::Error(INVALID_UPDATE_VERSION)
        );
        // Fencing broker 2, out of the ISR now, changes no partition.
        c.fence(2, None).unwrap();
        assert_eq!(c.view().partition_epoch, 1);
        // Broker 2 crashes and comes back: fenced by session expiry, registers again.
        let mut d = KafkaController::new(3, 2, false, Faults::default()).unwrap();
        let old = e(&d, 2);
        d.fence(2, None).unwrap();
        let new = d.register(2, false).unwrap();
        assert!(new > old);
        d.unfence(2).unwrap();
        let (e0, e1) = (e(&d, 0), e(&d, 1));
        let partition_epoch = d.partition_state().partition_epoch;
        let p = |epoch| AlterPartitionProposal {
            leader_id: 0,
            leader_epoch: 0,
            partition_epoch,
            new_isr: vec![member(0, e0), member(1, e1), member(2, epoch)],
        };
        assert_eq!(
            d.alter_partition(&p(old)),
            AlterPartitionResponse::Error(INELIGIBLE_REPLICA),
            "KIP-903: a fetch from the previous incarnation"
        );
        assert!(matches!(
            d.alter_partition(&p(new)),
            AlterPartitionResponse::Committed { .. }
        ));
    }

    #[test]
    fn kafka_takes_only_the_controller_choices_kafka_makes() {
        use osprey_model::{ModelConfig, PartitionModel};
        let model = PartitionModel::new(ModelConfig {
            min_isr: 1,
            ..ModelConfig::default()
        });
        let s = model.initial_state();
        let takes = |s: &osprey_model::PartitionState, a: Action| {
            let n = model.step(s, a).expect("enabled");
            kafka_takes(&model, s, a, &n)
        };
        let fence = |broker, new_leader| Action::FenceBroker { broker, new_leader };
        assert!(takes(&s, fence(0, Some(1))), "the first ISR member");
        assert!(!takes(&s, fence(0, Some(2))), "not the first");
        assert!(
            !takes(&s, Action::MoveLeader { to: 1 }),
            "preferred is broker 0"
        );
        // Broker 2 leaves the ISR; fencing it then changes no partition, in Kafka as in the
        // model, and Kafka takes it.
        let shrunk = model
            .step(
                &s,
                Action::ProposeIsrShrink {
                    leader: 0,
                    follower: 2,
                },
            )
            .and_then(|s| model.step(&s, Action::AlterPartition { leader: 0 }))
            .expect("enabled");
        assert!(takes(&shrunk, fence(2, None)));
        let fenced = model.step(&shrunk, fence(2, None)).expect("enabled");
        assert_eq!(
            fenced.controller.partition_epoch,
            shrunk.controller.partition_epoch
        );
        assert!(takes(&s, fence(2, None)), "an ISR member");
    }
}
