//! The abstraction function: from the broker's state (its [`Replica`]s over real
//! [`PartitionLog`]s, the controller, what producers were told) to the model's
//! [`StateView`], and a field-by-field diff of two views.
//!
//! Every place where the broker and the model represent the same thing differently is
//! bridged here, and only here; each bridge says why it is sound:
//!
//! 1. **Records.** Each model record id is the value of a one-record batch (see
//!    [`record_batch`]); the log is read back from storage and decoded to
//!    `(record id, batch leader epoch)` pairs.
//! 2. **Epoch start of a leader.** The model's leader adds `(leader epoch, log end offset)` to
//!    its epoch cache on BecomeLeader. The broker used to learn the epoch only at its first
//!    append (keeping the start in `LeaderState::epoch_start_offset`); replaying traces showed
//!    that this is not only a difference of representation: a leader that lost leadership
//!    before appending then fetched with an older last fetched epoch. The broker now assigns
//!    the epoch on becoming leader, as Kafka's `makeLeader` does, so no bridge is needed and
//!    the epoch cache is compared as stored.
//! 3. **Leader epoch after a restart.** The model keeps the leader epoch a broker last learned
//!    across a crash (shown while it is down and until it learns metadata again); a restarted
//!    broker's replica knows none (-1). The view shows the epoch its previous incarnation last
//!    learned, which the replay remembers ([`BrokerSlot::remembered_epoch`]).
//! 4. **Down brokers.** The model shows a crashed broker's log as it will be recovered. The
//!    replay recovers the log (`PartitionLog::open`) right after the crash and keeps it until
//!    Restart; nothing touches the directory in between, so recovering then or at restart is
//!    the same.
//! 5. **Empty epochs.** No bridge any more: the model's `EpochCache::assign` drops an epoch in
//!    which nothing was written when a later one starts at the same offset, as Kafka's
//!    `LeaderEpochFileCache.assign` and storage do, and the caches are compared as they are.
//! 6. **Flushed offset.** The model's flushed offset is what it guarantees durable: with
//!    `flush never`, nothing until a clean shutdown, and a truncation only lowers it. Storage
//!    fsyncs a truncation's cut, which makes the whole remaining log durable, so its flushed
//!    offset can be higher. The comparison requires the broker's to be at least the
//!    model's. (An unclean crash after such a truncation then keeps more than the model's
//!    `kept`: the log comparison reports it.)
//! 7. **Ids and epochs** are 0-based in both; broker-side `i32`/`i64` become the model's `u8`.

use bytes::BytesMut;
use osprey_broker::replication::{Replica, Role as BrokerRole};
use osprey_broker::storage::{BatchBuilder, BatchHeader, Batches, PartitionLog, BATCH_HEADER_LEN};
use osprey_model::state::RecordStatus;
use osprey_model::trace::{BrokerView, ControllerView, Role, StateView};

/// One broker as the replay holds it.
#[derive(Debug)]
pub enum BrokerNode {
    Up(Box<Replica>),
    /// Crashed: its recovered log, waiting for Restart.
    Down(PartitionLog),
}

/// A broker and the one fact the replay keeps for it across a restart (bridge 3).
#[derive(Debug)]
pub struct BrokerSlot {
    pub node: BrokerNode,
    /// The leader epoch the broker last learned before it crashed.
    pub remembered_epoch: i32,
}

/// The batch the replay produces for model record `record`: one record whose value is the
/// record id.
pub fn record_batch(record: u8) -> BytesMut {
    BatchBuilder::new(0)
        .record(0, None, Some(&[record]))
        .build()
}

