//! State-space reduction: the canonical form of a state, and a compact hash.
//!
//! The depth-first engine keeps one fingerprint per equivalence class of states: two states
//! are merged when their canonical forms are equal. The canonical form first *erases*
//! information that no future step and no property can observe ([`erase_unobservable`]), then
//! picks one representative among the states that differ only by a renaming of brokers
//! (`symmetry.rs`). Each erasure below states why it is sound: for two states with the same
//! canonical form, every state reachable from one has a reachable counterpart from the other
//! with the same canonical form, and every property gives the same verdict on both. The
//! explored state itself is never rewritten (the checker continues from the original state),
//! so traces and counterexamples show the model's real states.
//!
//! The hash writes the state as one packed byte string instead of field by field: the checker
//! hashes every state it generates (twice under symmetry reduction), and a single `write` of a
//! few hundred bytes is several times cheaper than hundreds of one-byte writes.

use crate::state::*;
use crate::types::*;
use std::hash::{Hash, Hasher};

/// Drops the fetch responses that have become stale, as the step that made them stale.
///
/// A response whose leader or leader epoch is no longer the follower's, or whose records start
/// elsewhere than the follower's log end offset, is dropped when handled (KIP-320), and stays
/// stale: a follower's leader epoch only grows, every change of leader bumps it, and its log
/// end offset only moves by handling this very response, by a crash (which discards it) or,
/// under hw-truncation, by truncating (after which it stays elsewhere). So the state with it
/// reaches the state without it by one HandleFetchResponse, and can do nothing more: the
/// response's only other effect is to disable Fetch. No property reads in-flight responses.
/// Dropping it at once makes every reachable state the more capable of the two, so merging
/// them loses no behaviour. (Erasing it only in the symmetry representative would not do: the
/// checker could keep the state with the response, whose one way to fetch again leads back
/// into its own, already visited, class.) Off under the unfenced-truncation variant, which
/// applies stale responses.
pub fn drop_stale_fetch_responses(s: &mut PartitionState) {
    if !s.scope.fenced_fetch {
        return;
    }
    for r in s.brokers[..s.scope.brokers as usize].iter_mut() {
        if let Some(resp) = r.inflight_fetch {
            let stale = resp.leader != r.leader
                || resp.leader_epoch != r.leader_epoch
                || matches!(resp.result, FetchResult::Records { fetch_offset, .. }
                    if fetch_offset != r.log.end_offset());
            if stale {
                r.inflight_fetch = None;
            }
        }
    }
}

/// The leader of a follower whose metadata is dead, in a canonical form (never a broker id, so
/// renaming leaves it alone; never a state the model itself reaches).
pub const STALE_LEADER: BrokerId = NO_BROKER - 1;

