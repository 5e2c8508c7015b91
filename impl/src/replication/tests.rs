//! Unit tests of the replica core on a real [`PartitionLog`] in a temporary directory,
//! including one per case of the consumer read rule. The tests of each model step, driven
//! across several replicas, are in `impl/tests/replication_transitions.rs`.

use super::*;
use crate::storage::{BatchBuilder, LogConfig};

fn replica(dir: &std::path::Path, id: BrokerId) -> Replica {
    let log = PartitionLog::open(dir.join(format!("b{id}")), LogConfig::default()).unwrap();
    Replica::new(ReplicaConfig::new(id), log, 1).unwrap()
}

fn state(leader: BrokerId, leader_epoch: LeaderEpoch, isr: &[BrokerId]) -> PartitionRegistration {
    PartitionRegistration {
        leader,
        leader_epoch,
        partition_epoch: leader_epoch,
        isr: isr.to_vec(),
        replicas: vec![0, 1, 2],
    }
}

fn batch() -> BytesMut {
    BatchBuilder::new(0).record(0, None, Some(b"v")).build()
}

#[test]
fn the_current_epoch_counts_before_its_first_append() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 0);
    assert!(r.become_leader(&state(0, 0, &[0]), 0));
    r.append_as_leader(1, batch(), Acks::Leader, 0, 0);
    assert!(r.become_leader(&state(0, 3, &[0]), 0));
    // Epoch 2 was never written; the log's latest (0) ends where epoch 3 starts.
    assert_eq!(leader_end_offset_for_epoch(&r.log, 2), Some((0, 1)));
    assert_eq!(leader_end_offset_for_epoch(&r.log, 0), Some((0, 1)));
    assert_eq!(r.leader_state().unwrap().epoch_start_offset, 1);
}

/// The topic's timestamp bounds reach the leader's validation: a CreateTime batch
/// further in the past than `message.timestamp.before.max.ms` is refused with
/// INVALID_TIMESTAMP and not appended; within the bound it is appended.
#[test]
fn the_topics_timestamp_bounds_refuse_a_batch_too_far_from_the_brokers_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 0);
    assert!(r.become_leader(&state(0, 0, &[0]), 0));
    r.set_message_timestamp_bounds(60_000, 60_000);
    let now = 1_000_000;
    let old = BatchBuilder::new(0).record(0, None, Some(b"v")).build();
    match r.append_as_leader(1, old, Acks::Leader, 0, now) {
        ProduceOutcome::Rejected(rejection) => assert_eq!(rejection.error_code, 32),
        _ => panic!("a batch 1000 s old was not refused"),
    }
    assert_eq!(r.log_end_offset(), 0);
    let recent = BatchBuilder::new(now as i64 - 1_000)
        .record(now as i64 - 1_000, None, Some(b"v"))
        .build();
    r.append_as_leader(2, recent, Acks::Leader, 0, now);
    assert_eq!(r.log_end_offset(), 1);
}

#[test]
fn stale_metadata_is_ignored_and_roles_follow_the_leader_id() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 1);
    assert!(r.become_follower(&state(0, 2, &[0, 1])));
    assert_eq!(r.leader(), 0);
    assert!(
        !r.become_follower(&state(2, 1, &[0, 1])),
        "older leader epoch"
    );
    assert!(
        !r.become_leader(&state(0, 3, &[0, 1]), 0),
        "not this broker"
    );
    assert!(r.become_follower(&state(NO_BROKER, 3, &[])));
    assert_eq!(r.role(), &Role::None);
    assert_eq!(r.fetch_request(1024), None);
}

#[test]
fn a_single_member_isr_commits_acks_all_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 0);
    r.config.min_insync_replicas = 1;
    r.become_leader(&state(0, 0, &[0]), 0);
    let out = r.append_as_leader(9, batch(), Acks::All, 100, 0);
    assert_eq!(
        out,
        ProduceOutcome::Completed(ProduceCompletion {
            request_id: 9,
            error_code: NONE,
            base_offset: 0
        })
    );
    assert_eq!(r.high_watermark(), 1);
}

// -----------------------------------------------------------------------------------------
// The consumer read rule (`read_for_consumer`), one test per case.

use crate::replication::{ConsumerFetch, ConsumerRead};
use crate::storage::BatchHeader;

fn consumer(fetch_offset: i64, current_leader_epoch: LeaderEpoch) -> ConsumerFetch {
    ConsumerFetch {
        fetch_offset,
        current_leader_epoch,
        max_bytes: 1 << 20,
    }
}

/// The (base, last) offsets of the batches in `records`.
fn spans(records: &Bytes) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = records.get(pos..).and_then(BatchHeader::parse) {
        out.push((h.base_offset, h.last_offset()));
        pos += h.size() as usize;
    }
    out
}

/// A leader of epoch 5 with ISR {0, 1}, three one-record batches (offsets 0..=2) and
/// follower 1 at offset 1: high watermark 1, log end offset 3.
fn leader_with_hw_below_leo(dir: &std::path::Path) -> Replica {
    let mut r = replica(dir, 0);
    assert!(r.become_leader(&state(0, 5, &[0, 1]), 0));
    for id in 0..3 {
        r.append_as_leader(id, batch(), Acks::Leader, 0, 0);
    }
    follower_fetches(&mut r, 1, 1, 5);
    assert_eq!((r.high_watermark(), r.log_end_offset()), (1, 3));
    r
}

