//! Fuzz-style properties of the wire decoder: random bytes, hostile length prefixes,
//! and truncated or corrupted valid requests never panic the decoder, and never make it
//! allocate more than a small multiple of the input (nor, for frames, more than the
//! configured `socket.request.max.bytes`).
//!
//! Allocation is measured with a per-thread counting global allocator, so proptest
//! cases (which run on the test's own thread) are measured without interference from
//! other tests running in parallel.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::wire::{decode_request, encode_request, FrameReader, SERVED_APIS};
use proptest::prelude::*;

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns the peak number of bytes it had allocated at once on this thread.
fn peak_alloc<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, peak.max(0) as usize)
}

/// What decoding `len` bytes may allocate: decoded structs are larger than their wire
/// form (a 2-byte empty topic name becomes a ~72-byte struct), so a constant factor of
/// the input plus a fixed allowance for the decoder's own bookkeeping.
fn decode_budget(len: usize) -> usize {
    64 * len + 64 * 1024
}

fn assert_decode_is_bounded(frame: &[u8]) -> Result<(), TestCaseError> {
    let owned = Bytes::copy_from_slice(frame);
    let (result, peak) = peak_alloc(move || decode_request(owned).is_ok());
    prop_assert!(
        peak <= decode_budget(frame.len()),
        "decoding {} bytes allocated {} bytes (ok={}): {:02x?}",
        frame.len(),
        peak,
        result,
        &frame[..frame.len().min(64)]
    );
    Ok(())
}

/// A valid request frame body (no size prefix) for `key` at `version`, built with the
/// crate's types, with arrays populated so that corruption hits counts and lengths.
fn valid_request(key: ApiKey, version: i16) -> Option<Bytes> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let name = || TopicName(StrBytes::from_static_str("orders"));
    let body = match key {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"batch")))])]),
        ),
        ApiKey::Fetch => {
            RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(500).with_topics(
                vec![FetchTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![FetchPartition::default(); 2])],
            ))
        }
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name()));
                3
            ])))
        }
        ApiKey::ApiVersions => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("fuzz"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default().with_topic_names(vec![name(), name()]),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        _ => return None,
    };
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzzer")));
    let mut out = BytesMut::new();
    encode_request(&mut out, &header, &body).ok()?;
    Some(out.freeze().slice(4..))
}

fn served_key_version() -> impl Strategy<Value = (i16, i16)> {
    (0..SERVED_APIS.len()).prop_flat_map(|i| {
        let api = SERVED_APIS[i];
        (Just(api.key as i16), api.min..=api.max)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Completely random frames.
    #[test]
    fn random_bytes_never_panic_or_overallocate(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_decode_is_bounded(&frame)?;
    }

    /// A valid header prefix for a served API and version, then random bytes: this
    /// reaches the body decoder, where random i32/varint counts are huge.
    #[test]
    fn random_bodies_never_panic_or_overallocate(
        (key, version) in served_key_version(),
        client_id in proptest::option::of("[a-z]{0,8}"),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes());
        match &client_id {
            Some(id) => {
                frame.extend_from_slice(&(id.len() as i16).to_be_bytes());
                frame.extend_from_slice(id.as_bytes());
            }
            None => frame.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        let flexible_header = ApiKey::try_from(key).unwrap().request_header_version(version) >= 2;
        if flexible_header {
            frame.push(0);
        }
        frame.extend_from_slice(&body);
        assert_decode_is_bounded(&frame)?;
    }

    /// Valid requests, truncated anywhere or with a few bytes overwritten (which turns
    /// lengths and counts into hostile values).
    #[test]
    fn truncated_or_corrupted_valid_requests_never_panic_or_overallocate(
        (key, version) in served_key_version(),
        cut in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let key = ApiKey::try_from(key).unwrap();
        let Some(valid) = valid_request(key, version) else { return Ok(()); };
        prop_assert!(decode_request(valid.clone()).is_ok(), "{:?} v{} does not decode", key, version);
        let truncated = &valid[..cut.index(valid.len())];
        assert_decode_is_bounded(truncated)?;
        let mut corrupted = valid.to_vec();
        for (at, byte) in &edits {
            let i = at.index(corrupted.len());
            corrupted[i] = *byte;
        }
        assert_decode_is_bounded(&corrupted)?;
    }

    /// Frames with random size prefixes never make the reader allocate more than the
    /// configured maximum, nor more than it has received plus one initial chunk.
    #[test]
    fn frame_reader_allocation_is_bounded(
        size in any::<i32>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        const MAX: usize = 1 << 20;
        let mut input = size.to_be_bytes().to_vec();
        input.extend_from_slice(&body);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (result, peak) = peak_alloc(|| {
            rt.block_on(async {
                let mut reader = FrameReader::new(&input[..], MAX);
                reader.read_frame().await.map(|f| f.map(|f| f.len()))
            })
        });
        prop_assert!(peak <= MAX, "peak {} > max", peak);
        prop_assert!(peak <= body.len().max(64 * 1024) + 16 * 1024, "peak {} for {} bytes", peak, body.len());
        if let Ok(Some(len)) = result {
            prop_assert_eq!(len, size as usize);
        }
    }
}

/// Hostile counts crafted at the first array of every served API that has one at the
/// start of its body: the decoder must refuse them without allocating for them.
#[test]
fn hostile_counts_in_every_served_api() {
    for api in SERVED_APIS {
        for version in api.min..=api.max {
            for count in [
                &[0x7f, 0xff, 0xff, 0xff][..],       // i32::MAX
                &[0x03, 0x3c, 0x0c, 0x00][..],       // kafka-protocol-rs PR #152
                &[0xff, 0xff, 0xff, 0xff, 0x0f][..], // varint u32::MAX
                &[0x80, 0x80, 0x80, 0x80, 0x08][..], // varint 2^31
            ] {
                for prefix_len in 0..24 {
                    let mut frame = Vec::new();
                    frame.extend_from_slice(&(api.key as i16).to_be_bytes());
                    frame.extend_from_slice(&version.to_be_bytes());
                    frame.extend_from_slice(&1i32.to_be_bytes());
                    frame.extend_from_slice(&(-1i16).to_be_bytes());
                    if api.key.request_header_version(version) >= 2 {
                        frame.push(0);
                    }
                    // Put the count at every offset of a body of small, valid-looking
                    // fields, so it lands on each API's first few length prefixes.
                    frame.extend(std::iter::repeat_n(0u8, prefix_len));
                    frame.extend_from_slice(count);
                    frame.extend_from_slice(&[0u8; 8]);
                    let owned = Bytes::from(frame.clone());
                    let (_, peak) = peak_alloc(move || decode_request(owned).is_ok());
                    assert!(
                        peak <= decode_budget(frame.len()),
                        "{:?} v{version}: {peak} bytes for {frame:02x?}",
                        api.key
                    );
                }
            }
        }
    }
}
