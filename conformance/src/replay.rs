//! Replaying model traces against the broker's real code.
//!
//! A [`Cluster`] holds one [`Replica`] per model broker over a real [`PartitionLog`] in a
//! temporary directory, a [`ControllerDriver`], the fetch responses in flight and the
//! AlterPartition requests in flight, and what the producer was told about each record.
//! [`Cluster::apply`] performs one model step with the broker's methods (the table in
//! `osprey-broker`'s `replication` module docs); [`replay`] applies a trace step by step
//! and compares the abstraction ([`crate::abstraction`]) with the model's recorded state
//! after each, stopping at the first mismatch.
//!
//! The driver's own choices, each where the model abstracts something the broker needs:
//! * **Time.** The clock starts at 0 and moves only before ProposeIsrShrink, by more than
//!   `replica.lag.time.max.ms`: the model lets any lagging follower be dropped, the broker
//!   only once it lagged that long.
//! * **Useless fetch responses.** The model does not put in flight a response that carries
//!   no records and no new high watermark (the fetcher would just fetch again); neither
//!   does the replay. One case differs: for a last fetched epoch older than every epoch the
//!   leader knows, storage answers Kafka's `(requested epoch, first start offset)` where the
//!   model answers "unknown" (a diverging epoch that truncates to 0). When the follower has
//!   nothing below that start, the broker's answer is an empty, useless response and the
//!   model's a truncation to 0 that removes nothing; the replay then takes the model's
//!   HandleFetchResponse as a no-op, and the comparison checks that the model's changed
//!   nothing either.
//! * **The high watermark checkpoint.** The model's high watermark survives every crash
//!   (clamped to the log that survives). The broker recovers it from its checkpoint, so the
//!   replay checkpoints it after every step in which it changed (Kafka checkpoints it
//!   periodically; the model's choice is the every-step limit of that).
//! * **Produce answers lost in a crash.** A crash drops the waiting produces' connections:
//!   the producer sees a failure, as the model's `fail_delayed_produces`.
//! * **Flush policy.** Model `flush every` is storage's `EveryBatch`, `never` is `Os`.

use osprey_broker::error_codes::{NONE, NOT_ENOUGH_REPLICAS};
use osprey_broker::faults::{Fault, Faults};
use osprey_broker::replication::{
    Acks, AlterPartitionProposal, BrokerId, Effect, FetchResponse, ProduceOutcome, Replica,
    ReplicaConfig,
};
use osprey_broker::storage::{FlushPolicy as LogFlushPolicy, LogConfig, PartitionLog};
use osprey_model::state::RecordStatus;
use osprey_model::trace::{StateView, Trace};
use osprey_model::{Action, FlushPolicy, ModelConfig};

use crate::abstraction::{diff, record_batch, state_view, BrokerNode, BrokerSlot};
use crate::controller::{ControllerDriver, KafkaController};
use crate::mismatch::{replay_steps, Implementation};

/// `replica.lag.time.max.ms` used by the replay (Kafka's default).
pub const LAG_TIME_MAX_MS: u64 = 30_000;
/// Produce timeout: longer than any replay, so only the protocol completes produces.
const PRODUCE_TIMEOUT_MS: u64 = u64::MAX / 4;
const FETCH_MAX_BYTES: usize = 1 << 20;

/// The first step where the broker and the model disagree.
pub type Mismatch = crate::mismatch::Mismatch<Action, StateView>;

/// What one replay did.
pub type ReplayOutcome = crate::mismatch::ReplayOutcome<Action, StateView>;

/// The broker side of a replay: replicas on real logs, a controller, and the network.
pub struct Cluster {
    config: ModelConfig,
    tmp: tempfile::TempDir,
    brokers: Vec<BrokerSlot>,
    controller: Box<dyn ControllerDriver>,
    /// Per follower: the response to its one outstanding fetch.
    inflight_fetch: Vec<Option<FetchResponse>>,
    /// Per leader: the AlterPartition request it sent.
    inflight_alter: Vec<Option<AlterPartitionProposal>>,
    /// Whether each broker's last shutdown was clean (read at its next registration).
    clean_shutdown: Vec<bool>,
    /// High watermark last checkpointed, per broker.
    checkpointed_hw: Vec<i64>,
    records: Vec<RecordStatus>,
    now_ms: u64,
    /// The test-only fault every replica runs with.
    faults: Faults,
    /// Per broker: its log failed (`LogFails`), so it hosts no replica of the partition
    /// any more (the broker's `reconcile` skips a failed log) and takes no replica step.
    log_failed: Vec<bool>,
}

