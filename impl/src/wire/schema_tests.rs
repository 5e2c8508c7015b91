//! Cross-checks between Osprey's request layout table and kafka-protocol.

use super::*;
use crate::wire::versions::SERVED_APIS;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use proptest::prelude::*;

#[test]
fn layouts_cover_exactly_the_served_apis_and_versions() {
    assert_eq!(LAYOUTS.len(), SERVED_APIS.len());
    for api in SERVED_APIS {
        let layout =
            request_layout(api.key as i16).unwrap_or_else(|| panic!("no layout for {:?}", api.key));
        assert_eq!(layout.api_key, api.key);
        assert_eq!(
            layout.valid_versions(),
            (api.min, api.max),
            "{}: layout versions differ from the served range",
            layout.name
        );
    }
}

#[test]
fn unknown_keys_and_versions_are_rejected() {
    assert_eq!(validate_request(-7, 0, &[]), Err(SchemaError::NoSchema(-7)));
    assert!(matches!(
        validate_request(ApiKey::Produce as i16, 2, &[]),
        Err(SchemaError::UnknownVersion { version: 2, .. })
    ));
}

#[test]
fn uvarint_matches_kafka_protocol_quirks() {
    let read = |b: &[u8]| Reader::new(b).uvarint();
    assert_eq!(read(&[0x00]), Ok(0));
    assert_eq!(read(&[0x96, 0x01]), Ok(150));
    assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok(u32::MAX));
    // A fifth byte with the continuation bit still ends the number; high bits drop.
    assert_eq!(read(&[0x80, 0x80, 0x80, 0x80, 0xff, 0x00]), Ok(0xf000_0000));
    assert!(read(&[0x80]).is_err());
}

#[test]
fn tagged_field_values_are_checked() {
    let hb = request_layout(ApiKey::BrokerHeartbeat as i16).unwrap();
    // BrokerHeartbeat v1: broker id, epoch, offset, want-fence, want-shutdown, then tags.
    let mut body = vec![
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0,
    ];
    let fixed = body.len();
    // Tag 0 (OfflineLogDirs) claiming a compact array of 2^28 uuids within 6 bytes.
    body.extend_from_slice(&[1, 0, 6, 0x81, 0x80, 0x80, 0x80, 0x01, 0]);
    assert!(matches!(
        hb.validate(1, &body),
        Err(SchemaError::ArrayTooLong {
            field: "offline_log_dirs",
            ..
        })
    ));
    // Tag 0 holding one uuid but declaring one byte too many.
    body.truncate(fixed);
    body.extend_from_slice(&[1, 0, 18, 2]);
    body.extend_from_slice(&[7; 16]);
    body.push(0);
    assert!(matches!(
        hb.validate(1, &body),
        Err(SchemaError::TaggedFieldSize {
            size: 18,
            used: 17,
            ..
        })
    ));
    // Unknown tags are skipped by size.
    body.truncate(fixed);
    body.extend_from_slice(&[1, 9, 3, 1, 2, 3]);
    assert_eq!(hb.validate(1, &body), Ok(body.len()));
}

#[test]
fn min_sizes() {
    let ctx = |version, flexible| Ctx { version, flexible };
    let topic = Kind::Struct(PRODUCE_TOPIC);
    // TopicProduceData v3: name (i16 len) + partitions array (i32 count).
    assert_eq!(ctx(3, false).min_size(&topic, false), 2 + 4);
    // v9 (flexible): compact name, compact array, tag count.
    assert_eq!(ctx(9, true).min_size(&topic, false), 1 + 1 + 1);
    // A nullable struct can be a lone marker byte.
    assert_eq!(ctx(9, true).min_size(&topic, true), 1);
}

// ---------------------------------------------------------------------------------------
// Layout-driven generation of valid bodies, to check that the table and the crate agree.

