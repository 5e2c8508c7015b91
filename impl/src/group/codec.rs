//! Osprey's encoding of the records it writes to `__consumer_offsets`.
//!
//! Kafka's own OffsetCommitKey/Value schemas are not part of the client protocol, so
//! Osprey defines its own: small, big-endian, versioned, and documented here. Every key
//! starts with a `u16` record type, every value with a `u16` value version, so a later
//! Osprey can add types and versions while still reading old logs. The topic is
//! compacted by key: the latest value for a key wins, and an **empty value is a
//! tombstone** (the key's state is deleted).
//!
//! Primitive encodings: `str` = `i16` length then UTF-8 bytes (length -1 = null);
//! `bytes` = `i32` length then bytes.
//!
//! | record | key | value (version 0) |
//! |---|---|---|
//! | committed offset | `u16 0`, `str group`, `str topic`, `i32 partition` | `u16 0`, `i64 offset`, `i32 leader_epoch`, `str metadata` (nullable), `i64 commit_timestamp_ms` |
//! | group metadata | `u16 1`, `str group` | `u16 0`, `i32 generation`, `str protocol_type`, `str protocol` (nullable), `str leader` (nullable), `i32 member_count`, then per member: `str member_id`, `str client_id`, `str client_host`, `i32 session_timeout_ms`, `i32 rebalance_timeout_ms`, `bytes subscription`, `bytes assignment` |
//!
//! A group-metadata value describes the group as of its latest generation: an Empty
//! group is written with no members, so a coordinator loading the log after failover
//! knows the group and its generation even when no one is in it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Record type of a committed-offset key.
const OFFSET_KEY: u16 = 0;
/// Record type of a group-metadata key.
const GROUP_KEY: u16 = 1;
/// The only value version written so far.
const VALUE_V0: u16 = 0;

/// Why a record cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record ended early.
    #[error("record truncated")]
    Truncated,
    /// A key of a record type this version of Osprey does not know.
    #[error("unknown record type {0}")]
    UnknownType(u16),
    /// A value version this version of Osprey does not know.
    #[error("unknown value version {0}")]
    UnknownVersion(u16),
    /// A string that is not UTF-8, or a negative length other than -1.
    #[error("malformed string or length")]
    Malformed,
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// The committed offset of one partition for one group.
    Offset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition of `topic`.
        partition: i32,
    },
    /// The membership and generation of one group.
    Group {
        /// The group.
        group: String,
    },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The next offset the group will consume.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, or -1 when unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
    /// When the coordinator accepted the commit.
    pub commit_timestamp_ms: i64,
}

/// One member as stored in a group-metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// The member id the coordinator assigned.
    pub member_id: String,
    /// The client.id of the member's client.
    pub client_id: String,
    /// The member's address as the broker saw it.
    pub client_host: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` for Java consumers (the JoinGroup rebalance timeout).
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave the member.
    pub assignment: Bytes,
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// The generation.
    pub generation: i32,
    /// The protocol type (`consumer` for consumers; empty for offset-only groups).
    pub protocol_type: String,
    /// The selected protocol (assignor), when the group has members.
    pub protocol: Option<String>,
    /// The leader's member id, when the group has members.
    pub leader: Option<String>,
    /// The members of the generation.
    pub members: Vec<StoredMember>,
}

/// A decoded record: its key and its value, `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A committed offset or its tombstone.
    Offset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset, `None` for a tombstone.
        value: Option<OffsetValue>,
    },
    /// Group metadata or its tombstone.
    Group {
        /// The group.
        group: String,
        /// The group, `None` for a tombstone.
        value: Option<GroupValue>,
    },
}

fn put_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_i16(-1),
        Some(s) => {
            // Kafka limits these strings (group ids, topic names, member ids) to i16 lengths
            // on the wire, so they always fit; clamp rather than panic if one does not.
            let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            buf.put_i16(bytes.len() as i16);
            buf.put_slice(bytes);
        }
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    let len = b.len().min(i32::MAX as usize);
    buf.put_i32(len as i32);
    buf.put_slice(&b[..len]);
}