impl Cluster {
    /// The model's initial state on the broker: broker 0 leads in epoch 0 with every replica
    /// in the ISR, every broker has learned it, every log is empty. The controller is the
    /// broker's own ([`KafkaController`]).
    pub fn new(config: ModelConfig) -> Result<Cluster, String> {
        Cluster::with_fault(config, None)
    }

    /// As [`Cluster::new`], with `fault` switched on in every replica and in the controller
    /// (it acts only in builds with `osprey-broker`'s `faults` feature).
    pub fn with_fault(config: ModelConfig, fault: Option<Fault>) -> Result<Cluster, String> {
        let faults = Faults::new(fault);
        let controller = KafkaController::new(
            config.brokers,
            config.min_isr,
            config.unclean_election(),
            faults,
        )
        .map_err(|e| e.to_string())?;
        let mut c = Cluster::with_controller(config, Box::new(controller))?;
        c.faults = faults;
        for slot in &mut c.brokers {
            if let BrokerNode::Up(r) = &mut slot.node {
                r.set_faults(faults);
            }
        }
        Ok(c)
    }

    /// As [`Cluster::new`] with another controller (in the same initial state).
    pub fn with_controller(
        config: ModelConfig,
        controller: Box<dyn ControllerDriver>,
    ) -> Result<Cluster, String> {
        let tmp = tempfile::tempdir_in(scratch_dir())
            .map_err(|e| format!("creating a temporary dir: {e}"))?;
        let n = config.brokers as usize;
        let mut c = Cluster {
            config,
            tmp,
            brokers: Vec::with_capacity(n),
            controller,
            inflight_fetch: vec![None; n],
            inflight_alter: vec![None; n],
            clean_shutdown: vec![true; n],
            checkpointed_hw: vec![0; n],
            records: vec![RecordStatus::NotSent; config.records as usize],
            now_ms: 0,
            faults: Faults::default(),
            log_failed: vec![false; n],
        };
        let state = c.controller.partition_state();
        for b in 0..n {
            let log = c.open_log(b)?;
            let epoch = c.controller.broker_epoch(b as BrokerId);
            let mut r = Replica::new(c.replica_config(b), log, epoch)
                .map_err(|e| format!("broker {b}: opening the replica: {e}"))?;
            if state.leader == b as i32 {
                r.become_leader(&state, 0);
            } else {
                r.become_follower(&state);
            }
            c.brokers.push(BrokerSlot {
                node: BrokerNode::Up(Box::new(r)),
                remembered_epoch: -1,
            });
        }
        Ok(c)
    }

    fn log_config(&self) -> LogConfig {
        LogConfig {
            flush_policy: match self.config.flush {
                FlushPolicy::Every => LogFlushPolicy::EveryBatch,
                FlushPolicy::Never => LogFlushPolicy::Os,
            },
            ..LogConfig::default()
        }
    }

    fn replica_config(&self, b: usize) -> ReplicaConfig {
        ReplicaConfig {
            broker_id: b as i32,
            min_insync_replicas: self.config.min_isr as usize,
            replica_lag_time_max_ms: LAG_TIME_MAX_MS,
            faults: self.faults,
        }
    }

    fn open_log(&self, b: usize) -> Result<PartitionLog, String> {
        PartitionLog::open(self.tmp.path().join(format!("b{b}")), self.log_config())
            .map_err(|e| format!("opening broker {b}'s log: {e}"))
    }

    /// Broker `b`'s replica, if it is up.
    pub fn replica(&self, b: usize) -> Option<&Replica> {
        match &self.brokers.get(b)?.node {
            BrokerNode::Up(r) => Some(r),
            BrokerNode::Down(_) => None,
        }
    }

