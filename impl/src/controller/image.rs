//! The metadata image: the cluster's metadata as the records so far make it.
//!
//! The controller and every broker hold one and apply the same records in the same order, so
//! applying is cheap (no allocation beyond the record's own data), total (a record that refers
//! to something unknown changes nothing) and deterministic (ordered maps only).

use std::collections::BTreeMap;

use super::records::{
    ConfigResourceType, DirectoryId, Endpoint, LeaderRecoveryState, MetadataRecord, TopicId,
    DIRECTORY_LOST, DIRECTORY_UNASSIGNED,
};
use crate::replication::{BrokerId, NO_BROKER};

/// What the metadata says about one broker. Its last heartbeat time is not here: that is the
/// controller's soft state, not metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    /// The broker epoch (KIP-903): the offset of its latest registration record.
    pub epoch: i64,
    pub incarnation_id: String,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker may neither lead nor be in an ISR.
    pub fenced: bool,
}

/// One partition as KRaft's `PartitionRegistration` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    /// The assigned replicas, the preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas, in replica order.
    pub isr: Vec<BrokerId>,
    /// Eligible leader replicas (KIP-966): replicas that left an ISR that was below
    /// min.insync.replicas and still hold every committed record.
    pub elr: Vec<BrokerId>,
    /// -1 ([`NO_BROKER`]) when offline.
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub leader_recovery_state: LeaderRecoveryState,
    /// Each replica's log directory in replica order (KIP-858); empty when all are
    /// unassigned. See [`PartitionImage::is_log_offline`].
    pub directories: Vec<DirectoryId>,
}

impl PartitionImage {
    /// The log directory of `replica` ([`DIRECTORY_UNASSIGNED`] if none is recorded).
    pub fn directory(&self, replica: BrokerId) -> DirectoryId {
        self.replicas
            .iter()
            .position(|r| *r == replica)
            .and_then(|i| self.directories.get(i))
            .copied()
            .unwrap_or(DIRECTORY_UNASSIGNED)
    }

    /// Whether `replica`'s log is offline: its broker assigned it to
    /// [`DIRECTORY_LOST`] because the log failed to open or recover. Such a replica may
    /// neither lead nor be in the ISR or ELR.
    pub fn is_log_offline(&self, replica: BrokerId) -> bool {
        self.directory(replica) == DIRECTORY_LOST
    }

    /// Whether the partition has a leader.
    pub fn is_online(&self) -> bool {
        self.leader != NO_BROKER
    }

    /// Whether some replica is out of the ISR.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// One topic: its id and its partitions, indexed by partition id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: Vec<PartitionImage>,
}

/// The whole metadata image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<String, TopicImage>,
    topic_names: BTreeMap<TopicId, String>,
    /// Per resource: topic configs by topic name, broker configs by broker id, and the
    /// cluster defaults under the broker resource `""`.
    configs: BTreeMap<(ConfigResourceType, String), BTreeMap<String, String>>,
    next_producer_id: i64,
    last_offset: i64,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage::new()
    }
}

impl MetadataImage {
    /// The empty image, before any record.
    pub fn new() -> Self {
        MetadataImage {
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            configs: BTreeMap::new(),
            next_producer_id: 0,
            last_offset: -1,
        }
    }

