//! Snapshots of the metadata log (KIP-630), the driver's side: taking one once enough was
//! committed since the last (`maybe_snapshot`) and deleting the segments below it, serving
//! FetchSnapshot from the leader's file, fetching the leader's snapshot in chunks on a
//! follower told to (`download_snapshot`). The core decides when; this file moves the
//! bytes (the file format, and lining the log up with the latest snapshot when a voter
//! starts, are [`metadata_snapshot`]'s).

use std::time::Duration;

use kafka_protocol::messages::*;

use super::{fatal, QuorumDriver, State};
use crate::client::Connection;
use crate::controller::MetadataImage;
use crate::error_codes as codes;
use crate::node::metadata_log::METADATA_TOPIC;
use crate::node::metadata_snapshot::{self, Chunk};
use crate::quorum::{self, FetchSnapshotAnswer, SnapshotId};

/// The largest chunk of a snapshot a follower asks for in one FetchSnapshot.
const SNAPSHOT_CHUNK_BYTES: i32 = 32 * 1024;

impl QuorumDriver {
    /// Fetches snapshot `req.snapshot` from the leader in chunks into its partial file,
    /// checks it, renames it into place and has the core install it. Returns early (Ok)
    /// when the leader answers with an error (the core decides what next) or the core no
    /// longer wants this snapshot.
    pub(super) async fn download_snapshot(
        &self,
        c: &mut Connection,
        req: quorum::FetchSnapshotRequest,
    ) -> anyhow::Result<()> {
        use std::io::Write;
        let id = req.snapshot;
        let part = metadata_snapshot::partial_path(&self.dir, id);
        let mut file = std::fs::File::create(&part)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", part.display()))?;
        let mut position = 0i64;
        let timeout = Duration::from_millis(self.fetch_timeout_ms + 500);
        loop {
            let request = metadata_snapshot::fetch_snapshot_request(
                self.id,
                req.epoch,
                id,
                position,
                SNAPSHOT_CHUNK_BYTES,
            );
            let resp = match c
                .send(0, RequestKind::FetchSnapshot(request), timeout)
                .await
            {
                Ok(ResponseKind::FetchSnapshot(r)) => r,
                Ok(_) => anyhow::bail!("unexpected answer to FetchSnapshot"),
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    return Err(e);
                }
            };
            let Some(chunk) = metadata_snapshot::decode_fetch_snapshot_response(resp) else {
                anyhow::bail!("empty FetchSnapshot answer");
            };
            let still_wanted = {
                let mut st = self.lock();
                let result = match chunk.error_code {
                    0 => Ok(()),
                    code => Err(code),
                };
                st.core
                    .handle_fetch_snapshot_response(chunk.epoch, chunk.leader, result);
                self.perform(&mut st);
                st.core.snapshot_request().map(|(_, r)| r) == Some(req)
            };
            if chunk.error_code != 0 || !still_wanted {
                let _ = std::fs::remove_file(&part);
                if chunk.error_code != 0 {
                    tracing::info!(
                        node = self.id,
                        code = chunk.error_code,
                        ?id,
                        "FetchSnapshot refused"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Ok(());
            }
            if chunk.position != position {
                let _ = std::fs::remove_file(&part);
                anyhow::bail!(
                    "FetchSnapshot answered position {} for {position}",
                    chunk.position
                );
            }
            file.write_all(&chunk.bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", part.display()))?;
            position += chunk.bytes.len() as i64;
            if position >= chunk.size {
                break;
            }
            if chunk.bytes.is_empty() {
                let _ = std::fs::remove_file(&part);
                anyhow::bail!("FetchSnapshot made no progress at position {position}");
            }
        }
        file.sync_all()
            .map_err(|e| anyhow::anyhow!("fsyncing {}: {e}", part.display()))?;
        drop(file);
        let records = match metadata_snapshot::read_file(&part, id) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        metadata_snapshot::complete(&self.dir, id)?;
        let image = MetadataImage::from_snapshot(id.end_offset, &records);
        let mut st = self.lock();
        st.installing = Some((id, image));
        if st.core.install_snapshot(id) {
            self.perform(&mut st);
        } else {
            st.installing = None;
            // Not wanted any more; unless it is this voter's own latest snapshot too.
            if st.core.log().snapshot() != Some(id) {
                let _ = std::fs::remove_file(metadata_snapshot::path(&self.dir, id));
            }
        }
        Ok(())
    }

    /// Deletes the segments that lie wholly below the latest snapshot (a segment that was
    /// still active when the snapshot was taken goes once the log has rolled past it), and
    /// moves the core's log start with them.
    /// Returns how many segments went.
    pub(super) fn delete_below_snapshot(&self, st: &mut State) -> usize {
        let Some(id) = st.core.log().snapshot() else {
            return 0;
        };
        let deleted = match st.log.delete_segments_below(id.end_offset) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => fatal("cannot delete metadata log segments below the snapshot", e),
        };
        st.core.snapshot_taken(id, st.log.log_start_offset());
        deleted
    }

    /// Writes a snapshot of the committed image once enough was committed since the last
    /// one, deletes the log's segments below it, and tells the core.
    pub(super) fn maybe_snapshot(&self, st: &mut State) {
        if st.bytes_since_snapshot < self.max_bytes_between_snapshots {
            return;
        }
        let end = st.image.last_offset() + 1;
        if st
            .core
            .log()
            .snapshot()
            .is_some_and(|s| s.end_offset >= end)
        {
            return;
        }
        let Some(epoch) = st.core.log().epoch_at(end - 1) else {
            return;
        };
        let id = SnapshotId {
            end_offset: end,
            epoch,
        };
        let records = st.image.image_records();
        st.bytes_since_snapshot = 0;
        let size = match metadata_snapshot::write(&self.dir, id, &records) {
            Ok(size) => size,
            Err(e) => {
                tracing::error!(node = self.id, error = %format!("{e:#}"), "cannot write a metadata snapshot");
                return;
            }
        };
        st.core.snapshot_taken(id, st.log.log_start_offset());
        let deleted = self.delete_below_snapshot(st);
        if let Err(e) = metadata_snapshot::delete_older(&self.dir, id) {
            tracing::warn!(error = %e, "cannot delete older snapshots");
        }
        tracing::info!(
            node = self.id,
            end_offset = end,
            epoch,
            records = records.len(),
            bytes = size,
            segments_deleted = deleted,
            log_start = st.log.log_start_offset(),
            "metadata snapshot written"
        );
    }

    /// Rebuilds the committed image from the latest snapshot (the log after it is applied
    /// again by `apply_committed`).
    pub(super) fn reload_image(&self, st: &mut State) {
        st.image = match metadata_snapshot::load_latest(&self.dir) {
            Ok(Some((_, image))) => image,
            Ok(None) => MetadataImage::new(),
            Err(e) => fatal("cannot reload the metadata snapshot", format!("{e:#}")),
        };
    }

    /// FetchSnapshot (KIP-630) of `__cluster_metadata-0` from a follower or an observer:
    /// the core decides, the snapshot file supplies the bytes from `Position`, at most
    /// `MaxBytes`.
    pub fn fetch_snapshot(&self, req: &FetchSnapshotRequest) -> FetchSnapshotResponse {
        let Some((topic, p)) = req
            .topics
            .first()
            .and_then(|t| Some((t, t.partitions.first()?)))
        else {
            return FetchSnapshotResponse::default().with_error_code(codes::INVALID_REQUEST);
        };
        let mut out = fetch_snapshot_response::PartitionSnapshot::default()
            .with_index(p.partition)
            .with_snapshot_id(
                fetch_snapshot_response::SnapshotId::default()
                    .with_end_offset(p.snapshot_id.end_offset)
                    .with_epoch(p.snapshot_id.epoch),
            )
            .with_position(p.position);
        if topic.name.0.as_str() != METADATA_TOPIC || p.partition != 0 {
            out.error_code = codes::UNKNOWN_TOPIC_OR_PARTITION;
        } else {
            let mut st = self.lock();
            let answer = st.core.handle_fetch_snapshot(quorum::FetchSnapshotRequest {
                replica_id: req.replica_id.0,
                epoch: p.current_leader_epoch,
                snapshot: SnapshotId {
                    end_offset: p.snapshot_id.end_offset,
                    epoch: p.snapshot_id.epoch,
                },
            });
            self.perform(&mut st);
            let (epoch, leader) = match answer {
                FetchSnapshotAnswer::Serve {
                    epoch,
                    leader,
                    snapshot,
                } => {
                    let max = req.max_bytes.max(1) as usize;
                    match metadata_snapshot::read_chunk(&self.dir, snapshot, p.position, max) {
                        Ok(Chunk::Data { size, bytes }) => {
                            out.size = size as i64;
                            out.unaligned_records = bytes;
                        }
                        Ok(Chunk::OutOfRange { size }) => {
                            out.size = size as i64;
                            out.error_code = codes::POSITION_OUT_OF_RANGE;
                        }
                        Ok(Chunk::NotFound) => out.error_code = codes::SNAPSHOT_NOT_FOUND,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "reading a snapshot");
                            out.error_code = codes::UNKNOWN_SERVER_ERROR;
                        }
                    }
                    (epoch, Some(leader))
                }
                FetchSnapshotAnswer::Error {
                    code,
                    epoch,
                    leader,
                } => {
                    out.error_code = code;
                    (epoch, leader)
                }
            };
            out.current_leader = fetch_snapshot_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                .with_leader_epoch(epoch);
        }
        FetchSnapshotResponse::default().with_topics(vec![
            fetch_snapshot_response::TopicSnapshot::default()
                .with_name(topic.name.clone())
                .with_partitions(vec![out]),
        ])
    }
}