    fn up(&mut self, b: u8) -> Result<&mut Replica, String> {
        match self.brokers.get_mut(b as usize).map(|s| &mut s.node) {
            Some(BrokerNode::Up(r)) => Ok(r),
            _ => Err(format!("broker {b} is down")),
        }
    }

    /// The controller's partition state.
    pub fn controller(&self) -> &dyn ControllerDriver {
        self.controller.as_ref()
    }

    /// What the producer was told about each record.
    pub fn records(&self) -> &[RecordStatus] {
        &self.records
    }

    /// The step the controller already took with the last one, which must come next (see
    /// [`crate::controller`]).
    pub fn owed_step(&self) -> Option<Action> {
        self.controller.owed_step()
    }

    /// Whether broker `b` has a fetch response in flight.
    pub fn has_inflight_fetch(&self, b: u8) -> bool {
        self.inflight_fetch[b as usize].is_some()
    }

    /// The abstraction of the whole cluster (see [`crate::abstraction`]).
    pub fn view(&self) -> Result<StateView, String> {
        state_view(&self.brokers, self.controller.view(), &self.records)
    }

    /// Performs one model step on the broker. `Err` when the broker cannot take it (the
    /// model could): that is a mismatch.
    pub fn apply(&mut self, action: Action) -> Result<(), String> {
        if let Some(owed) = self.controller.owed_step() {
            if owed != action {
                return Err(format!(
                    "Kafka's controller elected at the unfence: the next step must be {}",
                    owed.describe()
                ));
            }
        }
        if let Some(b) = action.replica_step_of() {
            if self.log_failed[b as usize] {
                return Err(format!(
                    "broker {b} hosts no replica of the partition: its log failed"
                ));
            }
        }
        match action {
            Action::Produce { leader, acks_all } => self.produce(leader, acks_all)?,
            Action::Fetch { follower } => self.fetch(follower)?,
            Action::HandleFetchResponse { follower } => {
                // No response in flight: the broker's leader answered the fetch with nothing
                // to do where the model sent a response (see `Cluster::fetch`); the model's
                // response must then change nothing either, which the comparison checks.
                if let Some(resp) = self.inflight_fetch[follower as usize].take() {
                    self.up(follower)?
                        .handle_fetch_response(&resp)
                        .map_err(|e| format!("handling the fetch response: {e}"))?;
                }
            }
            Action::ProposeIsrShrink { leader, follower } => {
                // The model abstracts replica.lag.time.max.ms away; the broker needs it to pass.
                self.now_ms += LAG_TIME_MAX_MS + 1;
                let now = self.now_ms;
                let p = self
                    .up(leader)?
                    .propose_isr_shrink(i32::from(follower), now)
                    .ok_or_else(|| {
                        format!("broker {leader} does not propose dropping {follower}")
                    })?;
                self.inflight_alter[leader as usize] = Some(p);
            }
            Action::ProposeIsrExpand { leader, follower } => {
                let p = self
                    .up(leader)?
                    .propose_isr_expand(i32::from(follower))
                    .ok_or_else(|| format!("broker {leader} does not propose adding {follower}"))?;
                self.inflight_alter[leader as usize] = Some(p);
            }
            Action::AlterPartition { leader } => {
                let p = self.inflight_alter[leader as usize]
                    .take()
                    .ok_or_else(|| format!("broker {leader} has no AlterPartition in flight"))?;
                let resp = self.controller.alter_partition(&p);
                self.up(leader)?.handle_alter_partition_response(&resp);
            }
            Action::BecomeLeader { broker } => {
                let state = self.controller.partition_state();
                let now = self.now_ms;
                if !self.up(broker)?.become_leader(&state, now) {
                    return Err(format!("broker {broker} ignored the metadata"));
                }
            }
            Action::BecomeFollower { broker } => {
                let state = self.controller.partition_state();
                if !self.up(broker)?.become_follower(&state) {
                    return Err(format!("broker {broker} ignored the metadata"));
                }
            }
            Action::Crash { broker, clean, .. } => self.crash(broker, clean)?,
            Action::Restart { broker } => self.restart(broker)?,
            Action::FenceBroker { broker, new_leader } => self
                .controller
                .fence(i32::from(broker), new_leader.map(i32::from))
                .map_err(|e| e.to_string())?,
            Action::UnfenceBroker { broker } => {
                // Heartbeats resume only from a live broker.
                self.up(broker)?;
                self.controller
                    .unfence(i32::from(broker))
                    .map_err(|e| e.to_string())?
            }
            Action::ElectLeader { broker, unclean } => self
                .controller
                .elect(i32::from(broker), unclean)
                .map_err(|e| e.to_string())?,
            Action::MoveLeader { to } => self
                .controller
                .move_leader(i32::from(to))
                .map_err(|e| e.to_string())?,
            // The broker's log failed to open: it reports the replica offline, and its
            // replica takes no further step (the broker hosts no log for it).
            Action::LogFails { broker, new_leader } => {
                // Only a running broker opens logs and reports one that fails.
                self.up(broker)?;
                self.controller
                    .log_fails(i32::from(broker), new_leader.map(i32::from))
                    .map_err(|e| e.to_string())?;
                self.log_failed[broker as usize] = true;
            }
        }
        self.forget_dropped_proposals();
        self.drop_stale_fetch_responses();
        self.drain_effects();
        self.checkpoint_high_watermarks()
    }

