//! Durability across a power cut, on the lazy filesystem (osprey-lazyfs): what a node made
//! durable must still be there after everything not fsynced is dropped. Regression tests
//! for what the fault campaign (`osprey nemesis`, power-cut faults) found: a partition
//! directory created without fsyncing its parent, and meta.properties written without any
//! fsync, vanished whole in a power cut — fsynced segments, checkpoints and the KRaft
//! `quorum-state` (a controller's vote) with them. Needs /dev/fuse and root.

use bytes::BytesMut;
use osprey_broker::node::meta_properties::format_or_check;
use osprey_broker::storage::{BatchBuilder, FlushPolicy, LogConfig, PartitionLog};
use osprey_lazyfs::Mount;

fn mount() -> (tempfile::TempDir, Mount) {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = Mount::new(dir.path(), 64 << 20, "power-cut-test")
        .expect("mounting the lazy filesystem (needs /dev/fuse and root)");
    (dir, m)
}

fn batch(records: usize) -> BytesMut {
    let mut b = BatchBuilder::new(1_000).producer(7, 0, 0);
    for i in 0..records {
        b = b.record(1_000 + i as i64, Some(b"k"), Some(b"value"));
    }
    b.build()
}

#[test]
fn a_new_partition_directory_and_its_flushed_records_survive_a_power_cut() {
    let (_dir, m) = mount();
    // The mount is the node's log.dirs; the partition directory is created by the log.
    let part = m.path().join("orders-0");
    let config = LogConfig {
        flush_policy: FlushPolicy::EveryBatch,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&part, config.clone()).expect("open");
    log.append_as_leader(batch(5), 0).expect("append");
    assert_eq!(log.flushed_offset(), 5, "flush every batch");
    drop(log);

    let report = m.control().crash();
    assert!(
        part.exists(),
        "the partition directory vanished in the power cut ({report:?})"
    );
    let log = PartitionLog::open(&part, config).expect("reopen");
    assert_eq!(log.log_end_offset(), 5, "fsynced records were lost");
}

#[test]
fn meta_properties_survive_a_power_cut() {
    let (_dir, m) = mount();
    let first = format_or_check(m.path(), Some("campaign"), 4).expect("format");
    m.control().crash();
    let again = format_or_check(m.path(), Some("campaign"), 4).expect("check");
    assert_eq!(
        first.directory_id, again.directory_id,
        "the directory was formatted anew: meta.properties was lost"
    );
}