/// Reads a whole log back as `(record id, leader epoch)` pairs, offset = position.
pub fn read_entries(log: &PartitionLog) -> Result<Vec<(u8, u8)>, String> {
    let bytes = log
        .read(log.log_start_offset(), usize::MAX / 2)
        .map_err(|e| format!("reading the log: {e}"))?;
    let mut out = Vec::new();
    for batch in Batches::new(bytes) {
        let batch = batch.map_err(|e| format!("decoding the log: {e}"))?;
        let raw = batch.bytes();
        let h = BatchHeader::parse(raw).ok_or("short batch header")?;
        let epoch = u8::try_from(h.partition_leader_epoch)
            .map_err(|_| format!("batch epoch {} out of range", h.partition_leader_epoch))?;
        let mut records = &raw[BATCH_HEADER_LEN..];
        for _ in 0..h.records_count {
            out.push((record_value(&mut records)?, epoch));
        }
    }
    Ok(out)
}

/// Decodes one uncompressed v2 record and returns its one-byte value (the model record id).
fn record_value(buf: &mut &[u8]) -> Result<u8, String> {
    let len = varint(buf)?;
    let len = usize::try_from(len).map_err(|_| "negative record length")?;
    if buf.len() < len {
        return Err("truncated record".into());
    }
    let (record, rest) = buf.split_at(len);
    *buf = rest;
    let mut rec = record.get(1..).ok_or("empty record")?; // past the attributes
    varint(&mut rec)?; // timestamp delta
    varint(&mut rec)?; // offset delta
    let key_len = varint(&mut rec)?;
    if key_len > 0 {
        rec = rec.get(key_len as usize..).ok_or("truncated key")?;
    }
    let value_len = varint(&mut rec)?;
    if value_len != 1 || rec.is_empty() {
        return Err(format!(
            "record value of length {value_len}: not a model record"
        ));
    }
    Ok(rec[0])
}

/// A zigzag varint (records use Kafka's signed varints).
fn varint(buf: &mut &[u8]) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some((&b, rest)) = buf.split_first() else {
            return Err("truncated varint".into());
        };
        *buf = rest;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err("varint too long".into())
}

/// The view of one broker.
pub fn broker_view(id: u8, slot: &BrokerSlot) -> Result<BrokerView, String> {
    let log = match &slot.node {
        BrokerNode::Up(r) => r.log(),
        BrokerNode::Down(log) => log,
    };
    let entries = read_entries(log)?;
    let epoch_cache: Vec<(u8, u8)> = log
        .epoch_cache()
        .entries()
        .iter()
        .map(|e| (e.epoch as u8, e.start_offset as u8))
        .collect();
    let mut view = BrokerView {
        id,
        role: Role::Down,
        leader: None,
        leader_epoch: slot.remembered_epoch.max(0) as u8,
        log: entries,
        log_end_offset: log.log_end_offset() as u8,
        high_watermark: log.high_watermark() as u8,
        flushed_offset: log.flushed_offset() as u8,
        epoch_cache: vec![],
        isr: vec![],
        pending_isr: None,
        partition_epoch: 0,
    };
    if let BrokerNode::Up(r) = &slot.node {
        if r.leader_epoch() >= 0 {
            view.leader_epoch = r.leader_epoch() as u8;
        }
        let leader = r.leader();
        view.leader = (leader >= 0).then_some(leader as u8);
        view.role = match r.role() {
            BrokerRole::None => Role::None,
            BrokerRole::Follower { .. } => Role::Follower,
            BrokerRole::Leader(l) => {
                view.isr = sorted(l.isr.iter().copied());
                view.pending_isr = l
                    .pending_isr
                    .as_ref()
                    .map(|p| sorted(p.isr.iter().copied()));
                view.partition_epoch = l.partition_epoch as u8;
                Role::Leader
            }
        };
    }
    view.epoch_cache = epoch_cache;
    Ok(view)
}