    /// The model drops an in-flight fetch response in the step that makes it stale
    /// (`osprey_model::canonical::drop_stale_fetch_responses`): once the follower follows
    /// another leader or epoch, or its log end moved away from the response's fetch offset,
    /// handling it would be a no-op (KIP-320), so it may as well be gone. The replay mirrors
    /// that on the broker's state, so that a later Fetch is enabled in both.
    fn drop_stale_fetch_responses(&mut self) {
        // Before KIP-320 (fault and variant unfenced-truncation) stale responses are used.
        if self.faults.is(Fault::UnfencedTruncation) {
            return;
        }
        for b in 0..self.inflight_fetch.len() {
            let Some(resp) = &self.inflight_fetch[b] else {
                continue;
            };
            let stale = match &self.brokers[b].node {
                BrokerNode::Up(r) => {
                    r.leader() != resp.leader
                        || r.leader_epoch() != resp.leader_epoch
                        || (resp.result.diverging_epoch.is_none()
                            && resp.fetch_offset != r.log_end_offset())
                }
                BrokerNode::Down(_) => true,
            };
            if stale {
                self.inflight_fetch[b] = None;
            }
        }
    }

    fn produce(&mut self, leader: u8, acks_all: bool) -> Result<(), String> {
        let slot = self
            .records
            .iter()
            .position(|r| *r == RecordStatus::NotSent)
            .ok_or("every record was sent already")?;
        let record = slot as u8 + 1;
        let now = self.now_ms;
        let acks = if acks_all { Acks::All } else { Acks::Leader };
        let r = self.up(leader)?;
        let epoch = r.leader_epoch().max(0) as u8;
        let outcome = r.append_as_leader(
            u64::from(record),
            record_batch(record),
            acks,
            PRODUCE_TIMEOUT_MS,
            now,
        );
        self.records[slot] = match outcome {
            ProduceOutcome::Completed(c) if c.error_code == NONE => RecordStatus::Acked {
                offset: c.base_offset as u8,
                epoch,
                acks_all,
            },
            ProduceOutcome::Completed(c) if c.error_code == NOT_ENOUGH_REPLICAS => {
                RecordStatus::Failed
            }
            ProduceOutcome::Completed(c) => {
                return Err(format!("produce failed with error code {}", c.error_code))
            }
            ProduceOutcome::Rejected(r) => return Err(format!("produce refused: {r}")),
            ProduceOutcome::Delayed { base_offset } => RecordStatus::Pending {
                leader,
                epoch,
                offset: base_offset as u8,
                acks_all,
            },
        };
        Ok(())
    }

