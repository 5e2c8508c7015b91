//! The controller: validates requests against the metadata image, appends the records that
//! carry their effect, and keeps the only soft state that is not metadata — when each broker
//! last heartbeated.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError as E;

use super::assignment::{
    assign_replicas_to_brokers, collision_key, derive_topic_id, placement_seed, topic_name_error,
};
use super::election::{election_candidates, in_replica_order, PartitionChange};
use super::error::{fail, ControllerError};
use super::image::{MetadataImage, PartitionImage};
use super::records::{
    ConfigResourceType, DirectoryId, Endpoint, LeaderRecoveryState, MetadataRecord, TopicId,
    DIRECTORY_LOST,
};
use super::topic_config::{self, parse_bool, MIN_INSYNC_REPLICAS, UNCLEAN_LEADER_ELECTION_ENABLE};
use crate::fault;
use crate::faults::Faults;
use crate::replication::{BrokerId, NO_BROKER, UNKNOWN_BROKER_EPOCH};

/// Producer ids handed out per AllocateProducerIds request (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// The controller's settings, with Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// A broker that has not heartbeated for this long is fenced (`broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// How often brokers heartbeat (`broker.heartbeat.interval.ms`); the driver tells brokers.
    pub broker_heartbeat_interval_ms: u64,
    /// `default.replication.factor`, for CreateTopics with replication factor -1.
    pub default_replication_factor: i16,
    /// `num.partitions`, for CreateTopics with -1 partitions.
    pub num_partitions: i32,
    /// The cluster's `min.insync.replicas` when neither the topic nor the cluster defaults in
    /// the image set it.
    pub min_insync_replicas: i32,
    /// The cluster's `unclean.leader.election.enable`, likewise.
    pub unclean_leader_election_enable: bool,
    /// Osprey's bound on partitions per topic, so one request cannot make the controller
    /// allocate without limit (Kafka has none).
    pub max_partitions_per_topic: i32,
    /// Test-only flaws put back (`faults` feature; empty otherwise).
    pub faults: Faults,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            default_replication_factor: 1,
            num_partitions: 1,
            min_insync_replicas: 1,
            unclean_leader_election_enable: false,
            max_partitions_per_topic: 10_000,
            faults: Faults::default(),
        }
    }
}

/// The controller's answer to a BrokerHeartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// The broker has applied the metadata up to its own registration record.
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// One partition of an AlterPartition request (KIP-497, with KIP-903's broker epochs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub topic_id: TopicId,
    pub partition: i32,
    pub leader_epoch: i32,
    /// The proposed ISR with each member's broker epoch as the leader saw it in its fetches
    /// (-1: not checked).
    pub new_isr_with_epochs: Vec<(BrokerId, i64)>,
    pub partition_epoch: i32,
    pub leader_recovery_state: LeaderRecoveryState,
}

/// ElectLeaders' election type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica, if it is a live ISR member.
    Preferred,
    /// Give an offline partition a leader, out of sync if need be.
    Unclean,
}

/// One change of IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

/// The controller's state machine. Every change is a [`MetadataRecord`] appended at the next
/// offset, applied to the controller's own [`MetadataImage`] and kept until the driver drains
/// it. Operations validate everything before appending anything, so a refused request appends
/// nothing.
#[derive(Clone, Debug)]
pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
    pending: Vec<(i64, MetadataRecord)>,
    /// Soft state: when each broker last heartbeated (or registered).
    last_heartbeat_ms: BTreeMap<BrokerId, u64>,
    /// Soft state: brokers in controlled shutdown (Kafka's PENDING_CONTROLLED_SHUTDOWN). An
    /// ordinary heartbeat sent before the shutdown one but processed after it must not
    /// unfence the broker, which would give it back leaderships it is about to drop; only a
    /// new registration ends this.
    shutting_down: BTreeSet<BrokerId>,
}

type Result<T> = std::result::Result<T, ControllerError>;

impl Controller {
    /// A controller with an empty metadata log.
    pub fn new(config: ControllerConfig) -> Self {
        Controller {
            config,
            image: MetadataImage::new(),
            pending: Vec::new(),
            last_heartbeat_ms: BTreeMap::new(),
            shutting_down: BTreeSet::new(),
        }
    }

    /// Rebuilds a controller from its persisted records, after a restart or a failover. Every
    /// registered broker's session starts at `now_ms`, as a new active controller in KRaft
    /// gives every broker a full session before fencing it.
    pub fn replay(
        config: ControllerConfig,
        records: impl IntoIterator<Item = (i64, MetadataRecord)>,
        now_ms: u64,
    ) -> Self {
        let mut c = Controller::new(config);
        for (offset, rec) in records {
            c.image.apply(offset, &rec);
        }
        c.last_heartbeat_ms = c.image.brokers().map(|b| (b.broker_id, now_ms)).collect();
        c
    }

