//! What the active controller has seen of each replica of the metadata log that fetches from
//! it — voters and observers (brokers) alike — for DescribeQuorum and so for
//! `osprey metadata-quorum describe --replication`: each replica's log end offset, when it
//! last fetched and when it last caught up.
//!
//! Kept by the driver beside the quorum core, not in it: the core decides the high watermark
//! from the voters' end offsets alone and needs no clock for that; these timestamps are for
//! people. "Caught up" follows Kafka's rule: a fetch at or past the leader's log end offset
//! at the time of the replica's previous fetch means the replica was caught up at that
//! previous time, so a follower of a log that never stops growing still shows as caught up.

use std::collections::BTreeMap;

/// One replica's progress as the leader last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The offset of its last Fetch: everything below it is in its log.
    pub log_end_offset: i64,
    /// Wall-clock milliseconds of its last Fetch.
    pub last_fetch_ms: i64,
    /// Wall-clock milliseconds it was last caught up with the leader's log end, or -1.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset when that Fetch arrived.
    leader_end_at_fetch: i64,
}

/// Every replica's progress in one leader epoch; a new epoch starts afresh.
#[derive(Clone, Debug, Default)]
pub struct ReplicaProgress {
    epoch: i32,
    replicas: BTreeMap<i32, Progress>,
}

impl ReplicaProgress {
    /// Records a Fetch from `replica_id` at `fetch_offset`, answered by the leader of `epoch`
    /// whose log ends at `leader_end`.
    pub fn record_fetch(
        &mut self,
        epoch: i32,
        replica_id: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.replicas.clear();
        }
        let previous = self.replicas.get(&replica_id).copied();
        let mut caught_up = previous.map_or(-1, |p| p.last_caught_up_ms);
        if fetch_offset >= leader_end {
            caught_up = now_ms;
        } else if let Some(p) = previous.filter(|p| fetch_offset >= p.leader_end_at_fetch) {
            caught_up = caught_up.max(p.last_fetch_ms);
        }
        self.replicas.insert(
            replica_id,
            Progress {
                log_end_offset: fetch_offset,
                last_fetch_ms: now_ms,
                last_caught_up_ms: caught_up,
                leader_end_at_fetch: leader_end,
            },
        );
    }

    /// `replica_id`'s progress in `epoch`, if it fetched in it.
    pub fn get(&self, epoch: i32, replica_id: i32) -> Option<Progress> {
        (epoch == self.epoch)
            .then(|| self.replicas.get(&replica_id).copied())
            .flatten()
    }

    /// The replicas that fetched in `epoch` and are not `voters`: the observers.
    pub fn observers(&self, epoch: i32, voters: &[i32]) -> Vec<(i32, Progress)> {
        if epoch != self.epoch {
            return Vec::new();
        }
        self.replicas
            .iter()
            .filter(|(id, _)| !voters.contains(id))
            .map(|(id, p)| (*id, *p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_at_the_leaders_end_is_caught_up_now() {
        let mut p = ReplicaProgress::default();
        p.record_fetch(3, 2, 10, 10, 1_000);
        let got = p.get(3, 2).unwrap();
        assert_eq!(
            (got.log_end_offset, got.last_fetch_ms, got.last_caught_up_ms),
            (10, 1_000, 1_000)
        );
    }

    #[test]
    fn reaching_the_end_seen_at_the_previous_fetch_is_caught_up_as_of_that_fetch() {
        let mut p = ReplicaProgress::default();
        p.record_fetch(1, 2, 5, 10, 1_000); // behind: never caught up yet
        assert_eq!(p.get(1, 2).unwrap().last_caught_up_ms, -1);
        p.record_fetch(1, 2, 10, 20, 2_000); // reached the end seen at 1_000
        assert_eq!(p.get(1, 2).unwrap().last_caught_up_ms, 1_000);
        p.record_fetch(1, 2, 12, 30, 3_000); // fell behind again: unchanged
        assert_eq!(p.get(1, 2).unwrap().last_caught_up_ms, 1_000);
    }

    #[test]
    fn a_new_epoch_forgets_the_old_leaders_view_and_observers_are_the_non_voters() {
        let mut p = ReplicaProgress::default();
        p.record_fetch(1, 2, 5, 5, 1_000);
        p.record_fetch(1, 7, 5, 5, 1_000);
        assert_eq!(
            p.observers(1, &[1, 2, 3])
                .iter()
                .map(|o| o.0)
                .collect::<Vec<_>>(),
            [7]
        );
        p.record_fetch(2, 3, 6, 6, 2_000);
        assert_eq!(p.get(2, 2), None);
        assert_eq!(p.get(1, 3), None);
        assert!(p.observers(2, &[1, 2, 3]).is_empty());
    }
}