/// Erases what cannot influence any future step or property. Every erasure is a function of
/// the state that commutes with renaming brokers, so it can precede the symmetry reduction.
/// Each merges states that are bisimilar: whichever of them the checker keeps can take every
/// step the others can, to equivalent states (a merely "reachable from" relation would not
/// do; see [`drop_stale_fetch_responses`]).
pub fn erase_unobservable(s: &mut PartitionState) {
    let n = s.scope.brokers as usize;
    let broker_epochs: [u8; MAX_BROKERS] = std::array::from_fn(|b| s.brokers[b].broker_epoch);
    let crashes_exhausted = s.ghost.crashes >= s.scope.max_crashes;
    // The leader epoch each broker leads in, in its own view, if it is alive and leads.
    let leads: [Option<Epoch>; MAX_BROKERS] = std::array::from_fn(|b| {
        let r = &s.brokers[b];
        r.is_leader(b as BrokerId).then_some(r.leader_epoch)
    });
    let c = s.controller;
    let frozen: [bool; MAX_BROKERS] =
        std::array::from_fn(|z| z < n && frozen_zombie(s, z as BrokerId));
    for (z, &is_frozen) in frozen.iter().enumerate().take(n) {
        if is_frozen {
            erase_frozen_zombie(s, z as BrokerId);
        } else if s.brokers[z].is_leader(z as BrokerId) {
            erase_unjoinable_follower_ends(s, z as BrokerId);
        }
    }
    // A sticky witness flag: no step and no always-property reads it; only the sometimes
    // property FollowerTruncatesDivergedTail does. States that differ only in it are
    // bisimilar for every always-property, so merging them can hide no violation. It can
    // only hide the witness, if every state where a truncation happens were merged into an
    // earlier one; the checker then reports the witness as not found (never a false "holds"
    // of an always-property), and the default check finds it.
    s.ghost.truncated_diverged_tail = false;
    for (me, r) in s.brokers[..n].iter_mut().enumerate() {
        // Dead metadata. A live follower with no response in flight whose (leader, leader
        // epoch) is no longer the controller's, and whose leader no longer leads in that epoch,
        // can never fetch successfully again: the controller's epoch only grows and each epoch
        // has one leader, so the old leader can only lead again in a newer epoch, and a fetch
        // carrying the old epoch is fenced (KIP-320). Until it learns newer metadata
        // (BecomeFollower, whose effect does not depend on the old pair), crashes (which
        // forgets it), or is told it leads (BecomeLeader, which reads the leader only to see
        // whether it is itself), no step reads the old pair, and no property does but
        // LeaderEpochsMonotonic's clause that holds in every reachable state (see below). So
        // followers stuck on different old pairs behave alike: the pair is replaced by a marker.
        // Off under the unfenced-truncation variant, whose fetches are not fenced by epoch.
        if s.scope.fenced_fetch
            && r.alive
            && r.inflight_fetch.is_none()
            && (r.leader as usize) < MAX_BROKERS
            && r.leader as usize != me
            && (r.leader, r.leader_epoch) != (c.leader, c.leader_epoch)
            && leads[r.leader as usize] != Some(r.leader_epoch)
        {
            r.leader = STALE_LEADER;
            r.leader_epoch = 0;
        }
        // The leader epoch of a broker that follows no leader (offline partition, crashed, or
        // restarted and not yet told). No step reads it: Fetch and HandleFetchResponse need a
        // leader, BecomeLeader overwrites it, AlterPartition needs a pending proposal (cleared
        // with the leader). BecomeFollower either overwrites it or, when it already equals
        // the controller's, is a no-op: the two states differ by that one step, whose only
        // effect is to set it. LeaderEpochsMonotonic reads it, but every broker's leader epoch
        // is copied from the controller's, which only grows, so that clause holds in every
        // reachable state. Under hw-truncation BecomeFollower also truncates, so the no-op is
        // observable: the erasure is off there.
        if r.leader == NO_BROKER && s.scope.offline_epoch_unobservable {
            r.leader_epoch = 0;
        }
        // Broker epochs (KIP-903) are only ever compared for equality: the broker epoch a
        // leader saw a follower fetch with (and the one it put in its AlterPartition) against
        // the follower's current one. They only grow, so a copy that is stale stays stale.
        // What matters is therefore only whether each copy is current: keep that bit and set
        // every broker's own epoch to 0.
        let ends = r.follower_end_offset;
        for (f, seen) in r.follower_broker_epoch[..n].iter_mut().enumerate() {
            *seen = if ends[f] == UNKNOWN_OFFSET {
                0
            } else {
                u8::from(*seen != broker_epochs[f])
            };
        }
        r.pending_added_broker_epoch = match r.pending_isr {
            // An expansion adds exactly one replica (ProposeIsrExpand); AlterPartition reads
            // the epoch only when the leader's ISR is the controller's.
            Some(p) => match BrokerSet(p.0 & !r.isr.0).iter().next() {
                Some(m) => u8::from(r.pending_added_broker_epoch != broker_epochs[m as usize]),
                None => 0,
            },
            None => 0,
        };
        r.broker_epoch = 0;
        // The flushed prefix is read only by Crash (what an unclean shutdown keeps). Once the
        // crash bound is reached no broker can crash again (a live broker's fencing counts
        // with crashes too), and no property reads it.
        if crashes_exhausted {
            r.flushed = 0;
        }
    }
}

