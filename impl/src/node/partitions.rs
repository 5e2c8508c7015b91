//! The broker's replica manager: every partition replica this broker hosts, each a
//! deterministic [`Replica`] behind its own lock, plus the plumbing the state machine does not
//! do itself — parked produce requests waiting for their answer, wake-ups for long-polling
//! fetches, and the AlterPartition proposals sent to the controller.
//!
//! Locks are `std::sync::Mutex` held only for the synchronous state-machine call (storage I/O
//! included, as Kafka holds the partition's leader-ISR lock across its append); never across
//! an `.await`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::BytesMut;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::replication::{
    Acks, AlterPartitionProposal, Effect, PartitionRegistration, ProduceCompletion, ProduceOutcome,
    Replica, ReplicaConfig,
};
use crate::storage::{BatchRejection, LogConfig, PartitionLog};

/// A topic partition's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Kafka's directory name: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    pub fn topic_name(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.topic.clone()))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// An AlterPartition proposal on its way to the controller.
#[derive(Debug)]
pub struct OutgoingAlterPartition {
    pub tp: TopicPartition,
    pub topic_id: [u8; 16],
    pub proposal: AlterPartitionProposal,
}

/// One hosted replica and the requests waiting on it.
pub struct PartitionSlot {
    pub tp: TopicPartition,
    pub topic_id: [u8; 16],
    inner: Mutex<SlotInner>,
}

struct SlotInner {
    replica: Replica,
    /// Parked acks=all produces by request id.
    waiters: HashMap<u64, oneshot::Sender<ProduceCompletion>>,
}

impl PartitionSlot {
    /// Runs `f` on the replica under the slot's lock, then routes the effects it queued.
    pub fn with_replica<T>(&self, mgr: &ReplicaManager, f: impl FnOnce(&mut Replica) -> T) -> T {
        self.locked(mgr, |inner| f(&mut inner.replica))
    }

    /// Appends a produce and, for acks=all, parks it until the replica answers.
    pub fn produce(
        &self,
        mgr: &ReplicaManager,
        batches: BytesMut,
        acks: Acks,
        timeout_ms: u64,
        now_ms: u64,
    ) -> ProduceWait {
        let request_id = mgr.next_request_id();
        self.locked(mgr, |inner| {
            let outcome = inner
                .replica
                .append_as_leader(request_id, batches, acks, timeout_ms, now_ms);
            match outcome {
                ProduceOutcome::Completed(c) => ProduceWait::Done(c),
                ProduceOutcome::Rejected(r) => ProduceWait::Rejected(r),
                ProduceOutcome::Delayed { .. } => {
                    // Parked before the effects are routed, so an answer the same call
                    // queued finds its waiter.
                    let (tx, rx) = oneshot::channel();
                    inner.waiters.insert(request_id, tx);
                    ProduceWait::Parked(rx)
                }
            }
        })
    }

    /// The one place the slot's lock is taken: runs `f`, routes the effects the replica
    /// queued (answers to parked produces, AlterPartition proposals), and wakes long-polling
    /// fetches if the log end offset or the high watermark moved.
    fn locked<T>(&self, mgr: &ReplicaManager, f: impl FnOnce(&mut SlotInner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let hw_before = inner.replica.high_watermark();
        let leo_before = inner.replica.log_end_offset();
        let out = f(&mut inner);
        let changed = inner.replica.high_watermark() != hw_before
            || inner.replica.log_end_offset() != leo_before;
        self.route_effects(&mut inner, mgr);
        drop(inner);
        if changed {
            mgr.data_changed();
        }
        out
    }

    fn route_effects(&self, inner: &mut SlotInner, mgr: &ReplicaManager) {
        while let Some(effect) = inner.replica.poll_effect() {
            match effect {
                Effect::CompleteProduce(c) => {
                    if let Some(tx) = inner.waiters.remove(&c.request_id) {
                        let _ = tx.send(c);
                    }
                }
                Effect::SendAlterPartition(proposal) => {
                    let _ = mgr.alter_partition_tx.send(OutgoingAlterPartition {
                        tp: self.tp.clone(),
                        topic_id: self.topic_id,
                        proposal,
                    });
                }
            }
        }
    }
}

/// A produce's answer: now, or later from the purgatory.
pub enum ProduceWait {
    Done(ProduceCompletion),
    /// A batch failed validation; nothing was appended.
    Rejected(BatchRejection),
    Parked(oneshot::Receiver<ProduceCompletion>),
}

/// Every replica this broker hosts.
pub struct ReplicaManager {
    pub broker_id: i32,
    log_dir: PathBuf,
    log_config: LogConfig,
    replica_config: ReplicaConfig,
    slots: RwLock<HashMap<TopicPartition, Arc<PartitionSlot>>>,
    next_request_id: AtomicU64,
    /// Bumped whenever a log end offset or high watermark moves: long-polling fetches wait
    /// on it.
    data_version: watch::Sender<u64>,
    alter_partition_tx: mpsc::UnboundedSender<OutgoingAlterPartition>,
}

impl ReplicaManager {
    pub fn new(
        log_dir: PathBuf,
        log_config: LogConfig,
        replica_config: ReplicaConfig,
    ) -> (
        Arc<ReplicaManager>,
        mpsc::UnboundedReceiver<OutgoingAlterPartition>,
    ) {
        let (alter_partition_tx, rx) = mpsc::unbounded_channel();
        let (data_version, _) = watch::channel(0);
        let mgr = ReplicaManager {
            broker_id: replica_config.broker_id,
            log_dir,
            log_config,
            replica_config,
            slots: RwLock::new(HashMap::new()),
            next_request_id: AtomicU64::new(1),
            data_version,
            alter_partition_tx,
        };
        (Arc::new(mgr), rx)
    }

    fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    fn data_changed(&self) {
        self.data_version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every later data change (for long polls).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.data_version.subscribe()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<PartitionSlot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tp)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<PartitionSlot>> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Applies the controller's state for a partition this broker is a replica of: opens
    /// (and recovers) its log the first time, then becomes leader or follower. `min_isr`
    /// is the topic's min.insync.replicas.
    pub fn apply_partition_state(
        &self,
        tp: &TopicPartition,
        topic_id: [u8; 16],
        state: &PartitionRegistration,
        min_isr: usize,
        broker_epoch: i64,
        now_ms: u64,
    ) -> anyhow::Result<()> {
        let slot = match self.get(tp) {
            Some(s) => s,
            None => {
                let dir = self.log_dir.join(tp.dir_name());
                let log = PartitionLog::open(&dir, self.log_config.clone())?;
                let mut config = self.replica_config;
                config.min_insync_replicas = min_isr;
                let slot = Arc::new(PartitionSlot {
                    tp: tp.clone(),
                    topic_id,
                    inner: Mutex::new(SlotInner {
                        replica: Replica::new(config, log, broker_epoch)?,
                        waiters: HashMap::new(),
                    }),
                });
                self.slots
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tp.clone(), slot.clone());
                slot
            }
        };
        slot.with_replica(self, |r| {
            r.set_min_insync_replicas(min_isr);
            if state.leader == self.broker_id {
                r.become_leader(state, now_ms);
            } else {
                r.become_follower(state);
            }
        });
        Ok(())
    }

    /// Stops hosting a partition (its topic was deleted or it moved away) and deletes its
    /// directory.
    pub fn remove(&self, tp: &TopicPartition) {
        let slot = self
            .slots
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tp);
        if let Some(slot) = slot {
            let dir = self.log_dir.join(tp.dir_name());
            drop(slot);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(%tp, error = %e, "could not delete partition directory");
            }
        }
    }

    /// Periodic work: produce timeouts and ISR expiry ([`Replica::handle_timeout`]), the
    /// flush policy, and the high-watermark checkpoint (`checkpoint_hw`).
    pub fn tick(&self, now_ms: u64, checkpoint_hw: bool) {
        for slot in self.all() {
            slot.with_replica(self, |r| {
                r.handle_timeout(now_ms);
                if let Err(e) = r.log_mut().maybe_flush(now_ms) {
                    tracing::error!(tp = %slot.tp, error = %e, "flush failed");
                }
                if checkpoint_hw {
                    if let Err(e) = r.log().checkpoint_high_watermark() {
                        tracing::error!(tp = %slot.tp, error = %e, "hw checkpoint failed");
                    }
                }
            });
        }
    }

    /// Clean shutdown: flush every log and checkpoint its high watermark.
    pub fn shutdown(&self) {
        for slot in self.all() {
            slot.with_replica(self, |r| {
                let _ = r.log_mut().flush();
                let _ = r.log().checkpoint_high_watermark();
            });
        }
    }
}
