//! Idempotent producer state of one partition (KIP-98, with KIP-360's rules for epochs).
//!
//! An idempotent producer stamps every batch with its producer id, producer epoch and the
//! sequence number of its first record; sequences count records per partition and wrap
//! from `i32::MAX` to 0. The leader uses what it remembers of each producer to answer a
//! retried batch with the offset it was first written at instead of writing it twice,
//! and to refuse batches that would leave a hole or come from a fenced (older) epoch.
//!
//! What is remembered is Kafka's `ProducerStateEntry`: per producer id, its latest
//! producer epoch and the metadata of its last [`MAX_BATCHES_PER_PRODUCER`] batches
//! (a producer has at most 5 requests in flight per connection, so a retry is always one of
//! them). The state is a pure function of the log: followers build it from the batches they
//! replicate with the same [`ProducerStateManager::update`] the leader uses, so a follower
//! elected leader recognises retries of batches the old leader wrote. After a restart or a
//! truncation it is rebuilt from the batch headers in the log
//! ([`ProducerStateManager::rebuild`]).
//!
//! Deterministic: no I/O; the replica feeds headers in and reads decisions out.
//!
//! # Unknown producers (KIP-360)
//!
//! A batch from a producer id this partition has no state for is accepted with any
//! sequence. This is what Kafka does since KIP-360 (2.5): state disappears legitimately
//! when retention or DeleteRecords removes a producer's last batches, and refusing with
//! UNKNOWN_PRODUCER_ID forced producers into an unsafe sequence reset. Producers that
//! really lost their place are fenced by epoch instead: the coordinator bumps the epoch and
//! the producer restarts its sequence at 0. [`UNKNOWN_PRODUCER_ID`] is therefore never
//! produced here; the constant exists for the wire layer.
//!
//! [`UNKNOWN_PRODUCER_ID`]: crate::error_codes::UNKNOWN_PRODUCER_ID

use std::collections::{HashMap, VecDeque};

use crate::error_codes::{INVALID_PRODUCER_EPOCH, INVALID_RECORD, OUT_OF_ORDER_SEQUENCE_NUMBER};
use crate::storage::batch::{NO_PRODUCER_ID, NO_SEQUENCE};
use crate::storage::{BatchAppendInfo, BatchHeader, PartitionLog, StorageError};

/// Batches remembered per producer for duplicate detection (Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, matching
/// `max.in.flight.requests.per.connection` ≤ 5 for idempotent producers).
pub const MAX_BATCHES_PER_PRODUCER: usize = 5;

/// Where one producer batch sits in the log and which sequences it covers (Kafka's
/// `BatchMetadata`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What a partition knows of one producer id (Kafka's `ProducerStateEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_epoch: i16,
    /// The producer's last batches in this epoch, oldest first, at most
    /// [`MAX_BATCHES_PER_PRODUCER`]. Empty after an epoch bump by a control batch.
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerStateEntry {
    /// The last sequence written in the current epoch, [`NO_SEQUENCE`] if none.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// The remembered batch a retry with these sequences duplicates, if any.
    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    }
}

/// The producer fields of one batch, from a client's header or from an append's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub is_control: bool,
}

impl ProducerBatch {
    /// From a batch header whose base offset is `first_offset` (a client's header carries
    /// no real offset yet; one read from the log does).
    pub fn from_header(h: &BatchHeader, first_offset: i64) -> Self {
        ProducerBatch {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset,
            last_offset: first_offset.saturating_add(i64::from(h.last_offset_delta)),
            is_control: h.is_control(),
        }
    }

    /// From what the log reports for an appended batch.
    pub fn from_append(b: &BatchAppendInfo) -> Self {
        ProducerBatch {
            producer_id: b.producer_id,
            producer_epoch: b.producer_epoch,
            first_seq: b.base_sequence,
            last_seq: b.last_sequence,
            first_offset: b.base_offset,
            last_offset: b.last_offset,
            is_control: b.is_control,
        }
    }

    /// Whether the batch takes part in idempotence at all (producer id -1 does not).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }
}