    /// The offset of the last record applied; -1 before any.
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// The first producer id of the next block to hand out.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Applies the record at `offset`. Records that name an unknown broker (or a stale broker
    /// epoch), topic or partition change nothing but the offset.
    pub fn apply(&mut self, offset: i64, rec: &MetadataRecord) {
        self.last_offset = offset;
        match rec {
            MetadataRecord::RegisterBroker {
                broker_id,
                broker_epoch,
                incarnation_id,
                endpoints,
                rack,
                fenced,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_id: *broker_id,
                        epoch: *broker_epoch,
                        incarnation_id: incarnation_id.clone(),
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: *fenced,
                    },
                );
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                if self.broker_epoch(*broker_id) == Some(*broker_epoch) {
                    self.brokers.remove(broker_id);
                }
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, true),
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.set_fenced(*broker_id, *broker_epoch, false),
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) || self.topic_names.contains_key(topic_id) {
                    return;
                }
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: Vec::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                elr,
                leader,
                leader_epoch,
                partition_epoch,
                leader_recovery_state,
                directories,
            } => {
                let Some(topic) = self.topic_by_id_mut(topic_id) else {
                    return;
                };
                let image = PartitionImage {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    elr: elr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    leader_recovery_state: *leader_recovery_state,
                    directories: directories.clone(),
                };
                let Ok(p) = usize::try_from(*partition) else {
                    return;
                };
                if p < topic.partitions.len() {
                    topic.partitions[p] = image;
                } else if p == topic.partitions.len() {
                    topic.partitions.push(image);
                }
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                isr,
                elr,
                leader,
                leader_recovery_state,
                directories,
            } => {
                let Some(topic) = self.topic_by_id_mut(topic_id) else {
                    return;
                };
                let Some(p) = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| topic.partitions.get_mut(p))
                else {
                    return;
                };
                if let Some(isr) = isr {
                    p.isr.clone_from(isr);
                }
                if let Some(elr) = elr {
                    p.elr.clone_from(elr);
                }
                if let Some(l) = leader {
                    if *l != p.leader {
                        p.leader = *l;
                        p.leader_epoch += 1;
                    }
                }
                if let Some(s) = leader_recovery_state {
                    p.leader_recovery_state = *s;
                }
                if let Some(d) = directories {
                    p.directories.clone_from(d);
                    if p.directories.iter().all(|d| *d == DIRECTORY_UNASSIGNED) {
                        p.directories.clear();
                    }
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                    self.configs.remove(&(ConfigResourceType::Topic, name));
                }
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                let key = (*resource_type, resource_name.clone());
                match value {
                    Some(v) => {
                        self.configs
                            .entry(key)
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    None => {
                        if let Some(m) = self.configs.get_mut(&key) {
                            m.remove(name);
                            if m.is_empty() {
                                self.configs.remove(&key);
                            }
                        }
                    }
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id_block_start,
                ..
            } => self.next_producer_id = *next_producer_id_block_start,
            MetadataRecord::LeaderChange { .. }
            | MetadataRecord::SnapshotHeader { .. }
            | MetadataRecord::SnapshotFooter { .. } => {}
        }
    }

    /// The image as metadata records (a KRaft snapshot's content, KIP-630): applied in order
    /// to an empty image they rebuild this one. One `RegisterBroker` per broker (with its
    /// epoch and fencing), each topic's `Topic` then one `Partition` per partition (with its
    /// epochs, ISR, ELR and recovery state), every `Config`, and the producer-id block.
    pub fn image_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                broker_epoch: b.epoch,
                incarnation_id: b.incarnation_id.clone(),
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
            });
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            for (i, p) in t.partitions.iter().enumerate() {
                out.push(MetadataRecord::Partition {
                    topic_id: t.id,
                    partition: i as i32,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    elr: p.elr.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    leader_recovery_state: p.leader_recovery_state,
                    directories: p.directories.clone(),
                });
            }
        }
        for ((resource_type, resource_name), configs) in &self.configs {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id != 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: NO_BROKER,
                broker_epoch: -1,
                next_producer_id_block_start: self.next_producer_id,
            });
        }
        out
    }

    /// The image a snapshot ending at `end_offset` holds: its records applied to an empty
    /// image, which then stands at offset `end_offset - 1` (the next record is `end_offset`).
    pub fn from_snapshot<'a>(
        end_offset: i64,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> MetadataImage {
        let mut image = MetadataImage::new();
        for r in records {
            image.apply(end_offset - 1, r);
        }
        image.last_offset = end_offset - 1;
        image
    }

    fn set_fenced(&mut self, broker_id: BrokerId, epoch: i64, fenced: bool) {
        if let Some(b) = self.brokers.get_mut(&broker_id) {
            if b.epoch == epoch {
                b.fenced = fenced;
            }
        }
    }

    fn topic_by_id_mut(&mut self, id: &TopicId) -> Option<&mut TopicImage> {
        let name = self.topic_names.get(id)?;
        self.topics.get_mut(name)
    }

    // -------------------------------------------------------------------------------------
    // Queries

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// The broker's current epoch, if registered.
    pub fn broker_epoch(&self, id: BrokerId) -> Option<i64> {
        self.brokers.get(&id).map(|b| b.epoch)
    }

    /// Whether the broker is registered and unfenced: it may lead and be in an ISR.
    pub fn is_live(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The registered, unfenced brokers, in id order.
    pub fn live_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect()
    }

    /// Every topic, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &TopicId) -> Option<&TopicImage> {
        self.topics.get(self.topic_names.get(id)?)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(p)
    }

    pub fn partition_by_id(&self, topic_id: &TopicId, partition: i32) -> Option<&PartitionImage> {
        let p = usize::try_from(partition).ok()?;
        self.topic_by_id(topic_id)?.partitions.get(p)
    }

    /// A topic-level config, falling back to the cluster default (broker resource `""`).
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<&str> {
        self.config(ConfigResourceType::Topic, topic, key)
            .or_else(|| self.cluster_default(key))
    }

    /// A cluster-wide default config (broker resource `""`).
    pub fn cluster_default(&self, key: &str) -> Option<&str> {
        self.config(ConfigResourceType::Broker, "", key)
    }

    /// One config of one resource, without fallback.
    pub fn config(&self, rt: ConfigResourceType, name: &str, key: &str) -> Option<&str> {
        self.configs
            .get(&(rt, name.to_string()))
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }

    /// Every config set on one resource, without fallback.
    pub fn configs_of(&self, rt: ConfigResourceType, name: &str) -> Vec<(&str, &str)> {
        self.configs
            .get(&(rt, name.to_string()))
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .unwrap_or_default()
    }

    /// The partition's replicas that cannot serve: unregistered or fenced brokers, and
    /// replicas whose log is offline ([`PartitionImage::is_log_offline`]), as Kafka's
    /// Metadata counts a replica in an offline log directory.
    pub fn offline_replicas(&self, topic: &str, partition: i32) -> Vec<BrokerId> {
        self.partition(topic, partition)
            .map(|p| {
                p.replicas
                    .iter()
                    .copied()
                    .filter(|r| !self.is_live(*r) || p.is_log_offline(*r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the partition exists and some replica is out of its ISR.
    pub fn is_under_replicated(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition)
            .is_some_and(PartitionImage::is_under_replicated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: TopicId = [1; 16];

    fn register(id: BrokerId, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker {
            broker_id: id,
            broker_epoch: epoch,
            incarnation_id: format!("inc-{id}"),
            endpoints: vec![],
            rack: None,
            fenced: true,
        }
    }

    fn image_with_partition() -> MetadataImage {
        let mut img = MetadataImage::new();
        let recs = [
            register(1, 0),
            register(2, 1),
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 0,
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: ID,
            },
            MetadataRecord::Partition {
                topic_id: ID,
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                elr: vec![],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                leader_recovery_state: LeaderRecoveryState::Recovered,
                directories: vec![],
            },
        ];
        for (i, r) in recs.iter().enumerate() {
            img.apply(i as i64, r);
        }
        img
    }

    #[test]
    fn registration_and_fencing_follow_the_broker_epoch() {
        let mut img = image_with_partition();
        assert_eq!(img.live_brokers(), vec![1]);
        // A fence record from an older incarnation changes nothing.
        img.apply(
            5,
            &MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 7,
            },
        );
        assert!(img.is_live(1));
        img.apply(
            6,
            &MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 0,
            },
        );
        assert!(!img.is_live(1));
        assert_eq!(img.last_offset(), 6);
        assert_eq!(img.offline_replicas("t", 0), vec![1, 2]);
        img.apply(
            7,
            &MetadataRecord::UnregisterBroker {
                broker_id: 2,
                broker_epoch: 1,
            },
        );
        assert!(img.broker(2).is_none());
    }

    #[test]
    fn partition_change_bumps_the_leader_epoch_only_when_the_leader_changes() {
        let mut img = image_with_partition();
        let change = |isr: Option<Vec<i32>>, leader: Option<i32>| MetadataRecord::PartitionChange {
            topic_id: ID,
            partition: 0,
            isr,
            elr: None,
            leader,
            leader_recovery_state: None,
            directories: None,
        };
        img.apply(5, &change(Some(vec![1]), None));
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
        assert!(img.is_under_replicated("t", 0));
        // Naming the current leader is not a leader change.
        img.apply(6, &change(None, Some(1)));
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 2));
        img.apply(7, &change(Some(vec![2]), Some(2)));
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 3));
        img.apply(8, &change(Some(vec![]), Some(NO_BROKER)));
        let p = img.partition("t", 0).unwrap();
        assert!(!p.is_online());
        assert_eq!((p.leader_epoch, p.partition_epoch), (2, 4));
    }

    #[test]
    fn topic_configs_fall_back_to_cluster_defaults_and_go_with_the_topic() {
        let mut img = image_with_partition();
        let cfg = |rt, res: &str, v: Option<&str>| MetadataRecord::Config {
            resource_type: rt,
            resource_name: res.into(),
            name: "min.insync.replicas".into(),
            value: v.map(String::from),
        };
        assert_eq!(img.topic_config("t", "min.insync.replicas"), None);
        img.apply(5, &cfg(ConfigResourceType::Broker, "", Some("1")));
        assert_eq!(img.topic_config("t", "min.insync.replicas"), Some("1"));
        img.apply(6, &cfg(ConfigResourceType::Topic, "t", Some("2")));
        assert_eq!(img.topic_config("t", "min.insync.replicas"), Some("2"));
        img.apply(7, &cfg(ConfigResourceType::Topic, "t", None));
        assert_eq!(img.topic_config("t", "min.insync.replicas"), Some("1"));
        img.apply(8, &cfg(ConfigResourceType::Topic, "t", Some("2")));
        img.apply(9, &MetadataRecord::RemoveTopic { topic_id: ID });
        assert!(img.topic("t").is_none());
        assert!(img.topic_by_id(&ID).is_none());
        assert!(img.configs_of(ConfigResourceType::Topic, "t").is_empty());
    }

    #[test]
    fn records_about_unknown_things_change_only_the_offset() {
        let mut img = image_with_partition();
        let before = img.clone();
        let unknown = [
            MetadataRecord::PartitionChange {
                topic_id: [9; 16],
                partition: 0,
                isr: Some(vec![]),
                elr: None,
                leader: Some(-1),
                leader_recovery_state: None,
                directories: None,
            },
            MetadataRecord::PartitionChange {
                topic_id: ID,
                partition: 5,
                isr: Some(vec![]),
                elr: None,
                leader: Some(-1),
                leader_recovery_state: None,
                directories: None,
            },
            MetadataRecord::FenceBroker {
                broker_id: 42,
                broker_epoch: 0,
            },
            MetadataRecord::RemoveTopic { topic_id: [9; 16] },
        ];
        for (i, r) in unknown.iter().enumerate() {
            img.apply(10 + i as i64, r);
        }
        img.last_offset = before.last_offset;
        assert_eq!(img, before);
    }

    #[test]
    fn producer_id_blocks_advance() {
        let mut img = MetadataImage::new();
        assert_eq!(img.next_producer_id(), 0);
        img.apply(
            0,
            &MetadataRecord::ProducerIds {
                broker_id: 1,
                broker_epoch: 0,
                next_producer_id_block_start: 1000,
            },
        );
        assert_eq!(img.next_producer_id(), 1000);
    }

    #[test]
    fn a_replica_assigned_to_the_lost_directory_is_offline_until_assigned_again() {
        let mut img = image_with_partition();
        img.apply(
            10,
            &MetadataRecord::UnfenceBroker {
                broker_id: 2,
                broker_epoch: 1,
            },
        );
        assert_eq!(img.offline_replicas("t", 0), Vec::<BrokerId>::new());
        let dirs = |d: Vec<DirectoryId>| MetadataRecord::PartitionChange {
            topic_id: ID,
            partition: 0,
            isr: None,
            elr: None,
            leader: None,
            leader_recovery_state: None,
            directories: Some(d),
        };
        img.apply(11, &dirs(vec![DIRECTORY_UNASSIGNED, DIRECTORY_LOST]));
        let p = img.partition("t", 0).unwrap();
        assert!(p.is_log_offline(2) && !p.is_log_offline(1));
        assert_eq!(p.partition_epoch, 1);
        assert_eq!(img.offline_replicas("t", 0), vec![2]);
        // A snapshot keeps the directories.
        let snap = MetadataImage::from_snapshot(12, img.image_records().iter());
        assert_eq!(snap.partition("t", 0), img.partition("t", 0));
        img.apply(12, &dirs(vec![DIRECTORY_UNASSIGNED, [7; 16]]));
        assert!(!img.partition("t", 0).unwrap().is_log_offline(2));
        assert_eq!(img.offline_replicas("t", 0), Vec::<BrokerId>::new());
        // All unassigned again: nothing recorded.
        img.apply(13, &dirs(vec![DIRECTORY_UNASSIGNED; 2]));
        assert!(img.partition("t", 0).unwrap().directories.is_empty());
    }
}
