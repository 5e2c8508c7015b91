//! A tiny in-process cluster for the replication tests: real `PartitionLog`s in a tempdir,
//! a toy controller (partition state + AlterPartition checks) and a clock passed by hand.
//! Included by the `replication_*` test files with `#[path]`; it has no tests of its own.
#![allow(dead_code)]

use bytes::BytesMut;
use osprey_broker::error_codes::*;
use osprey_broker::replication::*;
use osprey_broker::storage::{BatchBuilder, LogConfig, PartitionLog};
use tempfile::TempDir;

/// One batch holding one record whose value is `value`.
pub fn batch(value: u64) -> BytesMut {
    BatchBuilder::new(0)
        .record(0, None, Some(&value.to_be_bytes()))
        .build()
}

/// An idempotent producer's batch: `records` records from `pid` at `epoch`, the first with
/// sequence `seq`.
pub fn idempotent_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
    for i in 0..records {
        b = b.record(0, None, Some(&(i as u64).to_be_bytes()));
    }
    b.build()
}

/// `(producer id, first sequence, last sequence, base offset)` of every batch in `log`, in
/// log order (headers only).
pub fn producer_batches(log: &bytes::Bytes) -> Vec<(i64, i32, i32, i64)> {
    use osprey_broker::storage::BatchView;
    osprey_broker::storage::Batches::new(log.clone())
        .map(|b| {
            let h = b.unwrap().header();
            (
                h.producer_id,
                h.base_sequence,
                h.last_sequence(),
                h.base_offset,
            )
        })
        .collect()
}

pub struct Cluster {
    pub tmp: TempDir,
    /// `None` while crashed.
    pub nodes: Vec<Option<Replica>>,
    /// The controller's partition state.
    pub state: PartitionRegistration,
    pub now: u64,
    pub min_isr: usize,
    pub lag_ms: u64,
    next_broker_epoch: i64,
}