    fn fetch(&mut self, follower: u8) -> Result<(), String> {
        // Like Kafka's fetcher (and the model), a follower has one fetch in flight at most.
        if self.inflight_fetch[follower as usize].is_some() {
            return Err(format!("broker {follower} already has a fetch in flight"));
        }
        let f = self.up(follower)?;
        let follower_hw = f.high_watermark();
        let leader_epoch = f.leader_epoch();
        let (leader, req) = f
            .fetch_request(FETCH_MAX_BYTES)
            .ok_or_else(|| format!("broker {follower} follows no leader"))?;
        let now = self.now_ms;
        let result = self.up(leader as u8)?.handle_fetch_from_follower(&req, now);
        if result.error_code != NONE {
            return Err(format!(
                "leader {leader} answered broker {follower}'s fetch with error code {}",
                result.error_code
            ));
        }
        let useless = result.diverging_epoch.is_none()
            && result.records.is_empty()
            && result.high_watermark.min(req.fetch_offset) == follower_hw;
        if !useless {
            self.inflight_fetch[follower as usize] = Some(FetchResponse {
                leader,
                leader_epoch,
                fetch_offset: req.fetch_offset,
                result,
            });
        }
        Ok(())
    }

    fn crash(&mut self, broker: u8, clean: bool) -> Result<(), String> {
        let b = broker as usize;
        let slot = &mut self.brokers[b];
        let BrokerNode::Up(r) = &slot.node else {
            return Err(format!("broker {broker} is down already"));
        };
        if r.leader_epoch() >= 0 {
            slot.remembered_epoch = r.leader_epoch();
        }
        let dir = self.tmp.path().join(format!("b{b}"));
        let placeholder = BrokerNode::Down(self.open_placeholder(b)?);
        let slot = &mut self.brokers[b];
        let BrokerNode::Up(r) = std::mem::replace(&mut slot.node, placeholder) else {
            return Err(format!("broker {broker} is down already"));
        };
        // The waiting produces' connections die with the broker.
        for st in self.records.iter_mut() {
            if matches!(*st, RecordStatus::Pending { leader, .. } if leader == broker) {
                *st = RecordStatus::Failed;
            }
        }
        r.crash(clean)
            .map_err(|e| format!("crashing broker {broker}: {e}"))?;
        let log = PartitionLog::open(&dir, self.log_config())
            .map_err(|e| format!("recovering broker {broker}'s log: {e}"))?;
        self.checkpointed_hw[b] = log.high_watermark();
        self.brokers[b].node = BrokerNode::Down(log);
        self.inflight_fetch[b] = None;
        self.inflight_alter[b] = None;
        self.clean_shutdown[b] = clean;
        Ok(())
    }

    /// An empty log standing in for a broker's node while its real log is being crashed
    /// (never read: it is replaced before `crash` returns).
    fn open_placeholder(&self, b: usize) -> Result<PartitionLog, String> {
        PartitionLog::open(
            self.tmp.path().join(format!("placeholder-{b}")),
            LogConfig::default(),
        )
        .map_err(|e| format!("opening a placeholder log: {e}"))
    }

    fn restart(&mut self, broker: u8) -> Result<(), String> {
        let b = broker as usize;
        if matches!(self.brokers[b].node, BrokerNode::Up(_)) {
            return Err(format!("broker {broker} is up"));
        }
        // A new incarnation registers only once the controller fenced the old one.
        if !self.controller.view().fenced.contains(&broker) {
            return Err(format!("the controller has not fenced broker {broker}"));
        }
        let placeholder = BrokerNode::Down(self.open_placeholder(b)?);
        let BrokerNode::Down(log) = std::mem::replace(&mut self.brokers[b].node, placeholder)
        else {
            return Err(format!("broker {broker} is up"));
        };
        // The broker registers first: its new broker epoch is the registration's.
        let epoch = match self
            .controller
            .register(i32::from(broker), self.clean_shutdown[b])
        {
            Ok(e) => e,
            Err(e) => {
                self.brokers[b].node = BrokerNode::Down(log);
                return Err(e.to_string());
            }
        };
        let r = Replica::restart(self.replica_config(b), log, epoch)
            .map_err(|e| format!("broker {broker}: restarting the replica: {e}"))?;
        self.brokers[b].node = BrokerNode::Up(Box::new(r));
        Ok(())
    }