/// The verdict on a batch a client sends to the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, append nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// Why a batch is refused; [`Self::kafka_error_code`] is the produce response's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// The producer was fenced by a newer epoch of the same producer id.
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// The batch does not continue the producer's sequence (a gap, a retry older than the
    /// remembered batches, or a new epoch that does not start at 0).
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {first_seq} does not follow {last_seq}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        /// The last sequence written in the batch's epoch ([`NO_SEQUENCE`] for a new epoch).
        last_seq: i32,
    },
    /// One produce mixing retried (duplicate) batches with new ones (see
    /// [`ProducerStateManager::check_all`]); names the first new batch.
    #[error("producer {producer_id}: new batch at sequence {first_seq} sent with duplicates")]
    PartialDuplicate { producer_id: i64, first_seq: i32 },
    /// A batch with a producer id but no (or a negative) sequence or epoch.
    #[error("producer {producer_id}: batch has epoch {epoch} and sequence {first_seq}")]
    InvalidProducerFields {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
    },
}

impl ProducerStateError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ProducerStateError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
            ProducerStateError::OutOfOrderSequence { .. }
            | ProducerStateError::PartialDuplicate { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerStateError::InvalidProducerFields { .. } => INVALID_RECORD,
        }
    }
}

/// Kafka's `inSequence`: `next` directly follows `last`, wrapping at `i32::MAX`.
pub fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// Per-partition producer state: producer id → [`ProducerStateEntry`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the state from every batch header in `log` (see [`Self::rebuild`]).
    pub fn from_log(log: &PartitionLog) -> Result<Self, StorageError> {
        let mut m = Self::new();
        m.rebuild(log)?;
        Ok(m)
    }

    /// Forgets everything and replays every batch header of `log`, oldest first.
    ///
    /// Cost: one header-only pass over the whole log (see
    /// [`PartitionLog::for_each_batch_header`]). It runs on replica start and after a
    /// follower truncation, both rare; Kafka bounds it with periodic snapshots, which this
    /// does not have yet. Producers whose batches retention already deleted are not
    /// recovered, which is the KIP-360 "unknown producer" case.
    pub fn rebuild(&mut self, log: &PartitionLog) -> Result<(), StorageError> {
        self.producers.clear();
        log.for_each_batch_header(|h| self.update(&ProducerBatch::from_header(h, h.base_offset)))
    }

    /// The state of `producer_id`, if any.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The leader's check of one client batch against the state (Kafka's
    /// `ProducerAppendInfo.checkProducerEpoch` / `checkSequence` and
    /// `ProducerStateEntry.findDuplicateBatch`), in this order:
    ///
    /// 1. no producer id, or a control batch (written by the transaction coordinator, not
    ///    sequenced) → [`Check::Append`];
    /// 2. negative epoch or sequence → `InvalidProducerFields` (INVALID_RECORD);
    /// 3. unknown producer → [`Check::Append`] with any sequence (KIP-360, module docs);
    /// 4. epoch older than the producer's → INVALID_PRODUCER_EPOCH;
    /// 5. newer epoch → its sequence must restart at 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
    /// 6. same epoch, same first and last sequence as one of the last 5 batches →
    ///    [`Check::Duplicate`] with that batch's offsets;
    /// 7. same epoch → the first sequence must follow the last one (wrapping at
    ///    `i32::MAX`), else OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub fn check(&self, h: &BatchHeader) -> Result<Check, ProducerStateError> {
        self.check_batch(&ProducerBatch::from_header(h, h.base_offset), None)
    }

    /// [`Self::check`] for every batch of one produce, in order, as if the earlier ones
    /// were already appended (a producer may send consecutive batches for one partition in
    /// one request). The first refusal refuses the whole produce. If every batch is a
    /// duplicate, the produce is answered with the first one's base offset and nothing is
    /// appended.
    ///
    /// Deviation from Kafka: Kafka answers a produce as a duplicate as soon as any of its
    /// batches is one, silently dropping new batches sent with it. Clients send one batch
    /// per partition per request, so this never matters to them, but acknowledging
    /// records that were not written is never right: a mix of duplicates and new batches is
    /// refused with OUT_OF_ORDER_SEQUENCE_NUMBER instead.
    pub fn check_all(&self, headers: &[BatchHeader]) -> Result<Check, ProducerStateError> {
        // The (epoch, last sequence) each producer reaches through the earlier batches.
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        let mut duplicate: Option<(i64, i64)> = None;
        let mut new_batch: Option<ProducerBatch> = None;
        for h in headers {
            let b = ProducerBatch::from_header(h, h.base_offset);
            match self.check_batch(&b, pending.get(&b.producer_id).copied())? {
                Check::Append => {
                    if b.has_producer_id() && !b.is_control {
                        pending.insert(b.producer_id, (b.producer_epoch, b.last_seq));
                    }
                    new_batch.get_or_insert(b);
                }
                Check::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    let first = duplicate.map_or(base_offset, |(first, _)| first);
                    duplicate = Some((first, last_offset));
                }
            }
        }
        match (duplicate, new_batch) {
            (None, _) => Ok(Check::Append),
            (Some((base_offset, last_offset)), None) => Ok(Check::Duplicate {
                base_offset,
                last_offset,
            }),
            (Some(_), Some(b)) => Err(ProducerStateError::PartialDuplicate {
                producer_id: b.producer_id,
                first_seq: b.first_seq,
            }),
        }
    }

    /// One batch; `pending` is the producer's (epoch, last sequence) after earlier batches
    /// of the same produce, which take precedence over the stored entry.
    fn check_batch(
        &self,
        b: &ProducerBatch,
        pending: Option<(i16, i32)>,
    ) -> Result<Check, ProducerStateError> {
        if !b.has_producer_id() || b.is_control {
            return Ok(Check::Append);
        }
        if b.producer_epoch < 0 || b.first_seq < 0 {
            return Err(ProducerStateError::InvalidProducerFields {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                first_seq: b.first_seq,
            });
        }
        let stored = self.producers.get(&b.producer_id);
        let (epoch, last_seq) = match (pending, stored) {
            (Some(p), _) => p,
            (None, Some(e)) => (e.producer_epoch, e.last_seq()),
            (None, None) => return Ok(Check::Append),
        };
        let out_of_order = |last_seq| ProducerStateError::OutOfOrderSequence {
            producer_id: b.producer_id,
            epoch: b.producer_epoch,
            first_seq: b.first_seq,
            last_seq,
        };
        if b.producer_epoch < epoch {
            return Err(ProducerStateError::InvalidProducerEpoch {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                current: epoch,
            });
        }
        if b.producer_epoch > epoch {
            return if b.first_seq == 0 {
                Ok(Check::Append)
            } else {
                Err(out_of_order(NO_SEQUENCE))
            };
        }
        if let Some(d) = stored
            .filter(|e| e.producer_epoch == b.producer_epoch)
            .and_then(|e| e.find_duplicate(b.first_seq, b.last_seq))
        {
            return Ok(Check::Duplicate {
                base_offset: d.first_offset,
                last_offset: d.last_offset,
            });
        }
        if in_sequence(last_seq, b.first_seq) {
            Ok(Check::Append)
        } else {
            Err(out_of_order(last_seq))
        }
    }

    /// Records a batch written to the log, at the leader after its append, at a follower
    /// after replicating it, and while rebuilding. No checks (the leader did them): a newer
    /// epoch replaces the entry's epoch and forgets its batches; a batch of an older epoch
    /// (impossible in a leader-validated log) is ignored; a control batch only moves the
    /// epoch. The oldest of more than [`MAX_BATCHES_PER_PRODUCER`] batches is dropped.
    pub fn update(&mut self, b: &ProducerBatch) {
        if !b.has_producer_id() {
            return;
        }
        let e = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| ProducerStateEntry {
                producer_epoch: b.producer_epoch,
                batches: VecDeque::new(),
            });
        if b.producer_epoch < e.producer_epoch {
            tracing::warn!(
                producer_id = b.producer_id,
                epoch = b.producer_epoch,
                current = e.producer_epoch,
                "ignoring a batch of a fenced producer epoch in the log"
            );
            return;
        }
        if b.producer_epoch > e.producer_epoch {
            e.producer_epoch = b.producer_epoch;
            e.batches.clear();
        }
        if b.is_control || b.first_seq < 0 {
            return;
        }
        e.batches.push_back(BatchMetadata {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset: b.first_offset,
            last_offset: b.last_offset,
        });
        while e.batches.len() > MAX_BATCHES_PER_PRODUCER {
            e.batches.pop_front();
        }
    }

    /// [`Self::update`] with a batch header whose records start at `base_offset`.
    pub fn update_from_header(&mut self, h: &BatchHeader, base_offset: i64) {
        self.update(&ProducerBatch::from_header(h, base_offset));
    }

    /// [`Self::update`] for every batch of an append, in order.
    pub fn update_from_append(&mut self, batches: &[BatchAppendInfo]) {
        for b in batches {
            self.update(&ProducerBatch::from_append(b));
        }
    }
}