fn sorted(ids: impl Iterator<Item = i32>) -> Vec<u8> {
    let mut v: Vec<u8> = ids.map(|b| b as u8).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The whole view: every broker, the controller's view, and what producers were told.
pub fn state_view(
    brokers: &[BrokerSlot],
    controller: ControllerView,
    records: &[RecordStatus],
) -> Result<StateView, String> {
    let brokers = brokers
        .iter()
        .enumerate()
        .map(|(i, s)| broker_view(i as u8, s))
        .collect::<Result<_, _>>()?;
    Ok(StateView {
        brokers,
        controller,
        records: records.to_vec(),
    })
}

/// Field-by-field differences between the model's view and the broker's, one line each
/// (`broker 1 high_watermark: model 2, broker 1`). Empty when they agree.
pub fn diff(model: &StateView, broker: &StateView) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: String, m: String, b: String| {
        if m != b {
            out.push(format!("{what}: model {m}, broker {b}"));
        }
    };
    for (m, b) in model.brokers.iter().zip(&broker.brokers) {
        let p = format!("broker {}", m.id);
        field(format!("{p} role"), fmt(&m.role), fmt(&b.role));
        field(format!("{p} leader"), fmt(&m.leader), fmt(&b.leader));
        field(
            format!("{p} leader_epoch"),
            fmt(&m.leader_epoch),
            fmt(&b.leader_epoch),
        );
        field(format!("{p} log"), fmt(&m.log), fmt(&b.log));
        field(
            format!("{p} log_end_offset"),
            fmt(&m.log_end_offset),
            fmt(&b.log_end_offset),
        );
        field(
            format!("{p} high_watermark"),
            fmt(&m.high_watermark),
            fmt(&b.high_watermark),
        );
        // Bridge 6: the broker may have made more durable than the model requires.
        if b.flushed_offset < m.flushed_offset {
            field(
                format!("{p} flushed_offset (at least)"),
                fmt(&m.flushed_offset),
                fmt(&b.flushed_offset),
            );
        }
        field(
            format!("{p} epoch_cache"),
            fmt(&m.epoch_cache),
            fmt(&b.epoch_cache),
        );
        field(format!("{p} isr"), fmt(&m.isr), fmt(&b.isr));
        field(
            format!("{p} pending_isr"),
            fmt(&m.pending_isr),
            fmt(&b.pending_isr),
        );
        field(
            format!("{p} partition_epoch"),
            fmt(&m.partition_epoch),
            fmt(&b.partition_epoch),
        );
    }
    if model.brokers.len() != broker.brokers.len() {
        field(
            "brokers".into(),
            model.brokers.len().to_string(),
            broker.brokers.len().to_string(),
        );
    }
    let (mc, bc) = (&model.controller, &broker.controller);
    field("controller leader".into(), fmt(&mc.leader), fmt(&bc.leader));
    field(
        "controller leader_epoch".into(),
        fmt(&mc.leader_epoch),
        fmt(&bc.leader_epoch),
    );
    field(
        "controller partition_epoch".into(),
        fmt(&mc.partition_epoch),
        fmt(&bc.partition_epoch),
    );
    field("controller isr".into(), fmt(&mc.isr), fmt(&bc.isr));
    field("controller elr".into(), fmt(&mc.elr), fmt(&bc.elr));
    field("controller fenced".into(), fmt(&mc.fenced), fmt(&bc.fenced));
    field(
        "controller offline_logs".into(),
        fmt(&mc.offline_logs),
        fmt(&bc.offline_logs),
    );
    for (i, (m, b)) in model.records.iter().zip(&broker.records).enumerate() {
        field(format!("record {}", i + 1), fmt(m), fmt(b));
    }
    out
}

fn fmt(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_zigzag() {
        for (bytes, v) in [
            (&[0u8][..], 0i64),
            (&[1], -1),
            (&[2], 1),
            (&[0x96, 0x01], 75),
        ] {
            let mut b = bytes;
            assert_eq!(varint(&mut b).unwrap(), v);
            assert!(b.is_empty());
        }
        assert!(varint(&mut &[0x80u8][..]).is_err());
    }

    #[test]
    fn a_log_reads_back_as_record_ids_and_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(tmp.path(), Default::default()).unwrap();
        log.append_as_leader(record_batch(3), 0).unwrap();
        log.append_as_leader(record_batch(1), 2).unwrap();
        assert_eq!(read_entries(&log).unwrap(), vec![(3, 0), (1, 2)]);
    }
}
