//! The `quorum-state` file: the epoch, the vote and the leader a voter must remember across
//! a restart, in Kafka's JSON layout, written atomically and fsynced before any vote or
//! answer that depends on it leaves.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::quorum::{QuorumState, ReplicaId};

/// The `quorum-state` file, in Kafka's JSON layout.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuorumStateFile {
    leader_id: i32,
    leader_epoch: i32,
    voted_id: i32,
    applied_offset: i64,
    current_voters: Vec<VoterEntry>,
    #[serde(rename = "data_version")]
    data_version: i16,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoterEntry {
    voter_id: i32,
}

/// The persisted quorum state at `path`; the default (epoch 0, no vote) when the file does
/// not exist yet.
pub(super) fn read(path: &std::path::Path) -> anyhow::Result<QuorumState> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(QuorumState::default()),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let f: QuorumStateFile = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("malformed quorum state {}: {e}", path.display()))?;
    Ok(QuorumState {
        epoch: f.leader_epoch.max(0),
        voted_for: (f.voted_id >= 0).then_some(f.voted_id),
        leader: (f.leader_id >= 0).then_some(f.leader_id),
    })
}

/// Writes `state` (and the voter set) to `path` atomically, fsynced.
pub(super) fn write(
    path: &Path,
    state: QuorumState,
    voters: &[ReplicaId],
) -> crate::storage::Result<()> {
    let file = QuorumStateFile {
        leader_id: state.leader.unwrap_or(-1),
        leader_epoch: state.epoch,
        voted_id: state.voted_for.unwrap_or(-1),
        applied_offset: 0,
        current_voters: voters
            .iter()
            .map(|&voter_id| VoterEntry { voter_id })
            .collect(),
        data_version: 0,
    };
    let bytes = serde_json::to_vec(&file).unwrap_or_default();
    crate::storage::checkpoint::atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quorum_state_file_round_trips_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quorum-state");
        assert_eq!(read(&path).unwrap(), QuorumState::default());
        let file = QuorumStateFile {
            leader_id: 2,
            leader_epoch: 7,
            voted_id: 3,
            applied_offset: 0,
            current_voters: vec![VoterEntry { voter_id: 1 }],
            data_version: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            QuorumState {
                epoch: 7,
                voted_for: Some(3),
                leader: Some(2)
            }
        );
        std::fs::write(&path, b"{not json").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("malformed quorum state"), "{err}");
    }
}
