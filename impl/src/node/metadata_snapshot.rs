//! KRaft metadata snapshots on disk (KIP-630): one file per snapshot in the metadata log's
//! directory, named as Kafka names them, `<20-digit end offset>-<10-digit epoch>.checkpoint`.
//!
//! A snapshot holds the metadata image as records ([`MetadataImage::image_records`]) in
//! ordinary record batches (the metadata log's own encoding, [`encode_batch`]), between a
//! `SnapshotHeader` record naming its id and a `SnapshotFooter` record counting the records
//! between them. Batches are numbered from offset 0 and stamped with the snapshot's epoch.
//!
//! A snapshot is written to `<name>.part`, fsynced, and renamed into place (then the
//! directory is fsynced), so a complete name always holds a complete file; a leftover
//! `.part` file (a crash while writing or fetching) is deleted when the log is opened. A
//! complete name whose content does not decode, or whose header or footer disagrees, is an
//! error naming the file and what is wrong.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};

use kafka_protocol::messages::{
    fetch_snapshot_request, BrokerId, FetchSnapshotRequest, FetchSnapshotResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata_log::{decode_batches, encode_batch, split_batches, METADATA_TOPIC};
use crate::controller::image::MetadataImage;
use crate::controller::records::MetadataRecord;
use crate::quorum::{Batch, SnapshotId};
use crate::storage::PartitionLog;

/// Records per batch in a snapshot file.
const RECORDS_PER_BATCH: usize = 512;
const SUFFIX: &str = ".checkpoint";
const PARTIAL_SUFFIX: &str = ".part";

/// Kafka's snapshot file name for `id`.
pub fn file_name(id: SnapshotId) -> String {
    format!("{:020}-{:010}{SUFFIX}", id.end_offset, id.epoch)
}

/// The path of snapshot `id` in `dir`.
pub fn path(dir: &Path, id: SnapshotId) -> PathBuf {
    dir.join(file_name(id))
}

/// The path a snapshot is written or fetched to before it is complete.
pub fn partial_path(dir: &Path, id: SnapshotId) -> PathBuf {
    dir.join(format!("{}{PARTIAL_SUFFIX}", file_name(id)))
}

/// The id a complete snapshot file name stands for.
pub fn parse_file_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (end, epoch) = stem.split_once('-')?;
    if end.len() != 20 || epoch.len() != 10 {
        return None;
    }
    if !end.bytes().chain(epoch.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(SnapshotId {
        end_offset: end.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}

/// The ids of the complete snapshots in `dir`, oldest first.
pub fn list(dir: &Path) -> anyhow::Result<Vec<SnapshotId>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => bail!("cannot list {}: {e}", dir.display()),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_file_name) {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}

/// Deletes leftover partial snapshots (`*.checkpoint.part`) in `dir`; returns how many.
pub fn delete_partials(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(&format!("{SUFFIX}{PARTIAL_SUFFIX}")) {
            tracing::warn!(file = %entry.path().display(), "deleting a partial snapshot");
            fs::remove_file(entry.path())
                .with_context(|| format!("deleting {}", entry.path().display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deletes every complete snapshot in `dir` older than `keep`.
pub fn delete_older(dir: &Path, keep: SnapshotId) -> anyhow::Result<()> {
    for id in list(dir)? {
        if id < keep {
            let p = path(dir, id);
            fs::remove_file(&p).with_context(|| format!("deleting {}", p.display()))?;
        }
    }
    Ok(())
}

/// The bytes of snapshot `id` holding `records`.
pub fn encode(id: SnapshotId, records: &[MetadataRecord]) -> anyhow::Result<Bytes> {
    let mut all = Vec::with_capacity(records.len() + 2);
    all.push(MetadataRecord::SnapshotHeader {
        end_offset: id.end_offset,
        epoch: id.epoch,
    });
    all.extend_from_slice(records);
    all.push(MetadataRecord::SnapshotFooter {
        records: records.len() as u64,
    });
    let mut out = BytesMut::new();
    let mut base = 0i64;
    for chunk in all.chunks(RECORDS_PER_BATCH) {
        let mut b = encode_batch(chunk, 0)?;
        // The base offset and the partition leader epoch lie outside the batch CRC.
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[12..16].copy_from_slice(&id.epoch.to_be_bytes());
        out.extend_from_slice(&b);
        base += chunk.len() as i64;
    }
    Ok(out.freeze())
}

/// The records of snapshot `id` in `bytes` (header and footer checked and removed).
pub fn decode(id: SnapshotId, bytes: Bytes, what: &str) -> anyhow::Result<Vec<MetadataRecord>> {
    let whole: usize = split_batches(&bytes)
        .iter()
        .map(|b: &Batch| b.data.len())
        .sum();
    if whole != bytes.len() {
        bail!(
            "snapshot {what} is cut or corrupt: {} of its {} bytes are whole record batches",
            whole,
            bytes.len()
        );
    }
    let mut records: Vec<MetadataRecord> = decode_batches(bytes)
        .with_context(|| format!("snapshot {what}"))?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    match records.first() {
        Some(&MetadataRecord::SnapshotHeader { end_offset, epoch })
            if end_offset == id.end_offset && epoch == id.epoch => {}
        Some(&MetadataRecord::SnapshotHeader { end_offset, epoch }) => bail!(
            "snapshot {what}: its header names snapshot {end_offset}-{epoch}, not {}-{}",
            id.end_offset,
            id.epoch
        ),
        _ => bail!("snapshot {what} does not start with a snapshot header record"),
    }
    let Some(&MetadataRecord::SnapshotFooter { records: n }) = records.last() else {
        bail!("snapshot {what} does not end with a snapshot footer record (cut short?)");
    };
    if n as usize != records.len() - 2 {
        bail!(
            "snapshot {what}: its footer counts {n} records, the file holds {}",
            records.len() - 2
        );
    }
    records.pop();
    records.remove(0);
    Ok(records)
}

/// Writes snapshot `id` of `records` into `dir`: to the partial file, fsynced, renamed into
/// place, the directory fsynced. Returns its size in bytes.
pub fn write(dir: &Path, id: SnapshotId, records: &[MetadataRecord]) -> anyhow::Result<u64> {
    let bytes = encode(id, records)?;
    let part = partial_path(dir, id);
    {
        let mut f =
            fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("writing {}", part.display()))?;
        f.sync_all()
            .with_context(|| format!("fsyncing {}", part.display()))?;
    }
    complete(dir, id)?;
    Ok(bytes.len() as u64)
}

/// Renames the (fsynced) partial file of `id` to its complete name and fsyncs `dir`.
pub fn complete(dir: &Path, id: SnapshotId) -> anyhow::Result<()> {
    let part = partial_path(dir, id);
    let done = path(dir, id);
    fs::rename(&part, &done)
        .with_context(|| format!("renaming {} to {}", part.display(), done.display()))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsyncing {}", dir.display()))?;
    Ok(())
}

/// Reads and checks the snapshot file `file` of `id`.
pub fn read_file(file: &Path, id: SnapshotId) -> anyhow::Result<Vec<MetadataRecord>> {
    let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    decode(id, Bytes::from(bytes), &file.display().to_string())
}

/// Reads and checks snapshot `id` of `dir`.
pub fn read(dir: &Path, id: SnapshotId) -> anyhow::Result<Vec<MetadataRecord>> {
    read_file(&path(dir, id), id)
}

/// The latest complete snapshot in `dir` and the image it holds, if there is one.
pub fn load_latest(dir: &Path) -> anyhow::Result<Option<(SnapshotId, MetadataImage)>> {
    let Some(&id) = list(dir)?.last() else {
        return Ok(None);
    };
    let records = read(dir, id)?;
    Ok(Some((
        id,
        MetadataImage::from_snapshot(id.end_offset, &records),
    )))
}

/// What a FetchSnapshot at a position finds in a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// No such snapshot here (SNAPSHOT_NOT_FOUND).
    NotFound,
    /// The position is outside the snapshot (POSITION_OUT_OF_RANGE).
    OutOfRange { size: u64 },
    /// Up to the requested bytes from the position, and the snapshot's whole size.
    Data { size: u64, bytes: Bytes },
}

/// Up to `max` bytes of snapshot `id` from `position`.
pub fn read_chunk(dir: &Path, id: SnapshotId, position: i64, max: usize) -> anyhow::Result<Chunk> {
    let p = path(dir, id);
    let mut f = match fs::File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Chunk::NotFound),
        Err(e) => bail!("opening {}: {e}", p.display()),
    };
    let size = f
        .metadata()
        .with_context(|| format!("stat {}", p.display()))?
        .len();
    if position < 0 || position as u64 > size {
        return Ok(Chunk::OutOfRange { size });
    }
    let n = (size - position as u64).min(max as u64) as usize;
    let mut buf = vec![0u8; n];
    f.seek(SeekFrom::Start(position as u64))
        .and_then(|_| f.read_exact(&mut buf))
        .with_context(|| format!("reading {}", p.display()))?;
    Ok(Chunk::Data {
        size,
        bytes: Bytes::from(buf),
    })
}

/// One chunk of a FetchSnapshot answer, as the fetcher reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedChunk {
    pub error_code: i16,
    pub epoch: i32,
    pub leader: Option<i32>,
    pub size: i64,
    pub position: i64,
    pub bytes: Bytes,
}

/// FetchSnapshot (API key 59) of `__cluster_metadata-0`'s snapshot `id` from `position`.
pub fn fetch_snapshot_request(
    replica_id: i32,
    epoch: i32,
    id: SnapshotId,
    position: i64,
    max_bytes: i32,
) -> FetchSnapshotRequest {
    FetchSnapshotRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_max_bytes(max_bytes)
        .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
            .with_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![
                fetch_snapshot_request::PartitionSnapshot::default()
                    .with_partition(0)
                    .with_current_leader_epoch(epoch)
                    .with_snapshot_id(
                        fetch_snapshot_request::SnapshotId::default()
                            .with_end_offset(id.end_offset)
                            .with_epoch(id.epoch),
                    )
                    .with_position(position),
            ])])
}