    /// A controller whose committed metadata is `image` (the image a voter keeps from the
    /// snapshot and the committed log), every broker's session starting at `now_ms` as in
    /// [`Controller::replay`].
    pub fn from_image(config: ControllerConfig, image: MetadataImage, now_ms: u64) -> Self {
        let mut c = Controller::new(config);
        c.image = image;
        c.last_heartbeat_ms = c.image.brokers().map(|b| (b.broker_id, now_ms)).collect();
        c
    }

    /// The metadata image as records (a snapshot's content, KIP-630): replayed into a fresh
    /// controller they rebuild an equal one (see [`MetadataImage::image_records`]).
    pub fn image_records(&self) -> Vec<MetadataRecord> {
        self.image.image_records()
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The metadata as of the last appended record.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The records appended since the last drain, with their offsets, in order. The driver
    /// persists them (later: replicates them through the quorum) and sends them to brokers.
    pub fn drain_records(&mut self) -> Vec<(i64, MetadataRecord)> {
        std::mem::take(&mut self.pending)
    }

    /// The records appended since the last drain, without draining them.
    pub fn pending_records(&self) -> &[(i64, MetadataRecord)] {
        &self.pending
    }

    /// When the broker last heartbeated or registered.
    pub fn last_heartbeat_ms(&self, broker_id: BrokerId) -> Option<u64> {
        self.last_heartbeat_ms.get(&broker_id).copied()
    }

    fn append(&mut self, rec: MetadataRecord) -> i64 {
        let offset = self.image.last_offset() + 1;
        self.image.apply(offset, &rec);
        self.pending.push((offset, rec));
        offset
    }

    /// The topic's effective `min.insync.replicas`: topic config, cluster default, controller
    /// config.
    pub fn min_insync_replicas(&self, topic: &str) -> usize {
        let v = self
            .image
            .topic_config(topic, MIN_INSYNC_REPLICAS)
            .and_then(|v| v.trim().parse::<i32>().ok())
            .unwrap_or(self.config.min_insync_replicas);
        v.max(1) as usize
    }

    /// The topic's effective `unclean.leader.election.enable`.
    pub fn unclean_leader_election_enable(&self, topic: &str) -> bool {
        // Fault: the Kafka 0.8 default Jepsen found, whatever the config says.
        fault!(self.config.faults, UncleanElection)
            || self
                .image
                .topic_config(topic, UNCLEAN_LEADER_ELECTION_ENABLE)
                .and_then(parse_bool)
                .unwrap_or(self.config.unclean_leader_election_enable)
    }

    /// A change of partition `p` of `topic`, under the topic's min ISR.
    fn partition_change(&self, p: &PartitionImage, topic: &str) -> PartitionChange {
        let mut change = PartitionChange::new(p, self.min_insync_replicas(topic));
        // Fault: no KIP-966 (no ELR).
        change.elr_enabled = !fault!(self.config.faults, LastReplicaStanding);
        change
    }

    /// Whether `broker_id` heartbeated within `broker.session.timeout.ms` of `now_ms`: a new
    /// incarnation cannot register while the previous one's session is alive.
    pub fn session_alive(&self, broker_id: BrokerId, now_ms: u64) -> bool {
        self.last_heartbeat_ms
            .get(&broker_id)
            .is_some_and(|t| t.saturating_add(self.config.broker_session_timeout_ms) >= now_ms)
    }

    /// Kafka's `checkBrokerEpoch`: the sender must be registered with this epoch.
    fn check_broker_epoch(&self, broker_id: BrokerId, broker_epoch: i64) -> Result<()> {
        match self.image.broker_epoch(broker_id) {
            Some(e) if e == broker_epoch => Ok(()),
            Some(e) => fail(
                E::StaleBrokerEpoch,
                format!("Expected broker epoch {e} for broker {broker_id}, got {broker_epoch}"),
            ),
            None => fail(
                E::StaleBrokerEpoch,
                format!("No broker registration found for broker {broker_id}"),
            ),
        }
    }

    // -------------------------------------------------------------------------------------
    // Brokers

    /// BrokerRegistration. The broker epoch is the offset of the new registration record. A
    /// registered broker starts fenced. `previous_broker_epoch` is the epoch the broker held
    /// before a clean shutdown (-1 if none): any other value means it lost its unflushed tail,
    /// so it leaves every ELR (KIP-966, the model's `Restart`).
    pub fn register_broker(
        &mut self,
        broker_id: BrokerId,
        incarnation_id: &str,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        previous_broker_epoch: i64,
        now_ms: u64,
    ) -> Result<i64> {
        if broker_id < 0 {
            return fail(E::InvalidRequest, format!("Invalid broker id {broker_id}"));
        }
        if let Some(existing) = self.image.broker(broker_id) {
            if existing.incarnation_id != incarnation_id && self.session_alive(broker_id, now_ms) {
                return fail(
                    E::DuplicateBrokerRegistration,
                    format!(
                        "Another broker is registered with broker id {broker_id} (incarnation {}), and its session has not expired",
                        existing.incarnation_id
                    ),
                );
            }
            let clean = previous_broker_epoch != UNKNOWN_BROKER_EPOCH
                && previous_broker_epoch == existing.epoch;
            if !existing.fenced {
                self.fence(broker_id);
            }
            if !clean {
                self.remove_from_elrs(broker_id);
            }
        }
        let broker_epoch = self.image.last_offset() + 1;
        self.append(MetadataRecord::RegisterBroker {
            broker_id,
            broker_epoch,
            incarnation_id: incarnation_id.to_string(),
            endpoints,
            rack,
            fenced: true,
        });
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        self.shutting_down.remove(&broker_id);
        Ok(broker_epoch)
    }

    /// BrokerHeartbeat. Renews the broker's session, then: a shutdown request fences it and
    /// answers "shut down" (fencing has already moved its leaderships away, which is what
    /// Kafka's controlled shutdown waits for); a fenced broker that is caught up and does not
    /// want to stay fenced is unfenced (and offline partitions it can lead get it as leader);
    /// an unfenced broker that wants to be fenced is fenced.
    pub fn heartbeat(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        current_metadata_offset: i64,
        want_fence: bool,
        want_shutdown: bool,
        now_ms: u64,
    ) -> Result<HeartbeatReply> {
        let Some(reg) = self.image.broker(broker_id) else {
            return fail(
                E::BrokerIdNotRegistered,
                format!("Broker {broker_id} is not registered"),
            );
        };
        if reg.epoch != broker_epoch {
            return fail(
                E::StaleBrokerEpoch,
                format!(
                    "Expected broker epoch {} for broker {broker_id}, got {broker_epoch}",
                    reg.epoch
                ),
            );
        }
        let fenced = reg.fenced;
        // Caught up once it has applied its own registration record.
        let is_caught_up = current_metadata_offset >= reg.epoch;
        self.last_heartbeat_ms.insert(broker_id, now_ms);
        if want_shutdown {
            self.shutting_down.insert(broker_id);
            if !fenced {
                self.fence(broker_id);
            }
            return Ok(HeartbeatReply {
                is_caught_up,
                is_fenced: true,
                should_shut_down: true,
            });
        }
        if fenced && !want_fence && is_caught_up && !self.shutting_down.contains(&broker_id) {
            self.unfence(broker_id);
        } else if !fenced && want_fence {
            self.fence(broker_id);
        }
        Ok(HeartbeatReply {
            is_caught_up,
            is_fenced: !self.image.is_live(broker_id),
            should_shut_down: false,
        })
    }

    /// Fences every unfenced broker whose session expired (last heartbeat +
    /// `broker_session_timeout_ms` < `now_ms`), in broker id order. Returns them.
    pub fn tick(&mut self, now_ms: u64) -> Vec<BrokerId> {
        let expired: Vec<BrokerId> = self
            .image
            .live_brokers()
            .into_iter()
            .filter(|b| !self.session_alive(*b, now_ms))
            .collect();
        for b in &expired {
            self.fence(*b);
        }
        expired
    }

    /// UnregisterBroker: the broker leaves every ISR (with elections where it led) and every
    /// ELR, then its registration is removed.
    pub fn unregister_broker(&mut self, broker_id: BrokerId) -> Result<()> {
        let Some(reg) = self.image.broker(broker_id) else {
            return fail(
                E::BrokerIdNotRegistered,
                format!("Broker {broker_id} is not registered"),
            );
        };
        let (epoch, fenced) = (reg.epoch, reg.fenced);
        if !fenced {
            self.fence(broker_id);
        }
        self.remove_from_elrs(broker_id);
        self.append(MetadataRecord::UnregisterBroker {
            broker_id,
            broker_epoch: epoch,
        });
        self.last_heartbeat_ms.remove(&broker_id);
        Ok(())
    }

    /// Every partition matching `f`, as (topic name, topic id, partition, state).
    fn partitions_where(
        &self,
        f: impl Fn(&str, &PartitionImage) -> bool,
    ) -> Vec<(String, TopicId, i32, PartitionImage)> {
        let mut out = Vec::new();
        for t in self.image.topics() {
            for (i, p) in t.partitions.iter().enumerate() {
                if f(&t.name, p) {
                    out.push((t.name.clone(), t.id, i as i32, p.clone()));
                }
            }
        }
        out
    }

    /// The model's `FenceBroker`: the broker leaves every ISR (into the ELR when the ISR falls
    /// below min ISR); where it led, a new leader is elected in the same change (ISR, else ELR,
    /// else unclean if the topic allows it, else none). Then the fence record.
    fn fence(&mut self, broker_id: BrokerId) {
        let Some(epoch) = self.image.broker_epoch(broker_id) else {
            return;
        };
        let affected =
            self.partitions_where(|_, p| p.isr.contains(&broker_id) || p.leader == broker_id);
        for (topic, topic_id, partition, p) in affected {
            let mut change = self.partition_change(&p, &topic);
            // Fault: before KIP-966 the last ISR member stayed in the ISR when fenced.
            let last_stays =
                fault!(self.config.faults, LastReplicaStanding) && p.isr == [broker_id];
            if p.isr.contains(&broker_id) && !last_stays {
                let isr: Vec<BrokerId> =
                    p.isr.iter().copied().filter(|b| *b != broker_id).collect();
                change.set_isr(&isr, &[broker_id]);
            }
            if p.leader == broker_id {
                let unclean = self.unclean_leader_election_enable(&topic);
                change.elect(election_candidates(
                    &p,
                    |b| self.image.is_live(b),
                    broker_id,
                    unclean,
                ));
            }
            if let Some(rec) = change.into_record(topic_id, partition, &p) {
                self.append(rec);
            }
        }
        self.append(MetadataRecord::FenceBroker {
            broker_id,
            broker_epoch: epoch,
        });
    }

    /// The model's `UnfenceBroker`, then `ElectLeader` for every offline partition that now
    /// has a candidate.
    fn unfence(&mut self, broker_id: BrokerId) {
        let Some(epoch) = self.image.broker_epoch(broker_id) else {
            return;
        };
        self.append(MetadataRecord::UnfenceBroker {
            broker_id,
            broker_epoch: epoch,
        });
        self.elect_offline_partitions(None);
    }

    /// Gives a leader to every offline partition (of `topic`, or of all topics) that has a
    /// live ISR or ELR member, or any live replica when its topic allows unclean election.
    fn elect_offline_partitions(&mut self, topic: Option<&str>) {
        let offline =
            self.partitions_where(|t, p| p.leader == NO_BROKER && topic.is_none_or(|x| x == t));
        for (topic, topic_id, partition, p) in offline {
            let unclean = self.unclean_leader_election_enable(&topic);
            let candidates = election_candidates(&p, |b| self.image.is_live(b), NO_BROKER, unclean);
            if candidates.1.is_empty() {
                continue;
            }
            let mut change = self.partition_change(&p, &topic);
            change.elect(candidates);
            if let Some(rec) = change.into_record(topic_id, partition, &p) {
                self.append(rec);
            }
        }
    }

    /// A broker back from an unclean shutdown may have lost committed records: it is no longer
    /// an eligible leader anywhere (KIP-966).
    fn remove_from_elrs(&mut self, broker_id: BrokerId) {
        for (topic, topic_id, partition, p) in
            self.partitions_where(|_, p| p.elr.contains(&broker_id))
        {
            let mut change = self.partition_change(&p, &topic);
            change.elr.retain(|b| *b != broker_id);
            if let Some(rec) = change.into_record(topic_id, partition, &p) {
                self.append(rec);
            }
        }
    }

    /// AssignReplicasToDirs (KIP-858) from `broker_id`: each named replica of it now lives in
    /// the given log directory. Assigned to [`DIRECTORY_LOST`] (its log failed to open or
    /// recover: the model's `LogFails`), the replica leaves the ISR and the ELR, and where it
    /// led another replica is elected (ISR, else ELR, else unclean if the topic allows it,
    /// never one whose log is offline), as Kafka's controller handles an assignment to an
    /// offline directory. Assigned anywhere else, the replica's log is online again: it
    /// rejoins the ISR only through its leader's AlterPartition once it has caught up.
    /// One result per assignment, in order: UNKNOWN_TOPIC_ID, or NOT_LEADER_OR_FOLLOWER when
    /// the broker is not a replica of that partition.
    pub fn assign_replicas_to_dirs(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        assignments: &[(TopicId, i32, DirectoryId)],
    ) -> Result<Vec<Result<()>>> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        Ok(assignments
            .iter()
            .map(|(topic_id, partition, dir)| {
                self.assign_replica_to_dir(broker_id, *topic_id, *partition, *dir)
            })
            .collect())
    }