    /// A leader that no longer has a pending ISR change (it learned new metadata or lost
    /// leadership) will never see an answer to the request it sent.
    fn forget_dropped_proposals(&mut self) {
        for (b, p) in self.inflight_alter.iter_mut().enumerate() {
            let pending = match &self.brokers[b].node {
                BrokerNode::Up(r) => r.leader_state().is_some_and(|l| l.pending_isr.is_some()),
                BrokerNode::Down(_) => false,
            };
            if !pending {
                *p = None;
            }
        }
    }

    /// Produce answers from every broker's purgatory become what the producer was told.
    fn drain_effects(&mut self) {
        for (b, slot) in self.brokers.iter_mut().enumerate() {
            let BrokerNode::Up(r) = &mut slot.node else {
                continue;
            };
            while let Some(e) = r.poll_effect() {
                let Effect::CompleteProduce(c) = e else {
                    continue;
                };
                let Some(st) = self.records.get_mut(c.request_id as usize - 1) else {
                    continue;
                };
                if let RecordStatus::Pending {
                    leader,
                    epoch,
                    offset,
                    acks_all,
                } = *st
                {
                    if leader as usize == b {
                        *st = if c.error_code == NONE {
                            RecordStatus::Acked {
                                offset,
                                epoch,
                                acks_all,
                            }
                        } else {
                            RecordStatus::Failed
                        };
                    }
                }
            }
        }
    }

    fn checkpoint_high_watermarks(&mut self) -> Result<(), String> {
        for (b, slot) in self.brokers.iter().enumerate() {
            if let BrokerNode::Up(r) = &slot.node {
                if r.high_watermark() != self.checkpointed_hw[b] {
                    r.log()
                        .checkpoint_high_watermark()
                        .map_err(|e| format!("checkpointing broker {b}'s high watermark: {e}"))?;
                    self.checkpointed_hw[b] = r.high_watermark();
                }
            }
        }
        Ok(())
    }
}

/// Where replays keep their logs: a RAM-backed directory when the machine has one (the
/// logs are scratch, and crashes are simulated by storage's crash hook, not by the disk, so
/// real fsyncs only cost time), else the system's temporary directory.
pub fn scratch_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl Implementation for Cluster {
    type Action = Action;
    type View = StateView;
    const NAME: &'static str = "broker";
    fn apply(&mut self, action: Action) -> Result<(), String> {
        Cluster::apply(self, action)
    }
    fn view(&self) -> Result<StateView, String> {
        Cluster::view(self)
    }
    fn diff(model: &StateView, broker: &StateView) -> Vec<String> {
        diff(model, broker)
    }
}

/// Replays `trace` on a fresh [`Cluster`], comparing the abstraction with the model's
/// recorded state after the initial state and after every step. Stops at the first mismatch.
pub fn replay(trace: &Trace) -> ReplayOutcome {
    if let Some(v) = trace.config.variant {
        return ReplayOutcome::failed(
            Cluster::NAME,
            0,
            None,
            format!("variant '{v}' traces model a flaw the broker does not have"),
            None,
            None,
            vec![],
        );
    }
    replay_on(trace, trace.config, None)
}

/// Replays `trace` (whose recorded states are the model's under `trace.config`) on a fresh
/// [`Cluster`] built for `broker_config` with `fault` switched on, comparing as [`replay`]
/// does. A variant's counterexample replays on the correct broker with the variant's
/// bounds and no flaw, and on the faulty broker with its fault.
pub fn replay_on(trace: &Trace, broker_config: ModelConfig, fault: Option<Fault>) -> ReplayOutcome {
    let mut cluster = match Cluster::with_fault(broker_config, fault) {
        Ok(c) => c,
        Err(e) => return ReplayOutcome::failed(Cluster::NAME, 0, None, e, None, None, vec![]),
    };
    replay_steps(
        &mut cluster,
        trace.steps.iter().map(|s| (s.index, s.action, &s.state)),
    )
}