/// The partition's answer in a FetchSnapshot response (a top-level error counts too).
pub fn decode_fetch_snapshot_response(resp: FetchSnapshotResponse) -> Option<FetchedChunk> {
    let top = resp.error_code;
    let p = resp.topics.into_iter().flat_map(|t| t.partitions).next()?;
    Some(FetchedChunk {
        error_code: if top != 0 { top } else { p.error_code },
        epoch: p.current_leader.leader_epoch,
        leader: (p.current_leader.leader_id.0 >= 0).then_some(p.current_leader.leader_id.0),
        size: p.size,
        position: p.position,
        bytes: p.unaligned_records,
    })
}

/// Opens the latest snapshot of the metadata log in `dir` and lines the log up with it:
/// leftover partial snapshots are deleted; a log that ends before the snapshot (a crash
/// while installing a fetched one) restarts at the snapshot's end; segments wholly below it
/// are deleted. A log that starts after offset 0 without a snapshot that reaches its start,
/// or a snapshot file that does not decode, is an error naming what is wrong.
pub fn open_snapshot(
    dir: &std::path::Path,
    log: &mut PartitionLog,
) -> anyhow::Result<(Option<SnapshotId>, MetadataImage)> {
    delete_partials(dir)?;
    let Some((id, image)) = load_latest(dir)
        .map_err(|e| anyhow::anyhow!("cannot load the latest metadata snapshot: {e:#}"))?
    else {
        if log.log_start_offset() > 0 {
            anyhow::bail!(
                "the metadata log in {} starts at offset {} but there is no snapshot to cover the offsets below it",
                dir.display(),
                log.log_start_offset()
            );
        }
        return Ok((None, MetadataImage::new()));
    };
    if log.log_start_offset() > id.end_offset {
        anyhow::bail!(
            "the metadata log in {} starts at offset {} but its latest snapshot {} ends at {}: the records in between are missing",
            dir.display(),
            log.log_start_offset(),
            file_name(id),
            id.end_offset
        );
    }
    if log.log_end_offset() < id.end_offset {
        log.truncate_fully_and_start_at(id.end_offset)?;
    } else {
        log.delete_segments_below(id.end_offset)?;
    }
    Ok((Some(id), image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FlushPolicy, LogConfig};

    fn id() -> SnapshotId {
        SnapshotId {
            end_offset: 1234,
            epoch: 7,
        }
    }

    fn records(n: usize) -> Vec<MetadataRecord> {
        (0..n)
            .map(|i| MetadataRecord::Topic {
                name: format!("t{i}"),
                topic_id: [(i % 250 + 1) as u8; 16],
            })
            .collect()
    }

    #[test]
    fn names_are_kafkas() {
        assert_eq!(
            file_name(id()),
            "00000000000000001234-0000000007.checkpoint"
        );
        assert_eq!(parse_file_name(&file_name(id())), Some(id()));
        assert_eq!(
            parse_file_name("00000000000000001234-0000000007.checkpoint.part"),
            None
        );
        assert_eq!(parse_file_name("1234-7.checkpoint"), None);
        assert_eq!(parse_file_name("leader-epoch-checkpoint"), None);
    }

    #[test]
    fn a_written_snapshot_reads_back_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(1500);
        write(dir.path(), id(), &recs).unwrap();
        assert_eq!(read(dir.path(), id()).unwrap(), recs);
        let newer = SnapshotId {
            end_offset: 2000,
            epoch: 8,
        };
        write(dir.path(), newer, &recs[..3]).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![id(), newer]);
        let (latest, image) = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(latest, newer);
        assert_eq!(image.last_offset(), 1999);
        assert_eq!(image.topics().count(), 3);
        delete_older(dir.path(), newer).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![newer]);
        // Chunks cover the file.
        let Chunk::Data { size, bytes: first } = read_chunk(dir.path(), newer, 0, 10).unwrap()
        else {
            panic!("no data");
        };
        assert_eq!(first.len(), 10);
        let Chunk::Data { bytes: rest, .. } = read_chunk(dir.path(), newer, 10, 1 << 20).unwrap()
        else {
            panic!("no data");
        };
        assert_eq!(10 + rest.len() as u64, size);
        assert_eq!(
            read_chunk(dir.path(), newer, size as i64 + 1, 10).unwrap(),
            Chunk::OutOfRange { size }
        );
        assert_eq!(
            read_chunk(dir.path(), id(), 0, 10).unwrap(),
            Chunk::NotFound
        );
    }

    #[test]
    fn cut_or_corrupt_snapshots_are_precise_errors_and_partials_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), id(), &records(600)).unwrap();
        let p = path(dir.path(), id());
        let bytes = fs::read(&p).unwrap();
        // Cut inside a batch.
        fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let err = format!("{:#}", load_latest(dir.path()).unwrap_err());
        assert!(err.contains("cut or corrupt"), "{err}");
        // Cut at a batch boundary: the footer is missing.
        let first = split_batches(&Bytes::from(bytes.clone()))[0].data.len();
        fs::write(&p, &bytes[..first]).unwrap();
        let err = format!("{:#}", load_latest(dir.path()).unwrap_err());
        assert!(err.contains("footer"), "{err}");
        // A flipped byte fails the CRC.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] ^= 0xff;
        fs::write(&p, &bad).unwrap();
        assert!(load_latest(dir.path()).is_err());
        // Another snapshot's content under this name.
        let other = encode(
            SnapshotId {
                end_offset: 5,
                epoch: 1,
            },
            &[],
        )
        .unwrap();
        fs::write(&p, &other).unwrap();
        let err = format!("{:#}", load_latest(dir.path()).unwrap_err());
        assert!(err.contains("header names snapshot 5-1"), "{err}");
        // A leftover partial file is not a snapshot and is deleted.
        fs::remove_file(&p).unwrap();
        fs::write(partial_path(dir.path(), id()), &bytes[..10]).unwrap();
        assert!(load_latest(dir.path()).unwrap().is_none());
        assert_eq!(delete_partials(dir.path()).unwrap(), 1);
        assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    fn open_log(dir: &std::path::Path) -> PartitionLog {
        PartitionLog::open(
            dir,
            LogConfig {
                segment_bytes: 1024,
                flush_policy: FlushPolicy::EveryBatch,
                oversized_batch_own_segment: true,
                ..LogConfig::default()
            },
        )
        .unwrap()
    }

    fn topic(i: u8) -> MetadataRecord {
        MetadataRecord::Topic {
            name: format!("t{i}"),
            topic_id: [i + 1; 16],
        }
    }

    #[test]
    fn a_restart_starts_from_the_latest_snapshot_and_the_log_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        // 30 one-record batches of epoch 1 over several 1 KiB segments.
        for i in 0..30u8 {
            let b = encode_batch(&[topic(i)], 0).unwrap();
            log.append_as_leader(b, 1).unwrap();
        }
        assert!(log.segment_base_offsets().len() > 3);
        let (none, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!((none, image.last_offset()), (None, -1));
        // A snapshot of the first 20 records, and a leftover partial one.
        let id = SnapshotId {
            end_offset: 20,
            epoch: 1,
        };
        let records: Vec<MetadataRecord> = (0..20).map(topic).collect();
        write(dir.path(), id, &records).unwrap();
        std::fs::write(
            partial_path(
                dir.path(),
                SnapshotId {
                    end_offset: 25,
                    epoch: 1,
                },
            ),
            b"half",
        )
        .unwrap();
        let (got, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!(got, Some(id));
        assert_eq!(image.last_offset(), 19);
        assert_eq!(image.topics().count(), 20);
        // Segments wholly below the snapshot are gone; the log after it stays.
        assert!(log.log_start_offset() > 0 && log.log_start_offset() <= 20);
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(list(dir.path()).unwrap(), vec![id]);
        assert!(!partial_path(
            dir.path(),
            SnapshotId {
                end_offset: 25,
                epoch: 1
            }
        )
        .exists());
        // A snapshot past the log end (a crash during an install): the log restarts there.
        let later = SnapshotId {
            end_offset: 40,
            epoch: 2,
        };
        write(dir.path(), later, &records).unwrap();
        let (got, image) = open_snapshot(dir.path(), &mut log).unwrap();
        assert_eq!(got, Some(later));
        assert_eq!(image.last_offset(), 39);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    }

    #[test]
    fn a_corrupt_snapshot_or_a_log_without_its_snapshot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path());
        let id = SnapshotId {
            end_offset: 5,
            epoch: 1,
        };
        write(dir.path(), id, &[topic(1)]).unwrap();
        let path = path(dir.path(), id);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(
            err.contains("cannot load the latest metadata snapshot")
                && err.contains("00000000000000000005-0000000001.checkpoint"),
            "{err}"
        );
        // No snapshot, but the log starts at 5.
        std::fs::remove_file(&path).unwrap();
        log.truncate_fully_and_start_at(5).unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(
            err.contains("starts at offset 5 but there is no snapshot"),
            "{err}"
        );
        // A snapshot that ends before the log start.
        write(
            dir.path(),
            SnapshotId {
                end_offset: 3,
                epoch: 1,
            },
            &[],
        )
        .unwrap();
        let err = open_snapshot(dir.path(), &mut log).unwrap_err().to_string();
        assert!(err.contains("records in between are missing"), "{err}");
    }
}