/// Whether broker `z` is a *frozen zombie*: a leader, in its own view, of an epoch that is
/// no longer the controller's, that nobody fetches from and whose high watermark can never
/// move again. Everything it knows only as a leader is then unobservable
/// ([`erase_frozen_zombie`]).
///
/// Each clause is stable until `z` itself takes BecomeLeader, BecomeFollower or Crash, each
/// of which resets every leader-only field whatever it held:
/// - **Zombie.** The controller's leader epoch only grows and every change of leader bumps
///   it, so once the controller's (leader, leader epoch) is not `z`'s, it never is again;
///   `z`'s AlterPartition is then refused for a stale leader epoch, which changes nothing
///   (Kafka's leader keeps the change pending and waits for metadata), so its committed ISR
///   and partition epoch are frozen and a pending proposal is never answered.
/// - **Nobody fetches from it.** No live broker follows `z` in its epoch, and none ever will:
///   brokers only learn the controller's current leader and epoch. So the followers' log end
///   offsets it knows are frozen.
/// - **Its high watermark is frozen.** The high watermark is the least log end offset over the
///   maximal ISR (committed ∪ proposed), and only moves while the committed ISR has
///   min.insync.replicas members (KIP-966). It is frozen when the committed ISR is below
///   min.insync.replicas; or when another member's end was never learned; or when it has
///   other members and already reaches the least of their (frozen) ends. A produce raises
///   only the log end, which is never below a follower's end; a new proposal only adds
///   members to the maximal ISR (a shrink proposes a subset of the committed ISR), which
///   keeps every clause true.
///
/// Off where a zombie's proposal is read otherwise ([`Scope::zombie_proposal_unobservable`]:
/// under eager-isr-shrink the high watermark reads the proposal alone, and under
/// unfenced-truncation fetches ignore the leader epoch).
fn frozen_zombie(s: &PartitionState, z: BrokerId) -> bool {
    let r = &s.brokers[z as usize];
    let c = &s.controller;
    if !s.scope.zombie_proposal_unobservable
        || !r.is_leader(z)
        || (c.leader == z && c.leader_epoch == r.leader_epoch)
    {
        return false;
    }
    let n = s.scope.brokers as usize;
    let fetched = (0..n).any(|f| {
        let fr = &s.brokers[f];
        f != z as usize && fr.alive && fr.leader == z && fr.leader_epoch == r.leader_epoch
    });
    if fetched {
        return false;
    }
    if s.scope.hw_stops_below_min_isr && r.isr.len() < s.scope.min_isr as usize {
        return true;
    }
    let mut others = r.maximal_isr().without(z).iter().peekable();
    if others.peek().is_none() {
        // A leader alone in its ISR advances its high watermark with every produce.
        return false;
    }
    let mut least = Offset::MAX;
    for m in others {
        let end = r.follower_end_offset[m as usize];
        if end == UNKNOWN_OFFSET {
            // Never learned: the high watermark cannot move.
            return true;
        }
        least = least.min(end);
    }
    r.high_watermark >= least
}

/// Erases what a frozen zombie ([`frozen_zombie`]) knows only as a leader, keeping what its
/// own remaining steps and the properties read.
///
/// While it stays frozen, its leader-only fields are read only by steps whose effects are
/// themselves unobservable: the high watermark computation (which cannot move), its ISR
/// proposals (whose only effect is the proposal, erased here: the state with a proposal and
/// the state without it, which may propose again, fall in the same class) and its
/// AlterPartition (never a step: it is stale). Its Produce reads one bit of its committed ISR,
/// whether it is below min.insync.replicas (an acks=all produce is then refused), which is
/// kept. A produce waiting in its purgatory is never acknowledged (that needs the high
/// watermark to pass it) and fails when the zombie learns new metadata or crashes, and no
/// property reads a pending produce (NoCommittedWriteLoss reads acknowledged ones, the
/// producer only whether a record was sent): it is recorded as failed at once. Its log,
/// flushed prefix, high watermark, epoch cache and leader epoch stay: they outlive the
/// zombie's leadership (a zombie elected again keeps its log) and the properties read them.
/// BecomeLeader, BecomeFollower and Crash overwrite every erased field without reading it.
///
/// So two states whose canonical forms agree differ only in fields no step or property reads
/// while the zombie stays frozen, and take the same steps to states whose canonical forms
/// agree (a proposal step may stutter). The erased form marks the zombie (a pending proposal
/// of nobody, which no step makes), so it never equals the form of a state where it is not
/// frozen.
fn erase_frozen_zombie(s: &mut PartitionState, z: BrokerId) {
    let n = s.scope.brokers as usize;
    let min_isr = s.scope.min_isr as usize;
    let r = &mut s.brokers[z as usize];
    r.isr = if r.isr.len() < min_isr {
        BrokerSet::EMPTY
    } else {
        BrokerSet::all(n)
    };
    r.pending_isr = Some(BrokerSet::EMPTY);
    r.pending_added_broker_epoch = 0;
    r.partition_epoch = 0;
    r.follower_end_offset = [UNKNOWN_OFFSET; MAX_BROKERS];
    r.follower_broker_epoch = [0; MAX_BROKERS];
    for st in s.ghost.records.iter_mut() {
        if matches!(*st, RecordStatus::Pending { leader, .. } if leader == z) {
            *st = RecordStatus::Failed;
        }
    }
}