/// splitmix64: tiny, deterministic, good enough to pick shapes.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Ctx {
    fn put_len(self, kind: &Kind, out: &mut Vec<u8>, len: Option<usize>) {
        if self.flexible {
            put_uvarint(out, len.map_or(0, |l| l as u32 + 1));
        } else if matches!(kind, Kind::String) {
            out.extend_from_slice(&len.map_or(-1, |l| l as i16).to_be_bytes());
        } else {
            out.extend_from_slice(&len.map_or(-1, |l| l as i32).to_be_bytes());
        }
    }

    fn gen_struct(self, spec: &[Field], g: &mut Gen, out: &mut Vec<u8>, depth: u32) {
        let v = self.version;
        for f in spec {
            if f.versions.contains(v) && f.tag.is_none() {
                self.gen_value(&f.kind, f.nullable.contains(v), false, g, out, depth);
            }
        }
        if !self.flexible {
            return;
        }
        // Known tagged fields, each present half the time, in ascending tag order (the
        // crate's encoding order). Present values are never the crate's default (never
        // null, never empty), because the crate leaves default-valued tags out when it
        // re-encodes.
        let mut known: Vec<&Field> = spec
            .iter()
            .filter(|f| f.tag.is_some() && f.versions.contains(v))
            .collect();
        known.sort_by_key(|f| f.tag);
        let mut section = Vec::new();
        let mut count = 0;
        for f in known {
            if g.below(2) == 0 {
                continue;
            }
            let mut value = Vec::new();
            self.gen_value(&f.kind, false, true, g, &mut value, depth);
            put_uvarint(&mut section, f.tag.unwrap_or_default());
            put_uvarint(&mut section, value.len() as u32);
            section.extend_from_slice(&value);
            count += 1;
        }
        put_uvarint(out, count);
        out.extend_from_slice(&section);
    }

    fn gen_value(
        self,
        kind: &Kind,
        nullable: bool,
        non_empty: bool,
        g: &mut Gen,
        out: &mut Vec<u8>,
        depth: u32,
    ) {
        let null = nullable && g.below(4) == 0;
        let at_least = usize::from(non_empty);
        match kind {
            // bool and int8 share Fixed(1): 0/1 is canonical for both.
            Kind::Fixed(1) => out.push(g.below(2) as u8),
            Kind::Fixed(n) => (0..*n).for_each(|_| out.push(g.next() as u8)),
            Kind::String | Kind::Bytes if null => self.put_len(kind, out, None),
            Kind::String => {
                let len = at_least.max(g.below(7) as usize);
                self.put_len(kind, out, Some(len));
                (0..len).for_each(|_| out.push(b'a' + g.below(26) as u8));
            }
            Kind::Bytes => {
                let len = at_least.max(g.below(9) as usize);
                self.put_len(kind, out, Some(len));
                (0..len).for_each(|_| out.push(g.next() as u8));
            }
            Kind::Array(_) if null => self.put_len(kind, out, None),
            Kind::Array(elem) => {
                let len = if depth > 3 { 0 } else { g.below(4) as usize };
                let len = at_least.max(len);
                self.put_len(kind, out, Some(len));
                for _ in 0..len {
                    self.gen_value(elem, false, false, g, out, depth + 1);
                }
            }
            Kind::Struct(spec) => {
                if nullable {
                    if null {
                        out.push(0xff);
                        return;
                    }
                    out.push(1);
                }
                self.gen_struct(spec, g, out, depth + 1);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For every served API and version: a random body built from Osprey's layout table
    /// (known tagged fields included) is accepted by the walk, decoded by kafka-protocol
    /// using every byte, re-encoded to the same bytes, and any truncation of it is
    /// rejected by the walk.
    #[test]
    fn layouts_and_kafka_protocol_agree(seed in any::<u64>()) {
        for api in SERVED_APIS {
            let layout = request_layout(api.key as i16).unwrap();
            for v in api.min..=api.max {
                let ctx = Ctx { version: v, flexible: layout.is_flexible(v) };
                let mut g = Gen(seed ^ ((api.key as u64) << 32) ^ v as u64);
                let mut body = Vec::new();
                ctx.gen_struct(layout.root, &mut g, &mut body, 0);
                let what = format!("{} v{v} {body:02x?}", layout.name);

                prop_assert_eq!(layout.validate(v, &body), Ok(body.len()), "{}", what);
                let mut bytes = Bytes::from(body.clone());
                let decoded = RequestKind::decode(api.key, &mut bytes, v);
                prop_assert!(decoded.is_ok(), "{}: {:?}", what, decoded.err());
                prop_assert!(bytes.is_empty(), "{}: {} bytes left", what, bytes.len());
                // Every tag the generator emitted must be one the crate knows by that number:
                // a table tag the crate does not know would land here instead.
                let debug = format!("{:?}", decoded.as_ref().unwrap());
                prop_assert_eq!(
                    debug.matches("unknown_tagged_fields: {}").count(),
                    debug.matches("unknown_tagged_fields:").count(),
                    "{}: {}", what, debug
                );
                let mut out = BytesMut::new();
                decoded.unwrap().encode(&mut out, v).unwrap();
                prop_assert_eq!(&out[..], &body[..], "{}", what);

                for _ in 0..3 {
                    if body.is_empty() {
                        break;
                    }
                    let cut = g.below(body.len() as u64) as usize;
                    prop_assert!(layout.validate(v, &body[..cut]).is_err(), "{} cut {}", what, cut);
                }
            }
        }
    }
}
