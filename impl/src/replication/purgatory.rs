//! The delayed-produce purgatory: acks=all produces waiting for the high watermark.
//!
//! Kafka's `DelayedProduce` parks an acks=all produce until every member of the ISR has
//! the appended records, i.e. until the leader's high watermark reaches the offset after
//! the produce's last record (its *required offset*). This is the model's
//! `complete_delayed_produces` / `fail_delayed_produces` pair, plus the request timeout the
//! model abstracts away. It holds no clock: time is passed in, completions are handed to a
//! callback, so the caller decides where they go (the replica's effect queue).
//!
//! Waiting produces are kept ordered by required offset (appends at one leader get
//! increasing offsets, so normally in append order) and completed from the front:
//! completing is O(completed), never a scan.

use std::collections::VecDeque;

use crate::error_codes::{NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT};

/// The answer to one produce request for this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceCompletion {
    /// The caller's id for the request (echoed, never interpreted).
    pub request_id: u64,
    /// Kafka error code (`NONE` on success).
    pub error_code: i16,
    /// Offset of the first appended record; -1 when nothing was appended.
    pub base_offset: i64,
}

/// An acks=all produce appended at the leader and waiting for replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayedProduce {
    pub request_id: u64,
    pub base_offset: i64,
    /// Last appended offset + 1: the high watermark that completes the produce.
    pub required_offset: i64,
    /// When the produce times out with REQUEST_TIMED_OUT (the request's `timeout_ms`).
    pub deadline_ms: u64,
}

/// Waiting acks=all produces of one partition, in append order.
#[derive(Debug, Default)]
pub struct ProducePurgatory {
    waiting: VecDeque<DelayedProduce>,
}

impl ProducePurgatory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of waiting produces.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The waiting produces, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &DelayedProduce> {
        self.waiting.iter()
    }

    /// Parks a produce, keeping the queue ordered by required offset. New appends come in
    /// append order and go to the back; a retried idempotent batch answered as a duplicate
    /// of an uncommitted earlier batch waits for that batch's offsets, so it may belong
    /// further forward (after any produce with the same required offset, so answers for
    /// one offset keep their arrival order).
    pub fn add(&mut self, p: DelayedProduce) {
        let at = self
            .waiting
            .partition_point(|w| w.required_offset <= p.required_offset);
        self.waiting.insert(at, p);
    }

    /// Completes every produce the high watermark has passed: acknowledged when the
    /// maximal ISR still has min.insync.replicas members (`enough_replicas`), otherwise
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (the records are committed but fewer replicas than
    /// promised hold them).
    pub fn complete_up_to(
        &mut self,
        high_watermark: i64,
        enough_replicas: bool,
        mut emit: impl FnMut(ProduceCompletion),
    ) {
        let error_code = if enough_replicas {
            NONE
        } else {
            NOT_ENOUGH_REPLICAS_AFTER_APPEND
        };
        while let Some(p) = self.waiting.front() {
            if p.required_offset > high_watermark {
                break;
            }
            emit(ProduceCompletion {
                request_id: p.request_id,
                error_code,
                base_offset: p.base_offset,
            });
            self.waiting.pop_front();
        }
    }

    /// Fails every waiting produce with `error_code` (NOT_LEADER_OR_FOLLOWER when the
    /// replica stops leading: no promise about the records was made).
    pub fn fail_all(&mut self, error_code: i16, mut emit: impl FnMut(ProduceCompletion)) {
        for p in self.waiting.drain(..) {
            emit(ProduceCompletion {
                request_id: p.request_id,
                error_code,
                base_offset: p.base_offset,
            });
        }
    }

    /// Times out, with REQUEST_TIMED_OUT, every produce whose deadline is at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64, mut emit: impl FnMut(ProduceCompletion)) {
        self.waiting.retain(|p| {
            if p.deadline_ms > now_ms {
                return true;
            }
            emit(ProduceCompletion {
                request_id: p.request_id,
                error_code: REQUEST_TIMED_OUT,
                base_offset: p.base_offset,
            });
            false
        });
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.waiting.iter().map(|p| p.deadline_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_codes::NOT_LEADER_OR_FOLLOWER;

    fn p(id: u64, base: i64, required: i64, deadline: u64) -> DelayedProduce {
        DelayedProduce {
            request_id: id,
            base_offset: base,
            required_offset: required,
            deadline_ms: deadline,
        }
    }

    fn collect(f: impl FnOnce(&mut dyn FnMut(ProduceCompletion))) -> Vec<ProduceCompletion> {
        let mut out = Vec::new();
        f(&mut |c| out.push(c));
        out
    }

    #[test]
    fn completes_in_order_once_the_high_watermark_passes() {
        let mut pg = ProducePurgatory::new();
        pg.add(p(1, 0, 2, 100));
        pg.add(p(2, 2, 3, 100));
        assert!(collect(|e| pg.complete_up_to(1, true, e)).is_empty());
        let done = collect(|e| pg.complete_up_to(2, true, e));
        assert_eq!(
            done,
            vec![ProduceCompletion {
                request_id: 1,
                error_code: NONE,
                base_offset: 0
            }]
        );
        let done = collect(|e| pg.complete_up_to(5, false, e));
        assert_eq!(done[0].error_code, NOT_ENOUGH_REPLICAS_AFTER_APPEND);
        assert!(pg.is_empty());
    }

    #[test]
    fn a_duplicate_of_an_earlier_batch_waits_in_offset_order() {
        let mut pg = ProducePurgatory::new();
        pg.add(p(1, 0, 1, 100));
        pg.add(p(2, 1, 3, 100));
        pg.add(p(3, 0, 1, 100)); // a retry of produce 1
        let order: Vec<u64> = pg.iter().map(|w| w.request_id).collect();
        assert_eq!(order, vec![1, 3, 2]);
        let done = collect(|e| pg.complete_up_to(1, true, e));
        assert_eq!(
            done.iter()
                .map(|c| (c.request_id, c.base_offset))
                .collect::<Vec<_>>(),
            vec![(1, 0), (3, 0)]
        );
        assert_eq!(pg.len(), 1);
    }

    #[test]
    fn fails_everything_on_leadership_loss() {
        let mut pg = ProducePurgatory::new();
        pg.add(p(1, 0, 1, 100));
        pg.add(p(2, 1, 2, 100));
        let done = collect(|e| pg.fail_all(NOT_LEADER_OR_FOLLOWER, e));
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|c| c.error_code == NOT_LEADER_OR_FOLLOWER));
        assert!(pg.is_empty());
    }

    #[test]
    fn times_out_at_the_deadline_only() {
        let mut pg = ProducePurgatory::new();
        pg.add(p(1, 0, 1, 50));
        pg.add(p(2, 1, 2, 100));
        assert_eq!(pg.next_deadline_ms(), Some(50));
        assert!(collect(|e| pg.expire(49, e)).is_empty());
        let done = collect(|e| pg.expire(50, e));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].request_id, 1);
        assert_eq!(done[0].error_code, REQUEST_TIMED_OUT);
        assert_eq!(pg.len(), 1);
    }
}