/// Forgets the log end offsets leader `l` knows of followers outside its maximal ISR that
/// are below the bar for joining it.
///
/// A follower's end, as the leader last learned it from a Fetch, is read by the high
/// watermark (only for members of the maximal ISR), by ProposeIsrShrink (only for members of
/// the committed ISR, a subset of the maximal one) and by ProposeIsrExpand, which needs it at
/// or above the leader's high watermark and, with KAFKA-7128's guard, at or above the start
/// of the leader's epoch. Both bars only rise while `l` leads in its epoch: the high
/// watermark never moves back, and the epoch's start is fixed when `l` becomes leader (or,
/// if its cache has no entry for the epoch, is the log end, which only grows). So an end
/// below the bar can never let the follower join; until a Fetch overwrites it (with the same
/// value in both states), or BecomeLeader, BecomeFollower or Crash resets it, it is as good
/// as an end never learned, and the broker epoch that Fetch recorded with it is read only by
/// an expansion. A follower outside the maximal ISR can enter it only by such an expansion,
/// or by BecomeLeader in the same epoch copying the controller's ISR, which is excluded here
/// when the controller's ISR holds the follower. No property reads a leader's view of its
/// followers.
fn erase_unjoinable_follower_ends(s: &mut PartitionState, l: BrokerId) {
    let n = s.scope.brokers as usize;
    let c = s.controller;
    let guard = s.scope.expand_guard;
    let r = &mut s.brokers[l as usize];
    let current = c.leader == l && c.leader_epoch == r.leader_epoch;
    let members = r.maximal_isr();
    let bar = if guard {
        r.high_watermark.max(r.epoch_start_offset())
    } else {
        r.high_watermark
    };
    for f in 0..n as BrokerId {
        let end = r.follower_end_offset[f as usize];
        if f != l
            && !members.contains(f)
            && !(current && c.isr.contains(f))
            && end != UNKNOWN_OFFSET
            && end < bar
        {
            r.follower_end_offset[f as usize] = UNKNOWN_OFFSET;
            r.follower_broker_epoch[f as usize] = 0;
        }
    }
}

/// The largest packed encoding: every broker, the controller and the ghost variables.
const ENCODED_MAX: usize = MAX_BROKERS * REPLICA_BYTES + 8 + GHOST_BYTES;
const REPLICA_BYTES: usize = 1 + LOG_BYTES + 2 + CACHE_BYTES + 5 + 2 + 2 * MAX_BROKERS + 1 + 15 + 1;
const LOG_BYTES: usize = 1 + 2 * MAX_RECORDS;
const CACHE_BYTES: usize = 1 + 2 * MAX_CACHE;
const GHOST_BYTES: usize = 5 * MAX_RECORDS + 4 * MAX_RECORDS + 4;

/// A fixed-capacity byte buffer the encoding is written to.
struct Packed {
    buf: [u8; ENCODED_MAX],
    len: usize,
}