impl Cluster {
    /// `n` brokers, broker 0 leading in `epoch` with ISR `isr`.
    pub fn new(n: i32, min_isr: usize, isr: &[i32], epoch: i32) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            nodes: Vec::new(),
            state: PartitionRegistration {
                leader: 0,
                leader_epoch: epoch,
                partition_epoch: epoch,
                isr: isr.to_vec(),
                replicas: (0..n).collect(),
            },
            now: 1_000,
            min_isr,
            lag_ms: 10_000,
            next_broker_epoch: 100,
            tmp,
        };
        for b in 0..n {
            let log = c.open_log(b);
            let epoch = c.next_broker_epoch + i64::from(b);
            c.nodes
                .push(Some(Replica::new(c.config(b), log, epoch).unwrap()));
        }
        c.next_broker_epoch += 100;
        c.propagate();
        c
    }

    pub fn config(&self, b: i32) -> ReplicaConfig {
        ReplicaConfig {
            broker_id: b,
            min_insync_replicas: self.min_isr,
            replica_lag_time_max_ms: self.lag_ms,
            faults: Default::default(),
        }
    }

    fn open_log(&self, b: i32) -> PartitionLog {
        PartitionLog::open(self.tmp.path().join(format!("b{b}")), LogConfig::default()).unwrap()
    }

    pub fn r(&self, b: i32) -> &Replica {
        self.nodes[b as usize].as_ref().expect("broker is up")
    }

    pub fn r_mut(&mut self, b: i32) -> &mut Replica {
        self.nodes[b as usize].as_mut().expect("broker is up")
    }

    /// Every live broker learns the controller's partition state.
    pub fn propagate(&mut self) {
        let (state, now) = (self.state.clone(), self.now);
        for (b, n) in self.nodes.iter_mut().enumerate() {
            if let Some(r) = n {
                if state.leader == b as i32 {
                    r.become_leader(&state, now);
                } else {
                    r.become_follower(&state);
                }
            }
        }
    }

    /// The controller moves leadership to `to` (a new leader epoch), optionally with a new ISR.
    pub fn elect(&mut self, to: i32, isr: Option<&[i32]>) {
        self.state.leader = to;
        self.state.leader_epoch += 1;
        self.state.partition_epoch += 1;
        if let Some(isr) = isr {
            self.state.isr = isr.to_vec();
        }
        self.propagate();
    }

    /// The controller commits `isr` directly (no AlterPartition), same leader epoch.
    pub fn set_isr(&mut self, isr: &[i32]) {
        self.state.isr = isr.to_vec();
        self.state.partition_epoch += 1;
        self.propagate();
    }

    pub fn produce(&mut self, leader: i32, id: u64, acks: Acks) -> ProduceOutcome {
        let now = self.now;
        self.r_mut(leader)
            .append_as_leader(id, batch(id), acks, 30_000, now)
    }

    /// Broker `leader` handles a produce of `batches`.
    pub fn produce_batch(
        &mut self,
        leader: i32,
        id: u64,
        batches: BytesMut,
        acks: Acks,
    ) -> ProduceOutcome {
        let now = self.now;
        self.r_mut(leader)
            .append_as_leader(id, batches, acks, 30_000, now)
    }

    /// Follower `f` sends its fetch to the broker it believes leads; returns the response
    /// its fetcher would hand back.
    pub fn fetch(&mut self, f: i32) -> Option<FetchResponse> {
        let now = self.now;
        let (leader, req) = self.r(f).fetch_request(1 << 20)?;
        let leader_epoch = self.r(f).leader_epoch();
        let result = self.nodes[leader as usize]
            .as_mut()?
            .handle_fetch_from_follower(&req, now);
        Some(FetchResponse {
            leader,
            leader_epoch,
            fetch_offset: req.fetch_offset,
            result,
        })
    }

    pub fn deliver(&mut self, f: i32, resp: &FetchResponse) -> FollowerFetchOutcome {
        self.r_mut(f).handle_fetch_response(resp).unwrap()
    }

    /// One fetch round trip for `f`.
    pub fn replicate(&mut self, f: i32) -> Option<FollowerFetchOutcome> {
        let resp = self.fetch(f)?;
        Some(self.deliver(f, &resp))
    }

    /// The toy controller's AlterPartition: leader and leader epoch, partition epoch
    /// (INVALID_UPDATE_VERSION) and, for added members, the broker epoch (KIP-903).
    pub fn alter_partition(&mut self, p: &AlterPartitionProposal) -> AlterPartitionResponse {
        if p.leader_id != self.state.leader || p.leader_epoch != self.state.leader_epoch {
            return AlterPartitionResponse::Error(FENCED_LEADER_EPOCH);
        }
        if p.partition_epoch != self.state.partition_epoch {
            return AlterPartitionResponse::Error(INVALID_UPDATE_VERSION);
        }
        for m in &p.new_isr {
            let added = !self.state.isr.contains(&m.broker_id);
            let live_epoch = self.nodes[m.broker_id as usize]
                .as_ref()
                .map(|r| r.broker_epoch());
            if added && live_epoch != Some(m.broker_epoch) {
                return AlterPartitionResponse::Error(INELIGIBLE_REPLICA);
            }
        }
        self.state.isr = p.new_isr.iter().map(|m| m.broker_id).collect();
        self.state.partition_epoch += 1;
        AlterPartitionResponse::Committed {
            leader_epoch: self.state.leader_epoch,
            partition_epoch: self.state.partition_epoch,
            isr: self.state.isr.clone(),
        }
    }

    /// Sends `p` to the controller, hands the answer to the leader, and lets everyone learn
    /// the new partition state.
    pub fn round_trip(&mut self, p: &AlterPartitionProposal) -> AlterPartitionResponse {
        let resp = self.alter_partition(p);
        let leader = p.leader_id;
        self.r_mut(leader).handle_alter_partition_response(&resp);
        self.propagate();
        resp
    }

    /// Drains broker `b`'s produce completions.
    pub fn completions(&mut self, b: i32) -> Vec<ProduceCompletion> {
        let mut out = Vec::new();
        if let Some(r) = self.nodes[b as usize].as_mut() {
            while let Some(e) = r.poll_effect() {
                if let Effect::CompleteProduce(c) = e {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Crashes broker `b` (clean or not).
    pub fn crash(&mut self, b: i32, clean: bool) {
        let r = self.nodes[b as usize].take().unwrap();
        r.crash(clean).unwrap();
    }

    /// Restarts broker `b`: recovers its log, registers with a new broker epoch.
    pub fn restart(&mut self, b: i32) {
        let log = self.open_log(b);
        self.next_broker_epoch += 1;
        let r = Replica::restart(self.config(b), log, self.next_broker_epoch).unwrap();
        self.nodes[b as usize] = Some(r);
    }

    /// The whole log of broker `b`, as stored bytes.
    pub fn log_bytes(&self, b: i32) -> bytes::Bytes {
        self.r(b).log().read(0, 1 << 30).unwrap()
    }
}
