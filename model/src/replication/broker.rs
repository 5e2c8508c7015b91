//! Broker steps of the replication model: what a replica does as leader or follower —
//! produce, fetch and its response, the high watermark and the produce purgatory, ISR
//! proposals, learning metadata, crash and restart. Mirrors `impl/src/replication/`.

use super::PartitionModel;
use crate::config::{AcksChoice, FlushPolicy, Variant};
use crate::state::*;
use crate::types::*;

impl PartitionModel {
    // ---------------------------------------------------------------------------------------
    // Producer

    pub(super) fn produce(&self, s: &mut PartitionState, b: BrokerId, acks_all: bool) -> bool {
        let cfg = &self.config;
        let Some(record) = s.next_record(cfg.records) else {
            return false;
        };
        if !s.replica(b).is_leader(b) || (!acks_all && cfg.acks == AcksChoice::All) {
            return false;
        }
        let slot = (record - 1) as usize;
        // acks=all is refused before the append while the ISR is below min.insync.replicas.
        if acks_all && s.replica(b).isr.len() < cfg.min_isr as usize {
            s.ghost.records[slot] = RecordStatus::Failed;
            return true;
        }
        let r = s.replica_mut(b);
        let offset = r.log_end_offset();
        let epoch = r.leader_epoch;
        r.log.push(Entry { record, epoch });
        r.epoch_cache.assign(epoch, offset);
        if cfg.flush == FlushPolicy::Every {
            r.flushed = r.log_end_offset();
        }
        let acked_now = !acks_all || cfg.is(Variant::AckBeforeReplication);
        s.ghost.records[slot] = if acked_now {
            RecordStatus::Acked {
                offset,
                epoch,
                acks_all,
            }
        } else {
            RecordStatus::Pending {
                leader: b,
                epoch,
                offset,
                acks_all,
            }
        };
        self.maybe_advance_high_watermark(s, b);
        true
    }

    // ---------------------------------------------------------------------------------------
    // Fetch

    pub(super) fn fetch(&self, s: &mut PartitionState, f: BrokerId) -> bool {
        let cfg = &self.config;
        let fr = *s.replica(f);
        let l = fr.leader;
        if !fr.alive || l == f || l == NO_BROKER || fr.inflight_fetch.is_some() {
            return false;
        }
        // The request, built from the follower's state.
        let fetch_offset = fr.log_end_offset();
        // Before KIP-595's fetch, a follower validated its log against a new leader once (an
        // OffsetsForLeaderEpoch lookup, modelled as a fetch carrying the last fetched epoch) and
        // then fetched without validation; the variants that model that era do so.
        let validates_once =
            cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::UnfencedTruncation);
        let last_fetched_epoch =
            if cfg.is(Variant::HwTruncation) || (validates_once && fr.epoch_validated()) {
                None
            } else {
                fr.epoch_cache.latest_epoch()
            };
        let current_leader_epoch = fr.leader_epoch;