    fn assign_replica_to_dir(
        &mut self,
        broker_id: BrokerId,
        topic_id: TopicId,
        partition: i32,
        dir: DirectoryId,
    ) -> Result<()> {
        let Some(t) = self.image.topic_by_id(&topic_id) else {
            return fail(E::UnknownTopicId, "Unknown topic id");
        };
        let topic = t.name.clone();
        let Some(p) = self.image.partition(&topic, partition).cloned() else {
            return fail(
                E::UnknownTopicOrPartition,
                format!("Unknown partition {topic}-{partition}"),
            );
        };
        if !p.replicas.contains(&broker_id) {
            return fail(
                E::NotLeaderOrFollower,
                format!("Broker {broker_id} is not a replica of {topic}-{partition}"),
            );
        }
        let mut change = self.partition_change(&p, &topic);
        change.set_directory(broker_id, dir);
        if dir == DIRECTORY_LOST {
            if p.isr.contains(&broker_id) {
                let isr: Vec<BrokerId> =
                    p.isr.iter().copied().filter(|b| *b != broker_id).collect();
                change.set_isr(&isr, &[]);
            }
            change.elr.retain(|b| *b != broker_id);
            if p.leader == broker_id {
                let mut after = p.clone();
                after.directories.clone_from(&change.directories);
                after.isr.clone_from(&change.isr);
                after.elr.clone_from(&change.elr);
                let unclean = self.unclean_leader_election_enable(&topic);
                change.elect(election_candidates(
                    &after,
                    |b| self.image.is_live(b),
                    broker_id,
                    unclean,
                ));
            }
        }
        if let Some(rec) = change.into_record(topic_id, partition, &p) {
            self.append(rec);
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------
    // Topics

    /// CreateTopics for one topic. `num_partitions` and `replication_factor` of `None` or -1
    /// take the defaults; a manual assignment requires both to be unset. The initial ISR is the
    /// live replicas, the leader the first of them, both epochs 0.
    pub fn create_topic(
        &mut self,
        name: &str,
        num_partitions: Option<i32>,
        replication_factor: Option<i16>,
        manual_assignment: Option<Vec<Vec<BrokerId>>>,
        configs: &[(String, String)],
    ) -> Result<TopicId> {
        if let Some(msg) = topic_name_error(name) {
            return fail(E::InvalidTopicException, msg);
        }
        if self.image.topic(name).is_some() {
            return fail(
                E::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            );
        }
        let key = collision_key(name);
        if let Some(t) = self.image.topics().find(|t| collision_key(&t.name) == key) {
            return fail(
                E::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {}", t.name),
            );
        }
        for (i, (k, v)) in configs.iter().enumerate() {
            if configs[..i].iter().any(|(k2, _)| k2 == k) {
                return fail(E::InvalidRequest, format!("Duplicate config {k}"));
            }
            topic_config::validate(k, v)?;
        }
        let max = self.config.max_partitions_per_topic;
        let assignment = match manual_assignment {
            Some(a) => {
                if num_partitions.is_some_and(|n| n != -1)
                    || replication_factor.is_some_and(|r| r != -1)
                {
                    return fail(
                        E::InvalidRequest,
                        "A manual partition assignment was specified, but the number of partitions or the replication factor was not -1",
                    );
                }
                if a.is_empty() || a.len() > max as usize {
                    return fail(
                        E::InvalidPartitions,
                        format!(
                            "Number of partitions must be in [1, {max}], got {}",
                            a.len()
                        ),
                    );
                }
                self.validate_manual_assignment(&a)?;
                a
            }
            None => {
                let n = match num_partitions {
                    None | Some(-1) => self.config.num_partitions,
                    Some(n) => n,
                };
                if n <= 0 || n > max {
                    return fail(
                        E::InvalidPartitions,
                        format!("Number of partitions must be in [1, {max}], got {n}"),
                    );
                }
                let rf = match replication_factor {
                    None | Some(-1) => self.config.default_replication_factor,
                    Some(r) => r,
                };
                self.auto_assignment(name, n as usize, rf, 0)?
            }
        };
        let mut partitions = Vec::with_capacity(assignment.len());
        for (i, replicas) in assignment.into_iter().enumerate() {
            let isr = in_replica_order(&replicas, |b| self.image.is_live(b));
            let Some(&leader) = isr.first() else {
                return fail(
                    E::InvalidReplicationFactor,
                    format!("All brokers specified in the manual partition assignment for partition {i} are fenced"),
                );
            };
            partitions.push((replicas, isr, leader));
        }
        let topic_id = derive_topic_id(name, self.image.last_offset() + 1, |id| {
            self.image.topic_by_id(id).is_some()
        });
        self.append(MetadataRecord::Topic {
            name: name.to_string(),
            topic_id,
        });
        for (k, v) in configs {
            self.append(MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: name.to_string(),
                name: k.clone(),
                value: Some(v.trim().to_string()),
            });
        }
        self.append_partitions(topic_id, 0, partitions);
        Ok(topic_id)
    }

    fn append_partitions(
        &mut self,
        topic_id: TopicId,
        first: usize,
        partitions: Vec<(Vec<BrokerId>, Vec<BrokerId>, BrokerId)>,
    ) {
        for (i, (replicas, isr, leader)) in partitions.into_iter().enumerate() {
            self.append(MetadataRecord::Partition {
                topic_id,
                partition: (first + i) as i32,
                replicas,
                isr,
                elr: Vec::new(),
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                leader_recovery_state: LeaderRecoveryState::Recovered,
                directories: Vec::new(),
            });
        }
    }

    /// Kafka's checks of a manual assignment: every partition names at least one replica, no
    /// broker twice, only registered brokers, and all partitions the same number of replicas.
    fn validate_manual_assignment(&self, a: &[Vec<BrokerId>]) -> Result<()> {
        for (i, replicas) in a.iter().enumerate() {
            if replicas.is_empty() {
                return fail(
                    E::InvalidReplicaAssignment,
                    format!("The manual partition assignment includes an empty replica list for partition {i}"),
                );
            }
            for (j, b) in replicas.iter().enumerate() {
                if replicas[..j].contains(b) {
                    return fail(
                        E::InvalidReplicaAssignment,
                        format!("The manual partition assignment includes broker {b} more than once for partition {i}"),
                    );
                }
                if self.image.broker(*b).is_none() {
                    return fail(
                        E::InvalidReplicaAssignment,
                        format!("The manual partition assignment includes broker {b}, but no such broker is registered"),
                    );
                }
            }
            if replicas.len() != a[0].len() {
                return fail(
                    E::InvalidReplicaAssignment,
                    "All partitions in the manual partition assignment must have the same number of replicas",
                );
            }
        }
        Ok(())
    }

    /// Kafka's rack-unaware placement over the live brokers, seeded by the topic name.
    fn auto_assignment(
        &self,
        topic: &str,
        count: usize,
        replication_factor: i16,
        first_partition: usize,
    ) -> Result<Vec<Vec<BrokerId>>> {
        let live = self.image.live_brokers();
        if replication_factor <= 0 || replication_factor as usize > live.len() {
            return fail(
                E::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): only {} unfenced broker(s) are registered",
                    live.len()
                ),
            );
        }
        let (start, shift) = placement_seed(topic, live.len());
        assign_replicas_to_brokers(
            count,
            replication_factor as usize,
            &live,
            start,
            shift,
            first_partition,
        )
        .ok_or_else(|| {
            ControllerError::new(E::InvalidReplicationFactor, "Unable to place replicas")
        })
    }

    /// DeleteTopics for one topic: its partitions and configs go with it.
    pub fn delete_topic(&mut self, name: &str) -> Result<TopicId> {
        let Some(t) = self.image.topic(name) else {
            return fail(
                E::UnknownTopicOrPartition,
                format!("Topic {name} does not exist"),
            );
        };
        let topic_id = t.id;
        self.append(MetadataRecord::RemoveTopic { topic_id });
        Ok(topic_id)
    }

    /// CreatePartitions: grows the topic to `new_total_count` partitions, placed like new
    /// topics, with the replication factor of its existing partitions.
    pub fn create_partitions(&mut self, name: &str, new_total_count: i32) -> Result<()> {
        let Some(t) = self.image.topic(name) else {
            return fail(
                E::UnknownTopicOrPartition,
                format!("Topic {name} does not exist"),
            );
        };
        let (topic_id, current) = (t.id, t.partitions.len());
        let rf = t
            .partitions
            .first()
            .map_or(self.config.default_replication_factor, |p| {
                p.replicas.len() as i16
            });
        if new_total_count < 0 || (new_total_count as usize) < current {
            return fail(
                E::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {new_total_count}."),
            );
        }
        if new_total_count as usize == current {
            return fail(
                E::InvalidPartitions,
                format!("Topic already has {current} partitions."),
            );
        }
        let max = self.config.max_partitions_per_topic;
        if new_total_count > max {
            return fail(
                E::InvalidPartitions,
                format!("Number of partitions must be at most {max}, got {new_total_count}"),
            );
        }
        let added = new_total_count as usize - current;
        let assignment = self.auto_assignment(name, added, rf, current)?;
        let partitions = assignment
            .into_iter()
            .map(|replicas| {
                let leader = replicas[0];
                (replicas.clone(), replicas, leader)
            })
            .collect();
        self.append_partitions(topic_id, current, partitions);
        Ok(())
    }

    /// IncrementalAlterConfigs on one topic, validated like CreateTopics; a change that sets a
    /// config to its current value writes no record. Writing `min.insync.replicas` clears the
    /// topic's ELRs, as Kafka does (KIP-966: eligibility was judged against the old value);
    /// enabling unclean election elects leaders for the topic's offline partitions, as Kafka's
    /// periodic unclean-election task would.
    pub fn alter_configs(&mut self, topic: &str, changes: &[ConfigChange]) -> Result<()> {
        if self.image.topic(topic).is_none() {
            return fail(
                E::UnknownTopicOrPartition,
                format!("Topic {topic} does not exist"),
            );
        }
        for c in changes {
            match c {
                ConfigChange::Set(k, v) => topic_config::validate(k, v)?,
                ConfigChange::Delete(k) => {
                    if !topic_config::SUPPORTED.contains(&k.as_str()) {
                        return fail(E::InvalidConfig, format!("Unknown topic config name: {k}"));
                    }
                }
            }
        }
        let mut min_isr_written = false;
        let unclean_before = self.unclean_leader_election_enable(topic);
        for c in changes {
            let (name, value) = match c {
                ConfigChange::Set(k, v) => (k, Some(v.trim().to_string())),
                ConfigChange::Delete(k) => (k, None),
            };
            let current = self
                .image
                .config(ConfigResourceType::Topic, topic, name)
                .map(str::to_string);
            if current == value {
                continue;
            }
            min_isr_written |= name == MIN_INSYNC_REPLICAS;
            self.append(MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: topic.to_string(),
                name: name.clone(),
                value,
            });
        }
        if min_isr_written {
            for (_, topic_id, partition, p) in
                self.partitions_where(|t, p| t == topic && !p.elr.is_empty())
            {
                let mut change = self.partition_change(&p, topic);
                change.elr.clear();
                if let Some(rec) = change.into_record(topic_id, partition, &p) {
                    self.append(rec);
                }
            }
        }
        if !unclean_before && self.unclean_leader_election_enable(topic) {
            self.elect_offline_partitions(Some(topic));
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------
    // Partitions

    /// AlterPartition from a partition leader (the model's `AlterPartition`). Kafka's checks,
    /// in Kafka's order: the sender's broker epoch (STALE_BROKER_EPOCH); the topic id
    /// (UNKNOWN_TOPIC_ID) and partition (UNKNOWN_TOPIC_OR_PARTITION); epochs newer than the
    /// controller's (NOT_CONTROLLER); an older leader epoch (FENCED_LEADER_EPOCH); a sender
    /// that is not the leader (INVALID_REQUEST); an older partition epoch
    /// (INVALID_UPDATE_VERSION); an ISR with a duplicate or a non-replica, or without the
    /// leader, or an illegal leader recovery state (INVALID_REQUEST); a member not registered,
    /// fenced, or whose broker epoch is not its current one (KIP-841, KIP-903:
    /// INELIGIBLE_REPLICA). Accepting bumps the partition epoch and keeps the ELR (KIP-966).
    /// Returns the partition's state after the change, for the response.
    pub fn alter_partition(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        req: &AlterPartitionRequest,
    ) -> Result<PartitionImage> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        let Some(t) = self.image.topic_by_id(&req.topic_id) else {
            return fail(E::UnknownTopicId, "Unknown topic id");
        };
        let topic = t.name.clone();
        let Some(p) = self.image.partition(&topic, req.partition).cloned() else {
            return fail(
                E::UnknownTopicOrPartition,
                format!("Unknown partition {topic}-{}", req.partition),
            );
        };
        let tp = format!("{topic}-{}", req.partition);
        if req.leader_epoch > p.leader_epoch || req.partition_epoch > p.partition_epoch {
            return fail(
                E::NotController,
                format!("{tp}: the request's epochs are newer than the controller's"),
            );
        }
        if req.leader_epoch < p.leader_epoch {
            return fail(
                E::FencedLeaderEpoch,
                format!(
                    "{tp}: leader epoch is {}, not {}",
                    p.leader_epoch, req.leader_epoch
                ),
            );
        }
        if broker_id != p.leader {
            return fail(
                E::InvalidRequest,
                format!("{tp}: the current leader is {}, not {broker_id}", p.leader),
            );
        }
        if req.partition_epoch < p.partition_epoch {
            return fail(
                E::InvalidUpdateVersion,
                format!(
                    "{tp}: partition epoch is {}, not {}",
                    p.partition_epoch, req.partition_epoch
                ),
            );
        }
        let new_isr: Vec<BrokerId> = req.new_isr_with_epochs.iter().map(|m| m.0).collect();
        for (i, b) in new_isr.iter().enumerate() {
            if !p.replicas.contains(b) || new_isr[..i].contains(b) {
                return fail(
                    E::InvalidRequest,
                    format!(
                        "{tp}: invalid ISR {new_isr:?} for replicas {:?}",
                        p.replicas
                    ),
                );
            }
        }
        if !new_isr.contains(&p.leader) {
            return fail(
                E::InvalidRequest,
                format!("{tp}: the ISR {new_isr:?} does not include the leader"),
            );
        }
        if req.leader_recovery_state == LeaderRecoveryState::Recovering && new_isr.len() > 1 {
            return fail(
                E::InvalidRequest,
                format!("{tp}: a recovering leader's ISR must be itself alone"),
            );
        }
        if p.leader_recovery_state == LeaderRecoveryState::Recovered
            && req.leader_recovery_state == LeaderRecoveryState::Recovering
        {
            return fail(
                E::InvalidRequest,
                format!("{tp}: the leader recovery state cannot go back to recovering"),
            );
        }
        for (b, epoch) in &req.new_isr_with_epochs {
            let why = match self.image.broker(*b) {
                None => Some("not registered".to_string()),
                Some(r) if r.fenced => Some("fenced".to_string()),
                Some(_) if p.is_log_offline(*b) => Some("its log is offline".to_string()),
                // Fault: before KIP-903 the members' broker epochs were not checked.
                Some(r)
                    if *epoch != UNKNOWN_BROKER_EPOCH
                        && *epoch != r.epoch
                        && !fault!(self.config.faults, StaleBrokerEpoch) =>
                {
                    Some(format!(
                        "broker epoch mismatch: requested={epoch} vs expected={}",
                        r.epoch
                    ))
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                return fail(
                    E::IneligibleReplica,
                    format!("{tp}: replica {b} is ineligible for the ISR: {why}"),
                );
            }
        }
        let removed: Vec<BrokerId> = p
            .isr
            .iter()
            .copied()
            .filter(|b| !new_isr.contains(b))
            .collect();
        let mut change = self.partition_change(&p, &topic);
        change.set_isr(&new_isr, &removed);
        change.leader_recovery_state = req.leader_recovery_state;
        if let Some(rec) = change.into_record(req.topic_id, req.partition, &p) {
            self.append(rec);
        }
        Ok(self
            .image
            .partition(&topic, req.partition)
            .cloned()
            .unwrap_or(p))
    }

    /// ElectLeaders: one result per requested partition, in order. Preferred moves leadership
    /// to the first replica when it is a live ISR member (the model's `MoveLeader`);
    /// Unclean gives an offline partition a leader: a live ISR member, else a live ELR member,
    /// else any live replica (the model's `ElectLeader`, with unclean election forced).
    pub fn elect_leaders(
        &mut self,
        kind: ElectionType,
        partitions: &[(String, i32)],
    ) -> Vec<Result<()>> {
        partitions
            .iter()
            .map(|(topic, partition)| self.elect_leader(kind, topic, *partition))
            .collect()
    }

    fn elect_leader(&mut self, kind: ElectionType, topic: &str, partition: i32) -> Result<()> {
        let (Some(t), Some(p)) = (
            self.image.topic(topic),
            self.image.partition(topic, partition),
        ) else {
            return fail(
                E::UnknownTopicOrPartition,
                format!("No such partition as {topic}-{partition}"),
            );
        };
        let (topic_id, p) = (t.id, p.clone());
        let mut change = self.partition_change(&p, topic);
        match kind {
            ElectionType::Preferred => {
                let preferred = p.replicas.first().copied().unwrap_or(NO_BROKER);
                if p.leader == preferred {
                    return fail(E::ElectionNotNeeded, "The preferred replica already leads");
                }
                if !p.isr.contains(&preferred) || !self.image.is_live(preferred) {
                    return fail(
                        E::PreferredLeaderNotAvailable,
                        format!("Preferred replica {preferred} is not a live ISR member"),
                    );
                }
                change.leader = preferred;
            }
            ElectionType::Unclean => {
                if p.leader != NO_BROKER {
                    return fail(E::ElectionNotNeeded, "The partition has a leader");
                }
                let candidates =
                    election_candidates(&p, |b| self.image.is_live(b), NO_BROKER, true);
                if candidates.1.is_empty() {
                    return fail(E::EligibleLeadersNotAvailable, "No live replica can lead");
                }
                change.elect(candidates);
            }
        }
        if let Some(rec) = change.into_record(topic_id, partition, &p) {
            self.append(rec);
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------
    // Producer ids

    /// AllocateProducerIds (KIP-730): the next block of [`PRODUCER_ID_BLOCK_SIZE`] producer
    /// ids for a registered broker. Returns (first id, block length).
    pub fn allocate_producer_ids(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
    ) -> Result<(i64, i32)> {
        self.check_broker_epoch(broker_id, broker_epoch)?;
        let start = self.image.next_producer_id();
        let Some(next) = start.checked_add(PRODUCER_ID_BLOCK_SIZE as i64) else {
            return fail(E::UnknownServerError, "Producer ids are exhausted");
        };
        self.append(MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id_block_start: next,
        });
        Ok((start, PRODUCER_ID_BLOCK_SIZE))
    }
}