fn need(buf: &Bytes, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        Err(CodecError::Truncated)
    } else {
        Ok(())
    }
}

fn get_u16(buf: &mut Bytes) -> Result<u16, CodecError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

fn get_i32(buf: &mut Bytes) -> Result<i32, CodecError> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Result<i64, CodecError> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_nullable_str(buf: &mut Bytes) -> Result<Option<String>, CodecError> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| CodecError::Malformed)?;
    need(buf, len)?;
    let raw = buf.split_to(len);
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| CodecError::Malformed)
}

fn get_str(buf: &mut Bytes) -> Result<String, CodecError> {
    get_nullable_str(buf)?.ok_or(CodecError::Malformed)
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, CodecError> {
    let len = usize::try_from(get_i32(buf)?).map_err(|_| CodecError::Malformed)?;
    need(buf, len)?;
    Ok(buf.split_to(len))
}

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut buf = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            buf.put_u16(OFFSET_KEY);
            put_str(&mut buf, Some(group));
            put_str(&mut buf, Some(topic));
            buf.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            buf.put_u16(GROUP_KEY);
            put_str(&mut buf, Some(group));
        }
    }
    buf.freeze()
}

/// Encodes a committed offset value.
pub fn encode_offset_value(value: &OffsetValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u16(VALUE_V0);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_str(&mut buf, value.metadata.as_deref());
    buf.put_i64(value.commit_timestamp_ms);
    buf.freeze()
}