        // Handled by the broker the follower believes leads.
        let lr = *s.replica(l);
        if !lr.is_leader(l) {
            return false; // NOT_LEADER_OR_FOLLOWER: nothing changes.
        }
        if !cfg.is(Variant::UnfencedTruncation) && current_leader_epoch != lr.leader_epoch {
            return false; // FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH: nothing changes.
        }
        let leader_end = lr.log_end_offset();
        let result = match last_fetched_epoch {
            Some(e) => match lr.epoch_cache.end_offset_for(e, leader_end) {
                Some((le, end)) if le >= e && end >= fetch_offset => None,
                other => Some(FetchResult::Diverging { end: other }),
            },
            None => None,
        };
        let result = match result {
            Some(r) => r,
            None if fetch_offset > leader_end => FetchResult::Diverging {
                // OFFSET_OUT_OF_RANGE: the follower is ahead of the leader's log end.
                end: Some((lr.epoch_cache.latest_epoch().unwrap_or(0), leader_end)),
            },
            None => {
                let lm = s.replica_mut(l);
                lm.follower_end_offset[f as usize] = fetch_offset;
                lm.follower_broker_epoch[f as usize] = fr.broker_epoch;
                self.maybe_advance_high_watermark(s, l);
                FetchResult::Records {
                    fetch_offset,
                    records: s.replica(l).log.suffix(fetch_offset),
                }
            }
        };
        let response = FetchResponse {
            leader: l,
            leader_epoch: current_leader_epoch,
            result,
            high_watermark: s.replica(l).high_watermark,
        };
        // A response that would change nothing at the follower is not worth a step of its own
        // unless the request itself changed the leader's state.
        let useless = match response.result {
            FetchResult::Records { records, .. } => {
                records.end_offset() == 0
                    && response.high_watermark.min(fetch_offset) == fr.high_watermark
            }
            FetchResult::Diverging { .. } => false,
        };
        if !useless {
            s.replica_mut(f).inflight_fetch = Some(response);
        }
        true
    }

    pub(super) fn handle_fetch_response(&self, s: &mut PartitionState, f: BrokerId) -> bool {
        let cfg = &self.config;
        let r = s.replica_mut(f);
        let Some(resp) = r.inflight_fetch.take() else {
            return false;
        };
        if !r.alive {
            return false;
        }
        // KIP-320: a response is only used while the follower still follows the leader and
        // epoch it fetched from.
        let current = resp.leader == r.leader && resp.leader_epoch == r.leader_epoch;
        let follows = r.leader != f && r.leader != NO_BROKER;
        if !follows || (!current && !cfg.is(Variant::UnfencedTruncation)) {
            return true; // dropped
        }
        match resp.result {
            FetchResult::Diverging { end } => {
                let leo = r.log_end_offset();
                let target = match end {
                    None => 0,
                    Some((epoch, leader_end)) => {
                        if cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::HwTruncation) {
                            // One lookup, trusted as is.
                            leader_end
                        } else {
                            match r.epoch_cache.end_offset_for(epoch, leo) {
                                Some((fe, fend)) if fe == epoch => leader_end.min(fend),
                                Some((_, fend)) => fend.min(leader_end),
                                None => 0,
                            }
                        }
                    }
                };
                if target < leo {
                    truncate_replica(r, target);
                    s.ghost.truncated_diverged_tail = true;
                }
                // Pre-KIP-279: one lookup, then plain fetches.
                let r = s.replica_mut(f);
                r.set_epoch_validated(cfg.is(Variant::SingleEpochTruncation));
            }
            FetchResult::Records {
                fetch_offset,
                records,
            } => {
                if fetch_offset != r.log_end_offset() {
                    return true; // stale: dropped
                }
                for e in records.entries() {
                    let offset = r.log_end_offset();
                    r.log.push(*e);
                    r.epoch_cache.assign(e.epoch, offset);
                }
                if cfg.flush == FlushPolicy::Every {
                    r.flushed = r.log_end_offset();
                }
                r.high_watermark = resp.high_watermark.min(r.log_end_offset());
                r.set_epoch_validated(
                    cfg.is(Variant::SingleEpochTruncation) || cfg.is(Variant::UnfencedTruncation),
                );
            }
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // High watermark and produce purgatory

    /// The leader's high watermark: the smallest log end offset over the ISR it uses (the
    /// maximal ISR while an AlterPartition is pending), advanced only while that ISR has at
    /// least min.insync.replicas members (KIP-966). Completes acks=all produces it passes.
    pub fn maybe_advance_high_watermark(&self, s: &mut PartitionState, l: BrokerId) {
        let cfg = &self.config;
        let r = *s.replica(l);
        if !r.is_leader(l) {
            return;
        }
        let isr = match (cfg.is(Variant::EagerIsrShrink), r.pending_isr) {
            (true, Some(p)) => p,
            _ => r.maximal_isr(),
        };
        // KIP-966: no progress while the committed ISR is below min.insync.replicas (Kafka's
        // `isUnderMinIsr` reads the committed ISR, not the maximal one: a zombie leader's
        // pending expansion must not let it commit).
        if !cfg.is(Variant::LastReplicaStanding) && r.isr.len() < cfg.min_isr as usize {
            return;
        }
        let mut hw = r.log_end_offset();
        for m in isr.iter() {
            if m != l {
                let end = r.follower_end_offset[m as usize];
                if end == UNKNOWN_OFFSET {
                    return;
                }
                hw = hw.min(end);
            }
        }
        if hw > r.high_watermark {
            for o in r.high_watermark..hw {
                let entry = r.log.get(o).expect("offset below the log end");
                match s.ghost.committed[o as usize] {
                    None => s.ghost.committed[o as usize] = Some((entry, r.leader_epoch)),
                    Some((seen, _)) if seen != entry => s.ghost.committed_conflict = true,
                    Some(_) => {}
                }
            }
            s.replica_mut(l).high_watermark = hw;
        }
        self.complete_delayed_produces(s, l);
    }

    /// Answers the acks=all produces waiting at `l` that its high watermark has passed:
    /// acknowledged while the ISR has min.insync.replicas members, otherwise
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    pub(super) fn complete_delayed_produces(&self, s: &mut PartitionState, l: BrokerId) {
        let r = *s.replica(l);
        for slot in 0..MAX_RECORDS {
            if let RecordStatus::Pending {
                leader,
                epoch,
                offset,
                acks_all,
            } = s.ghost.records[slot]
            {
                if leader == l && epoch == r.leader_epoch && offset < r.high_watermark {
                    s.ghost.records[slot] = if r.maximal_isr().len() >= self.config.min_isr as usize
                    {
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

    /// Produces waiting at `b` fail when it stops leading (NOT_LEADER_OR_FOLLOWER).
    pub(super) fn fail_delayed_produces(s: &mut PartitionState, b: BrokerId) {
        for slot in 0..MAX_RECORDS {
            if let RecordStatus::Pending { leader, .. } = s.ghost.records[slot] {
                if leader == b {
                    s.ghost.records[slot] = RecordStatus::Failed;
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // ISR changes (KIP-497 AlterPartition)

    pub(super) fn propose_isr_shrink(
        &self,
        s: &mut PartitionState,
        l: BrokerId,
        f: BrokerId,
    ) -> bool {
        let r = s.replica_mut(l);
        if !r.is_leader(l) || r.pending_isr.is_some() || f == l || !r.isr.contains(f) {
            return false;
        }
        // Out of sync: it has not caught up to the leader's log end offset within
        // replica.lag.time.max.ms (time is abstracted away: any lagging follower may be dropped).
        let end = r.follower_end_offset[f as usize];
        if end != UNKNOWN_OFFSET && end >= r.log_end_offset() {
            return false;
        }
        r.pending_isr = Some(r.isr.without(f));
        self.maybe_advance_high_watermark(s, l);
        true
    }

    pub(super) fn propose_isr_expand(
        &self,
        s: &mut PartitionState,
        l: BrokerId,
        f: BrokerId,
    ) -> bool {
        let cfg = &self.config;
        let r = s.replica_mut(l);
        if !r.is_leader(l) || r.pending_isr.is_some() || f == l || r.isr.contains(f) {
            return false;
        }
        let end = r.follower_end_offset[f as usize];
        if end == UNKNOWN_OFFSET || end < r.high_watermark {
            return false;
        }
        // KAFKA-7128: not before the follower reaches the start of the leader's epoch.
        if !cfg.is(Variant::NoExpandGuard) && end < r.epoch_start_offset() {
            return false;
        }
        r.pending_isr = Some(r.isr.with(f));
        r.pending_added_broker_epoch = r.follower_broker_epoch[f as usize];
        true
    }
    // ---------------------------------------------------------------------------------------
    // Metadata: brokers learn the controller's partition state

    pub(super) fn become_leader(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let c = s.controller;
        let r = *s.replica(b);
        if !r.alive || c.leader != b {
            return false;
        }
        if r.leader == b && r.leader_epoch == c.leader_epoch {
            // Same leader epoch, new partition state (ISR changed by the controller).
            if r.partition_epoch == c.partition_epoch {
                return false;
            }
            let r = s.replica_mut(b);
            r.isr = c.isr;
            r.partition_epoch = c.partition_epoch;
            r.pending_isr = None;
            r.pending_added_broker_epoch = 0;
        } else {
            Self::fail_delayed_produces(s, b);
            let r = s.replica_mut(b);
            r.leader = b;
            r.leader_epoch = c.leader_epoch;
            r.isr = c.isr;
            r.partition_epoch = c.partition_epoch;
            r.pending_isr = None;
            r.pending_added_broker_epoch = 0;
            r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
            r.follower_broker_epoch = [0; MAX_BROKERS];
            r.inflight_fetch = None;
            r.set_epoch_validated(false);
            let leo = r.log_end_offset();
            r.epoch_cache.assign(c.leader_epoch, leo);
        }
        self.maybe_advance_high_watermark(s, b);
        true
    }

    pub(super) fn become_follower(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let cfg = &self.config;
        let c = s.controller;
        let r = *s.replica(b);
        if !r.alive || c.leader == b {
            return false;
        }
        if r.leader == c.leader && r.leader_epoch == c.leader_epoch {
            return false;
        }
        if r.leader == b {
            Self::fail_delayed_produces(s, b);
        }
        let r = s.replica_mut(b);
        r.leader = c.leader;
        r.leader_epoch = c.leader_epoch;
        r.isr = BrokerSet::EMPTY;
        r.partition_epoch = 0;
        r.pending_isr = None;
        r.pending_added_broker_epoch = 0;
        r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        r.follower_broker_epoch = [0; MAX_BROKERS];
        r.set_epoch_validated(false);
        if cfg.is(Variant::HwTruncation) {
            let hw = r.high_watermark;
            truncate_replica(r, hw);
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // Crash and restart

    pub(super) fn crash(
        &self,
        s: &mut PartitionState,
        b: BrokerId,
        clean: bool,
        kept: Offset,
    ) -> bool {
        let r = *s.replica(b);
        if !r.alive || s.ghost.crashes >= self.config.max_crashes {
            return false;
        }
        if clean && kept != r.log_end_offset() {
            return false;
        }
        if !clean && kept != r.flushed {
            return false;
        }
        Self::fail_delayed_produces(s, b);
        s.ghost.crashes += 1;
        s.ghost.unclean_shutdown = if clean {
            s.ghost.unclean_shutdown.without(b)
        } else {
            s.ghost.unclean_shutdown.with(b)
        };
        let r = s.replica_mut(b);
        truncate_replica(r, kept);
        r.flushed = kept;
        // Everything in memory is gone; what the broker knew of the partition it learns again
        // from the metadata log after it restarts.
        r.alive = false;
        r.leader = NO_BROKER;
        r.isr = BrokerSet::EMPTY;
        r.partition_epoch = 0;
        r.pending_isr = None;
        r.pending_added_broker_epoch = 0;
        r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
        r.follower_broker_epoch = [0; MAX_BROKERS];
        r.inflight_fetch = None;
        r.set_epoch_validated(false);
        true
    }

    pub(super) fn restart(&self, s: &mut PartitionState, b: BrokerId) -> bool {
        let cfg = &self.config;
        let r = s.replica(b);
        if r.alive || !s.controller.fenced.contains(b) {
            return false;
        }
        let r = s.replica_mut(b);
        r.alive = true;
        // Registering again gives the broker a new broker epoch (KIP-903).
        r.broker_epoch += 1;
        if cfg.is(Variant::HwTruncation) {
            let hw = r.high_watermark;
            truncate_replica(r, hw);
        }
        // Registration: a broker back from an unclean shutdown is no longer eligible (KIP-966).
        if s.ghost.unclean_shutdown.contains(b) {
            s.ghost.unclean_shutdown = s.ghost.unclean_shutdown.without(b);
            if self.elr_enabled() && s.controller.elr.contains(b) {
                s.controller.elr = s.controller.elr.without(b);
                if !self.isr_change_allowed(&s.controller) {
                    return false;
                }
                s.controller.partition_epoch += 1;
            }
        }
        true
    }
}

/// Truncates a replica's log to `offset` with what goes with it: the epoch cache, the flushed
/// prefix and the high watermark never point past the log end.
pub fn truncate_replica(r: &mut Replica, offset: Offset) {
    r.log.truncate(offset);
    r.epoch_cache.truncate_from_end(offset);
    r.flushed = r.flushed.min(offset);
    r.high_watermark = r.high_watermark.min(offset);
}