fn follower_fetches(r: &mut Replica, follower: BrokerId, offset: i64, epoch: LeaderEpoch) {
    let req = FetchRequestPartition {
        replica_id: follower,
        replica_broker_epoch: UNKNOWN_BROKER_EPOCH,
        fetch_offset: offset,
        last_fetched_epoch: (offset > 0).then_some(epoch),
        current_leader_epoch: epoch,
        max_bytes: 1 << 20,
    };
    assert_eq!(r.handle_fetch_from_follower(&req, 0).error_code, NONE);
}

#[test]
fn a_consumer_read_at_a_follower_is_not_leader_or_follower() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 1);
    assert!(r.become_follower(&state(0, 5, &[0, 1])));
    assert_eq!(
        r.read_for_consumer(&consumer(0, 5)),
        ConsumerRead::Refused(NOT_LEADER_OR_FOLLOWER)
    );
}

#[test]
fn a_consumer_naming_an_older_leader_epoch_is_fenced() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    assert_eq!(
        r.read_for_consumer(&consumer(0, 4)),
        ConsumerRead::Refused(FENCED_LEADER_EPOCH)
    );
}

#[test]
fn a_consumer_naming_a_newer_leader_epoch_gets_unknown_leader_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    assert_eq!(
        r.read_for_consumer(&consumer(0, 6)),
        ConsumerRead::Refused(UNKNOWN_LEADER_EPOCH)
    );
}

#[test]
fn a_consumer_naming_no_leader_epoch_reads_from_the_leader_of_any() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    let read = r.read_for_consumer(&consumer(0, -1));
    let ConsumerRead::Read {
        error_code,
        leader_epoch,
        ref records,
        ..
    } = read
    else {
        panic!("refused: {read:?}");
    };
    assert_eq!((error_code, leader_epoch), (NONE, 5));
    assert_eq!(spans(records), vec![(0, 0)]);
}

#[test]
fn a_consumer_reads_only_whole_batches_below_the_high_watermark() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    let ConsumerRead::Read {
        error_code,
        high_watermark,
        log_start_offset,
        records,
        ..
    } = r.read_for_consumer(&consumer(0, 5))
    else {
        panic!("refused");
    };
    // Offsets 1 and 2 are in the log but not committed: the consumer does not see them.
    assert_eq!((error_code, high_watermark, log_start_offset), (NONE, 1, 0));
    assert_eq!(spans(&records), vec![(0, 0)]);
}

#[test]
fn a_batch_that_straddles_the_high_watermark_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 0);
    assert!(r.become_leader(&state(0, 5, &[0, 1]), 0));
    let three = BatchBuilder::new(0)
        .record(0, None, Some(b"a"))
        .record(0, None, Some(b"b"))
        .record(0, None, Some(b"c"))
        .build();
    r.append_as_leader(1, three, Acks::Leader, 0, 0);
    follower_fetches(&mut r, 1, 1, 5);
    assert_eq!((r.high_watermark(), r.log_end_offset()), (1, 3));
    let ConsumerRead::Read {
        error_code,
        records,
        ..
    } = r.read_for_consumer(&consumer(0, 5))
    else {
        panic!("refused");
    };
    assert_eq!(error_code, NONE);
    assert!(
        records.is_empty(),
        "offsets 1 and 2 would be read: {records:?}"
    );
}

#[test]
fn a_consumer_at_the_high_watermark_reads_nothing_yet() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    let ConsumerRead::Read {
        error_code,
        records,
        ..
    } = r.read_for_consumer(&consumer(1, 5))
    else {
        panic!("refused");
    };
    assert_eq!(error_code, NONE);
    assert!(records.is_empty());
}

#[test]
fn a_consumer_past_the_log_end_offset_is_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let r = leader_with_hw_below_leo(tmp.path());
    let read = r.read_for_consumer(&consumer(4, 5));
    assert!(read.is_error());
    let ConsumerRead::Read {
        error_code,
        high_watermark,
        records,
        ..
    } = read
    else {
        panic!("refused");
    };
    assert_eq!((error_code, high_watermark), (OFFSET_OUT_OF_RANGE, 1));
    assert!(records.is_empty());
    // Between the high watermark and the log end offset is in range (and reads nothing).
    assert!(!r.read_for_consumer(&consumer(3, 5)).is_error());
}

#[test]
fn a_consumer_below_the_log_start_offset_is_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = replica(tmp.path(), 0);
    r.log_mut().truncate_fully_and_start_at(10).unwrap();
    assert!(r.become_leader(&state(0, 5, &[0]), 0));
    let ConsumerRead::Read {
        error_code,
        log_start_offset,
        ..
    } = r.read_for_consumer(&consumer(9, 5))
    else {
        panic!("refused");
    };
    assert_eq!((error_code, log_start_offset), (OFFSET_OUT_OF_RANGE, 10));
}