impl Packed {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
    fn log(&mut self, log: &Log) {
        let mut b = [0u8; LOG_BYTES];
        b[0] = log.end_offset();
        for (i, e) in log.entries().iter().enumerate() {
            b[1 + 2 * i] = e.record;
            b[2 + 2 * i] = e.epoch;
        }
        self.put(&b);
    }
    fn cache(&mut self, cache: &EpochCache) {
        let mut b = [0u8; CACHE_BYTES];
        b[0] = cache.entries().len() as u8;
        for (i, (e, o)) in cache.entries().iter().enumerate() {
            b[1 + 2 * i] = *e;
            b[2 + 2 * i] = *o;
        }
        self.put(&b);
    }
    fn replica(&mut self, r: &Replica) {
        self.put(&[u8::from(r.alive)]);
        self.log(&r.log);
        self.put(&[r.flushed, r.high_watermark]);
        self.cache(&r.epoch_cache);
        self.put(&[
            r.leader_epoch,
            r.leader,
            r.partition_epoch,
            r.isr.0,
            // A set is below 2^MAX_BROKERS, so 0xFF cannot be a proposal.
            r.pending_isr.map_or(0xFF, |p| p.0),
        ]);
        self.put(&[r.pending_added_broker_epoch, r.broker_epoch]);
        self.put(&r.follower_end_offset);
        self.put(&r.follower_broker_epoch);
        self.put(&[u8::from(r.epoch_validated)]);
        let mut f = [0u8; 15];
        if let Some(resp) = r.inflight_fetch {
            f[1] = resp.leader;
            f[2] = resp.leader_epoch;
            f[3] = resp.high_watermark;
            match resp.result {
                FetchResult::Records {
                    fetch_offset,
                    records,
                } => {
                    f[0] = 1;
                    f[4] = fetch_offset;
                    f[5] = records.end_offset();
                    for (i, e) in records.entries().iter().enumerate() {
                        f[6 + 2 * i] = e.record;
                        f[7 + 2 * i] = e.epoch;
                    }
                }
                FetchResult::Diverging { end } => {
                    f[0] = 2;
                    if let Some((e, o)) = end {
                        f[4] = 1;
                        f[5] = e;
                        f[6] = o;
                    }
                }
            }
        }
        self.put(&f);
        // Keeps the encoding of consecutive replicas aligned on a boundary byte.
        self.put(&[0xA5]);
    }
    fn controller(&mut self, c: &Controller) {
        self.put(&[
            c.leader,
            c.leader_epoch,
            c.partition_epoch,
            c.isr.0,
            c.elr.0,
            c.fenced.0,
            c.offline_logs.0,
        ]);
    }
    fn ghost(&mut self, g: &Ghost) {
        for st in &g.records {
            self.put(&match *st {
                RecordStatus::NotSent => [0, 0, 0, 0, 0],
                RecordStatus::Pending {
                    leader,
                    epoch,
                    offset,
                    acks_all,
                } => [1, leader, epoch, offset, u8::from(acks_all)],
                RecordStatus::Acked {
                    offset,
                    epoch,
                    acks_all,
                } => [2, 0, epoch, offset, u8::from(acks_all)],
                RecordStatus::Failed => [3, 0, 0, 0, 0],
            });
        }
        for c in &g.committed {
            self.put(&match *c {
                None => [0, 0, 0, 0],
                Some((e, first)) => [1, e.record, e.epoch, first],
            });
        }
        self.put(&[
            u8::from(g.committed_conflict),
            g.crashes,
            g.unclean_shutdown.0,
            u8::from(g.truncated_diverged_tail),
        ]);
    }
}

impl Hash for PartitionState {
    /// One write of the packed state. Brokers at or above `scope.brokers` never change along a
    /// run, so they are left out; the encoding of the rest is injective, so states that are
    /// not equal differ in the bytes hashed.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut p = Packed {
            buf: [0; ENCODED_MAX],
            len: 0,
        };
        for r in &self.brokers[..self.scope.brokers as usize] {
            p.replica(r);
        }
        p.controller(&self.controller);
        p.ghost(&self.ghost);
        state.write(&p.buf[..p.len]);
    }
}