/// Producer ids per block the controller hands a broker (Kafka's
/// `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`, KIP-730).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// A contiguous block of producer ids the controller allocated to one broker
/// (AllocateProducerIds, KIP-730), from which the broker answers InitProducerId without
/// asking the controller each time. The controller keeps the next free id in its metadata
/// log ([`Self::next_block_start`]); the broker draws ids with [`Self::claim_next`] and asks
/// for a new block when it returns `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub assigned_broker_id: super::ids::BrokerId,
    pub first_producer_id: i64,
    pub size: i32,
    /// The next id to hand out.
    next: i64,
}

impl ProducerIdBlock {
    /// The block `[first_producer_id, first_producer_id + size)` for `broker`.
    pub fn new(
        assigned_broker_id: super::ids::BrokerId,
        first_producer_id: i64,
        size: i32,
    ) -> Self {
        ProducerIdBlock {
            assigned_broker_id,
            first_producer_id,
            size: size.max(0),
            next: first_producer_id,
        }
    }

    /// The last id of the block (`first - 1` for an empty block).
    pub fn last_producer_id(&self) -> i64 {
        self.first_producer_id + i64::from(self.size) - 1
    }

    /// The first id of the block the controller allocates after this one.
    pub fn next_block_start(&self) -> i64 {
        self.first_producer_id + i64::from(self.size)
    }

