//! A request frame as it comes off a client's socket (the size prefix already removed).

use bytes::Bytes;
use osprey_broker::wire::request::{decode_request, Decoded};

use crate::alloc::peak_during;

/// How many bytes of memory one byte of request may cost at most while it is decoded.
/// kafka-protocol turns a one- or two-byte array element (an empty compact struct) into a
/// struct of up to a few hundred bytes, so the factor is large; what matters is that it is
/// a factor: the schema walk refuses any count the frame cannot hold before anything is
/// allocated for it.
pub const BYTES_PER_FRAME_BYTE: usize = 512;

/// Fixed overhead of a decode (header strings, small maps).
pub const FIXED_BYTES: usize = 64 * 1024;

/// `decode_request` never panics, its memory is bounded by the frame's length, and what it
/// accepts names a served API version.
pub fn check(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let (decoded, peak) = peak_during(|| decode_request(frame));
    let bound = FIXED_BYTES + BYTES_PER_FRAME_BYTE * data.len();
    assert!(
        peak <= bound,
        "decoding a {}-byte frame took {peak} bytes at its peak (bound {bound})",
        data.len()
    );
    if let Ok(Decoded::Request { header, .. }) = decoded {
        let key = kafka_protocol::messages::ApiKey::try_from(header.request_api_key)
            .expect("a decoded request has a known api key");
        assert!(osprey_broker::wire::versions::is_served(
            key,
            header.request_api_version
        ));
    }
}
