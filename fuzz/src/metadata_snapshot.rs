//! A KRaft metadata snapshot, as a controller or broker reads it from its own disk or
//! receives it chunk by chunk from the active controller (FetchSnapshot).

use bytes::Bytes;
use osprey_broker::controller::image::MetadataImage;
use osprey_broker::node::metadata_snapshot::{decode, encode};
use osprey_broker::quorum::SnapshotId;

use crate::alloc::peak_during;

/// The snapshot id the input is read as: the one real snapshots in the seed corpus carry
/// (a header naming another id must be refused, which the fuzzer reaches by mutation).
pub const ID: SnapshotId = SnapshotId {
    end_offset: 42,
    epoch: 3,
};

/// Decoding never panics and takes memory bounded by the snapshot's size; what decodes
/// builds a metadata image, and encoding those records again gives a snapshot that decodes
/// to the same records (the reader and the writer agree).
pub fn check(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let (decoded, peak) = peak_during(|| decode(ID, bytes, "fuzz input"));
    let bound = (1 << 20) + 512 * data.len();
    assert!(
        peak <= bound,
        "decoding a {}-byte snapshot took {peak} bytes (bound {bound})",
        data.len()
    );
    let Ok(records) = decoded else { return };
    let _image = MetadataImage::from_snapshot(ID.end_offset, &records);
    let again = encode(ID, &records).expect("decoded records encode");
    let round = decode(ID, again, "re-encoded").expect("a re-encoded snapshot decodes");
    assert_eq!(round, records, "encode then decode gives the same records");
}