    /// Hands out the next id, or `None` when the block is used up.
    pub fn claim_next(&mut self) -> Option<i64> {
        (self.next <= self.last_producer_id()).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Ids left to hand out.
    pub fn remaining(&self) -> i64 {
        self.last_producer_id() + 1 - self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BatchBuilder;

    const PID: i64 = 7;

    /// A client batch of `records` records from `PID` at `epoch`, starting at `seq`.
    fn header(epoch: i16, seq: i32, records: usize) -> BatchHeader {
        header_of(PID, epoch, seq, records)
    }

    fn header_of(pid: i64, epoch: i16, seq: i32, records: usize) -> BatchHeader {
        let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
        for _ in 0..records {
            b = b.record(0, None, Some(b"v"));
        }
        BatchHeader::parse(&b.build()).unwrap()
    }

    /// State after appending `(epoch, seq, records)` batches back to back from offset 0.
    fn state(batches: &[(i16, i32, usize)]) -> ProducerStateManager {
        let mut m = ProducerStateManager::new();
        let mut offset = 0;
        for &(epoch, seq, n) in batches {
            let h = header(epoch, seq, n);
            assert_eq!(m.check(&h), Ok(Check::Append));
            m.update_from_header(&h, offset);
            offset += n as i64;
        }
        m
    }

    fn code(r: Result<Check, ProducerStateError>) -> i16 {
        r.unwrap_err().kafka_error_code()
    }

    #[test]
    fn batches_without_a_producer_id_skip_every_check() {
        let m = state(&[(0, 0, 2)]);
        let h = header_of(NO_PRODUCER_ID, -1, -1, 1);
        assert_eq!(m.check(&h), Ok(Check::Append));
        let mut m2 = m.clone();
        m2.update_from_header(&h, 2);
        assert_eq!(m2, m, "no state for producer id -1");
    }

    #[test]
    fn unknown_producers_are_accepted_with_any_sequence() {
        let m = ProducerStateManager::new();
        assert_eq!(m.check(&header(0, 0, 1)), Ok(Check::Append));
        assert_eq!(m.check(&header(3, 42, 1)), Ok(Check::Append));
    }

    #[test]
    fn the_next_sequence_is_appended() {
        let m = state(&[(0, 0, 3)]);
        assert_eq!(m.entry(PID).unwrap().last_seq(), 2);
        assert_eq!(m.check(&header(0, 3, 1)), Ok(Check::Append));
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_batches_is_a_duplicate() {
        let m = state(&[
            (0, 0, 1),
            (0, 1, 2),
            (0, 3, 1),
            (0, 4, 1),
            (0, 5, 3),
            (0, 8, 1),
        ]);
        // Offsets: seq 0@0, 1-2@1-2, 3@3, 4@4, 5-7@5-7, 8@8; the first batch is forgotten.
        assert_eq!(
            m.check(&header(0, 8, 1)),
            Ok(Check::Duplicate {
                base_offset: 8,
                last_offset: 8
            })
        );
        assert_eq!(
            m.check(&header(0, 1, 2)),
            Ok(Check::Duplicate {
                base_offset: 1,
                last_offset: 2
            })
        );
        assert_eq!(
            code(m.check(&header(0, 0, 1))),
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            "older than the last five batches"
        );
    }

    #[test]
    fn a_retry_with_different_bounds_is_out_of_order() {
        let m = state(&[(0, 0, 3)]);
        assert_eq!(
            code(m.check(&header(0, 0, 2))),
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let m = state(&[(0, 0, 1)]);
        assert_eq!(
            m.check(&header(0, 2, 1)),
            Err(ProducerStateError::OutOfOrderSequence {
                producer_id: PID,
                epoch: 0,
                first_seq: 2,
                last_seq: 0
            })
        );
    }

    #[test]
    fn an_older_epoch_is_fenced() {
        let m = state(&[(2, 0, 1)]);
        assert_eq!(
            m.check(&header(1, 1, 1)),
            Err(ProducerStateError::InvalidProducerEpoch {
                producer_id: PID,
                epoch: 1,
                current: 2
            })
        );
        assert_eq!(code(m.check(&header(1, 0, 1))), INVALID_PRODUCER_EPOCH);
    }

    #[test]
    fn a_newer_epoch_must_restart_at_zero() {
        let m = state(&[(0, 0, 5)]);
        assert_eq!(m.check(&header(1, 0, 1)), Ok(Check::Append));
        assert_eq!(
            code(m.check(&header(1, 5, 1))),
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
    }

    #[test]
    fn a_new_epoch_forgets_the_old_epochs_batches() {
        let mut m = state(&[(0, 0, 1)]);
        m.update_from_header(&header(1, 0, 1), 1);
        let e = m.entry(PID).unwrap();
        assert_eq!(e.producer_epoch, 1);
        assert_eq!(e.batches.len(), 1);
        assert_eq!(e.batches[0].first_offset, 1);
        assert_eq!(code(m.check(&header(0, 0, 1))), INVALID_PRODUCER_EPOCH);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let max = i32::MAX;
        let m = state(&[(0, max - 1, 2)]);
        assert_eq!(m.entry(PID).unwrap().last_seq(), max);
        assert_eq!(m.check(&header(0, 0, 1)), Ok(Check::Append));
        assert_eq!(
            code(m.check(&header(0, 1, 1))),
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        // A batch that itself wraps: first max, last 1.
        let m = state(&[(0, max - 2, 2)]);
        let h = header(0, max, 2);
        assert_eq!(h.last_sequence(), 0);
        assert_eq!(m.check(&h), Ok(Check::Append));
        let mut m2 = m.clone();
        m2.update_from_header(&h, 2);
        assert_eq!(
            m2.check(&h),
            Ok(Check::Duplicate {
                base_offset: 2,
                last_offset: 3
            })
        );
        assert_eq!(m2.check(&header(0, 1, 1)), Ok(Check::Append));
        assert!(in_sequence(max, 0) && in_sequence(-1, 0) && !in_sequence(max, 1));
    }

    #[test]
    fn negative_epoch_or_sequence_with_a_producer_id_is_an_invalid_record() {
        let m = ProducerStateManager::new();
        assert_eq!(code(m.check(&header(0, -1, 1))), INVALID_RECORD);
        assert_eq!(code(m.check(&header(-1, 0, 1))), INVALID_RECORD);
    }

    #[test]
    fn control_batches_are_not_sequenced_but_move_the_epoch() {
        let mut m = state(&[(0, 0, 2)]);
        let b = BatchBuilder::new(0)
            .producer(PID, 1, -1)
            .control(true)
            .record(0, None, None)
            .build();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(m.check(&h), Ok(Check::Append));
        m.update_from_header(&h, 2);
        let e = m.entry(PID).unwrap();
        assert_eq!((e.producer_epoch, e.batches.len()), (1, 0));
        assert_eq!(
            code(m.check(&header(1, 2, 1))),
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        assert_eq!(m.check(&header(1, 0, 1)), Ok(Check::Append));
    }

    #[test]
    fn a_multi_batch_produce_is_checked_in_order() {
        let m = state(&[(0, 0, 1)]);
        let ok = [header(0, 1, 2), header(0, 3, 1), header_of(9, 0, 5, 1)];
        assert_eq!(m.check_all(&ok), Ok(Check::Append));
        let gap = [header(0, 1, 2), header(0, 4, 1)];
        assert_eq!(code(m.check_all(&gap)), OUT_OF_ORDER_SEQUENCE_NUMBER);
        let dup = [header(0, 0, 1)];
        assert_eq!(
            m.check_all(&dup),
            Ok(Check::Duplicate {
                base_offset: 0,
                last_offset: 0
            })
        );
        let bump = [header(1, 0, 1), header(0, 1, 1)];
        assert_eq!(code(m.check_all(&bump)), INVALID_PRODUCER_EPOCH);
    }

    #[test]
    fn a_produce_of_only_duplicates_spans_them_and_a_mix_is_refused() {
        let m = state(&[(0, 0, 1), (0, 1, 2)]);
        assert_eq!(
            m.check_all(&[header(0, 0, 1), header(0, 1, 2)]),
            Ok(Check::Duplicate {
                base_offset: 0,
                last_offset: 2
            })
        );
        assert_eq!(
            m.check_all(&[header(0, 1, 2), header(0, 3, 1)]),
            Err(ProducerStateError::PartialDuplicate {
                producer_id: PID,
                first_seq: 3
            })
        );
        let plain = header_of(NO_PRODUCER_ID, -1, -1, 1);
        assert_eq!(
            code(m.check_all(&[plain, header(0, 0, 1)])),
            OUT_OF_ORDER_SEQUENCE_NUMBER
        );
    }

    #[test]
    fn producers_are_independent() {
        let mut m = state(&[(0, 0, 1)]);
        m.update_from_header(&header_of(8, 0, 0, 1), 1);
        assert_eq!(m.len(), 2);
        assert_eq!(m.check(&header_of(8, 0, 1, 1)), Ok(Check::Append));
        assert_eq!(m.check(&header(0, 1, 1)), Ok(Check::Append));
        assert_eq!(
            m.check(&header_of(8, 0, 0, 1)),
            Ok(Check::Duplicate {
                base_offset: 1,
                last_offset: 1
            })
        );
    }

    #[test]
    fn producer_id_blocks_hand_out_each_id_once_then_run_dry() {
        let mut b = ProducerIdBlock::new(3, 2000, 3);
        assert_eq!((b.last_producer_id(), b.next_block_start()), (2002, 2003));
        assert_eq!(b.remaining(), 3);
        let ids: Vec<_> = std::iter::from_fn(|| b.claim_next()).collect();
        assert_eq!(ids, vec![2000, 2001, 2002]);
        assert_eq!((b.claim_next(), b.remaining()), (None, 0));
        let next = ProducerIdBlock::new(4, b.next_block_start(), PRODUCER_ID_BLOCK_SIZE);
        assert_eq!(next.first_producer_id, 2003);
        assert_eq!(next.last_producer_id(), 3002);
        assert_eq!(ProducerIdBlock::new(1, 0, -5).remaining(), 0);
    }
}