/// Encodes a group-metadata value.
pub fn encode_group_value(value: &GroupValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u16(VALUE_V0);
    buf.put_i32(value.generation);
    put_str(&mut buf, Some(&value.protocol_type));
    put_str(&mut buf, value.protocol.as_deref());
    put_str(&mut buf, value.leader.as_deref());
    buf.put_i32(value.members.len() as i32);
    for m in &value.members {
        put_str(&mut buf, Some(&m.member_id));
        put_str(&mut buf, Some(&m.client_id));
        put_str(&mut buf, Some(&m.client_host));
        buf.put_i32(m.session_timeout_ms);
        buf.put_i32(m.rebalance_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

/// Decodes a key.
pub fn decode_key(mut key: Bytes) -> Result<RecordKey, CodecError> {
    match get_u16(&mut key)? {
        OFFSET_KEY => Ok(RecordKey::Offset {
            group: get_str(&mut key)?,
            topic: get_str(&mut key)?,
            partition: get_i32(&mut key)?,
        }),
        GROUP_KEY => Ok(RecordKey::Group {
            group: get_str(&mut key)?,
        }),
        other => Err(CodecError::UnknownType(other)),
    }
}

fn value_version(value: &mut Bytes) -> Result<(), CodecError> {
    match get_u16(value)? {
        VALUE_V0 => Ok(()),
        other => Err(CodecError::UnknownVersion(other)),
    }
}

/// Decodes an offset value.
pub fn decode_offset_value(mut value: Bytes) -> Result<OffsetValue, CodecError> {
    value_version(&mut value)?;
    Ok(OffsetValue {
        offset: get_i64(&mut value)?,
        leader_epoch: get_i32(&mut value)?,
        metadata: get_nullable_str(&mut value)?,
        commit_timestamp_ms: get_i64(&mut value)?,
    })
}

/// Decodes a group-metadata value.
pub fn decode_group_value(mut value: Bytes) -> Result<GroupValue, CodecError> {
    value_version(&mut value)?;
    let generation = get_i32(&mut value)?;
    let protocol_type = get_str(&mut value)?;
    let protocol = get_nullable_str(&mut value)?;
    let leader = get_nullable_str(&mut value)?;
    let count = usize::try_from(get_i32(&mut value)?).map_err(|_| CodecError::Malformed)?;
    // Each member takes at least 24 bytes: never trust the count for the allocation.
    let mut members = Vec::with_capacity(count.min(value.remaining() / 24));
    for _ in 0..count {
        members.push(StoredMember {
            member_id: get_str(&mut value)?,
            client_id: get_str(&mut value)?,
            client_host: get_str(&mut value)?,
            session_timeout_ms: get_i32(&mut value)?,
            rebalance_timeout_ms: get_i32(&mut value)?,
            subscription: get_bytes(&mut value)?,
            assignment: get_bytes(&mut value)?,
        });
    }
    Ok(GroupValue {
        generation,
        protocol_type,
        protocol,
        leader,
        members,
    })
}

/// Decodes a whole record; an empty value is a tombstone.
pub fn decode_record(key: Bytes, value: Bytes) -> Result<Record, CodecError> {
    let tombstone = value.is_empty();
    match decode_key(key)? {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => Ok(Record::Offset {
            group,
            topic,
            partition,
            value: if tombstone {
                None
            } else {
                Some(decode_offset_value(value)?)
            },
        }),
        RecordKey::Group { group } => Ok(Record::Group {
            group,
            value: if tombstone {
                None
            } else {
                Some(decode_group_value(value)?)
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupValue {
        GroupValue {
            generation: 7,
            protocol_type: "consumer".into(),
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            members: vec![StoredMember {
                member_id: "c-1".into(),
                client_id: "c".into(),
                client_host: "/10.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 300_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        }
    }

    #[test]
    fn offset_record_round_trips() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 5,
            metadata: None,
            commit_timestamp_ms: 1000,
        };
        let k = encode_key(&key);
        // u16 type, i16 len + "g", i16 len + "t", i32 partition.
        assert_eq!(&k[..], &[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(decode_key(k.clone()).unwrap(), key);
        let v = encode_offset_value(&value);
        assert_eq!(decode_offset_value(v.clone()).unwrap(), value);
        assert_eq!(
            decode_record(k, v).unwrap(),
            Record::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(value)
            }
        );
    }

    #[test]
    fn group_record_round_trips_and_empty_value_is_a_tombstone() {
        let key = RecordKey::Group { group: "g".into() };
        let v = encode_group_value(&group_value());
        assert_eq!(decode_group_value(v).unwrap(), group_value());
        assert_eq!(
            decode_record(encode_key(&key), Bytes::new()).unwrap(),
            Record::Group {
                group: "g".into(),
                value: None
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let v = encode_group_value(&group_value());
        for cut in 0..v.len() {
            assert!(decode_group_value(v.slice(..cut)).is_err(), "cut {cut}");
        }
        let k = encode_key(&RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        });
        for cut in 0..k.len() {
            assert!(decode_key(k.slice(..cut)).is_err());
        }
    }

    #[test]
    fn unknown_types_and_versions_are_reported() {
        assert_eq!(
            decode_key(Bytes::from_static(&[0, 9])),
            Err(CodecError::UnknownType(9))
        );
        assert_eq!(
            decode_offset_value(Bytes::from_static(&[0, 1, 0])),
            Err(CodecError::UnknownVersion(1))
        );
        // A huge member count with no bytes behind it fails without allocating for it.
        let mut v = BytesMut::new();
        v.put_u16(0);
        v.put_i32(1);
        put_str(&mut v, Some("consumer"));
        put_str(&mut v, None);
        put_str(&mut v, None);
        v.put_i32(i32::MAX);
        assert_eq!(decode_group_value(v.freeze()), Err(CodecError::Truncated));
    }

    proptest::proptest! {
        /// The log is input from disk and other brokers: any bytes decode to a record or
        /// an error, never a panic or an allocation driven by a forged count.
        #[test]
        fn arbitrary_bytes_never_panic(key in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                                       value in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = decode_record(Bytes::from(key), Bytes::from(value));
        }

        #[test]
        fn offset_values_round_trip(offset in proptest::num::i64::ANY, epoch in proptest::num::i32::ANY,
                                    metadata in proptest::option::of("[a-z]{0,20}"), ts in proptest::num::i64::ANY) {
            let v = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp_ms: ts };
            proptest::prop_assert_eq!(decode_offset_value(encode_offset_value(&v)).unwrap(), v);
        }
    }
}
