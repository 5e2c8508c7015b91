//! Property test: random appends (leader and follower), truncations, flushes, clean
//! reopenings and simulated power losses against a simple in-memory model of the log.
//!
//! Invariants checked after every step: reading from offset 0 returns exactly the modelled
//! batches (byte for byte, offsets stamped, consecutive), the log end offset matches, and
//! the leader-epoch cache equals the epoch changes derivable from the batches themselves.
//! After a simulated crash the model is cut to the offset the log claimed was flushed.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::batch::{BatchView, Batches, BatchesMut};
use super::builder::BatchBuilder;
use super::config::{FlushPolicy, LogConfig};
use super::epoch_cache::EpochEntry;
use super::log::PartitionLog;

#[derive(Debug, Clone)]
enum Op {
    /// Leader append of batches (records, payload bytes); optionally with a new epoch.
    Leader {
        batches: Vec<(u8, u16)>,
        bump: bool,
    },
    /// Follower append of one pre-stamped batch at the log end.
    Follower {
        records: u8,
        payload: u16,
        bump: bool,
    },
    /// Truncate to `LEO * num / 256`.
    Truncate(u8),
    Flush,
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (prop::collection::vec((1u8..5, 0u16..100), 1..4), any::<bool>())
            .prop_map(|(batches, bump)| Op::Leader { batches, bump }),
        2 => (1u8..5, 0u16..100, any::<bool>())
            .prop_map(|(records, payload, bump)| Op::Follower { records, payload, bump }),
        2 => any::<u8>().prop_map(Op::Truncate),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    last: i64,
    epoch: i32,
    bytes: Bytes,
}

fn producer_batch(records: u8, payload: u16, seed: i64) -> BytesMut {
    let mut b = BatchBuilder::new(seed).producer(7, 0, seed as i32);
    for i in 0..records {
        b = b.record(seed + i64::from(i), None, Some(&vec![i; payload as usize]));
    }
    b.build()
}

fn stamp(mut buf: BytesMut, base: i64, epoch: i32) -> Bytes {
    for item in BatchesMut::new(&mut buf, u64::MAX) {
        let (_, mut b) = item.expect("valid");
        b.set_base_offset(base);
        b.set_partition_leader_epoch(epoch);
    }
    buf.freeze()
}

fn expected_cache(model: &[ModelBatch]) -> Vec<EpochEntry> {
    let mut out: Vec<EpochEntry> = Vec::new();
    for b in model {
        if out.last().is_none_or(|e| e.epoch != b.epoch) {
            out.push(EpochEntry {
                epoch: b.epoch,
                start_offset: b.base,
            });
        }
    }
    out
}

fn check(log: &PartitionLog, model: &[ModelBatch]) -> Result<(), TestCaseError> {
    let leo = model.last().map_or(0, |b| b.last + 1);
    prop_assert_eq!(log.log_end_offset(), leo);
    prop_assert_eq!(log.log_start_offset(), 0);
    let mut got = Vec::new();
    let mut off = 0;
    while off < leo {
        let bytes = log
            .read(off, 700)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!bytes.is_empty());
        for b in Batches::new(bytes) {
            let b = b.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(b.base_offset(), off);
            off = b.last_offset() + 1;
            got.push(b.into_bytes());
        }
    }
    let want: Vec<Bytes> = model.iter().map(|b| b.bytes.clone()).collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(log.epoch_cache().entries(), &expected_cache(model)[..]);
    prop_assert_eq!(log.last_fetched_epoch(), model.last().map(|b| b.epoch));
    prop_assert!(log.flushed_offset() <= leo);
    Ok(())
}

fn policy() -> impl Strategy<Value = FlushPolicy> {
    prop_oneof![
        Just(FlushPolicy::EveryBatch),
        Just(FlushPolicy::Os),
        Just(FlushPolicy::EveryMessages(4)),
    ]
}

proptest! {
    // No failure persistence: regression files would land outside this module's directory.
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        ops in prop::collection::vec(op(), 1..30),
        segment_bytes in prop_oneof![Just(1600u64), Just(3000), Just(16384)],
        index_interval_bytes in prop_oneof![Just(64u64), Just(300)],
        flush_policy in policy(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig { segment_bytes, index_interval_bytes, max_batch_bytes: 1 << 20, flush_policy, oversized_batch_own_segment: false, ..LogConfig::default() };
        let mut log = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let mut model: Vec<ModelBatch> = Vec::new();
        let mut epoch = 0i32;
        let mut seed = 0i64;
        for op in ops {
            let leo = log.log_end_offset();
            match op {
                Op::Leader { batches, bump } => {
                    if bump { epoch += 1; }
                    let mut buf = BytesMut::new();
                    let mut next = leo;
                    let mut pending = Vec::new();
                    for (records, payload) in batches {
                        seed += 1;
                        let b = producer_batch(records, payload, seed);
                        let last = next + i64::from(records) - 1;
                        pending.push(ModelBatch { base: next, last, epoch, bytes: stamp(b.clone(), next, epoch) });
                        buf.extend_from_slice(&b);
                        next = last + 1;
                    }
                    let info = log.append_as_leader(buf, epoch).expect("leader append");
                    prop_assert_eq!(info.first_offset, leo);
                    prop_assert_eq!(info.last_offset, next - 1);
                    prop_assert_eq!(info.batches.len(), pending.len());
                    model.extend(pending);
                }
                Op::Follower { records, payload, bump } => {
                    if bump { epoch += 1; }
                    seed += 1;
                    let bytes = stamp(producer_batch(records, payload, seed), leo, epoch);
                    log.append_as_follower(bytes.clone()).expect("follower append");
                    model.push(ModelBatch { base: leo, last: leo + i64::from(records) - 1, epoch, bytes });
                }
                Op::Truncate(num) => {
                    let target = leo * i64::from(num) / 256;
                    let new_end = log.truncate_to(target).expect("truncate");
                    if target < leo {
                        let keep = model.iter().take_while(|b| b.last < target).count();
                        model.truncate(keep);
                    }
                    prop_assert_eq!(new_end, model.last().map_or(0, |b| b.last + 1));
                    prop_assert!(new_end <= target || target >= leo);
                }
                Op::Flush => {
                    log.flush().expect("flush");
                    prop_assert_eq!(log.flushed_offset(), leo);
                }
                Op::Reopen => {
                    drop(log);
                    log = PartitionLog::open(dir.path(), config.clone()).expect("reopen");
                }
                Op::Crash => {
                    let durable = log.flushed_offset();
                    if flush_policy == FlushPolicy::EveryBatch {
                        prop_assert_eq!(durable, leo);
                    }
                    let path = log.simulate_unclean_crash().expect("crash");
                    log = PartitionLog::open(&path, config.clone()).expect("recover");
                    let keep = model.iter().take_while(|b| b.last < durable).count();
                    model.truncate(keep);
                    prop_assert_eq!(log.log_end_offset(), durable);
                }
            }
            check(&log, &model)?;
        }
    }
}
