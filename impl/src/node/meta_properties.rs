//! `meta.properties`: what a log directory was formatted for, as KRaft keeps it.
//!
//! Kafka writes `cluster.id`, `node.id` and `directory.id` into every log directory when it
//! formats storage (the apache/kafka image does so on first start, from `CLUSTER_ID`) and
//! refuses to start on a directory formatted for another cluster or another node: a volume
//! mounted on the wrong container would otherwise serve another node's replicas, or mix two
//! clusters' metadata. Osprey does the same, and also keeps the broker's `incarnation.id`
//! there (see `broker_runtime::register`).
//!
//! A directory without the file (a first start) is formatted with the configured cluster id,
//! or "osprey" when none is configured; a configuration without `cluster.id` adopts the one
//! the directory was formatted with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in each log directory.
pub const FILE_NAME: &str = "meta.properties";

/// The cluster id used when neither the configuration nor the directory names one.
pub use crate::config::DEFAULT_CLUSTER_ID;

/// The contents of `meta.properties`; keys Osprey does not use are kept as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: uuid::Uuid,
    pub incarnation_id: Option<uuid::Uuid>,
    other: BTreeMap<String, String>,
}

/// Why a log directory cannot be used by this node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetaPropertiesError {
    #[error(
        "the log directory {dir} was formatted for cluster id {stored}, but this node is \
         configured with cluster id {configured} (cluster.id / CLUSTER_ID); use the directory \
         of this cluster, or an empty one"
    )]
    ClusterIdMismatch {
        dir: String,
        stored: String,
        configured: String,
    },
    #[error(
        "the log directory {dir} was formatted for node id {stored}, but this node is \
         configured with node id {configured} (node.id); each node needs its own directory"
    )]
    NodeIdMismatch {
        dir: String,
        stored: i32,
        configured: i32,
    },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Unwritable { path: String, reason: String },
}

impl MetaProperties {
    /// Parses the file's text; `None` when a required key is missing or malformed (an
    /// Osprey directory from before cluster ids were stored has no `cluster.id`).
    fn parse(text: &str) -> (BTreeMap<String, String>, Option<i32>) {
        let mut map = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                map.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let node_id = map.get("node.id").and_then(|v| v.parse().ok());
        (map, node_id)
    }

    fn render(&self) -> String {
        let mut map = self.other.clone();
        map.insert("version".into(), "1".into());
        map.insert("cluster.id".into(), self.cluster_id.clone());
        map.insert("node.id".into(), self.node_id.to_string());
        map.insert("directory.id".into(), self.directory_id.to_string());
        if let Some(id) = self.incarnation_id {
            map.insert("incarnation.id".into(), id.to_string());
        }
        let mut text = String::from("#Written by Osprey when the log directory was formatted\n");
        for (k, v) in map {
            text.push_str(&format!("{k}={v}\n"));
        }
        text
    }

    /// Writes the file atomically and durably (a temporary file, fsynced, renamed, the
    /// directory fsynced): without the fsyncs a power cut could leave no file, or an empty
    /// one, and the node would format its directory anew (found by the fault campaign's
    /// power cuts; tests/power_cut.rs).
    pub fn store(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        let path = dir.join(FILE_NAME);
        crate::storage::checkpoint::atomic_write(&path, self.render().as_bytes()).map_err(|e| {
            MetaPropertiesError::Unwritable {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })
    }
}

/// Checks `dir` against this node's cluster id and node id, formatting it on first use, and
/// returns what it holds (with the cluster id in force).
pub fn format_or_check(
    dir: &Path,
    configured_cluster_id: Option<&str>,
    node_id: i32,
) -> Result<MetaProperties, MetaPropertiesError> {
    let path: PathBuf = dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(MetaPropertiesError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let dir_name = dir.display().to_string();
    let Some(text) = text else {
        let props = MetaProperties {
            cluster_id: configured_cluster_id
                .unwrap_or(DEFAULT_CLUSTER_ID)
                .to_string(),
            node_id,
            directory_id: new_uuid(node_id),
            incarnation_id: None,
            other: BTreeMap::new(),
        };
        props.store(dir)?;
        tracing::info!(dir = %dir_name, cluster_id = %props.cluster_id, node_id, "formatted the log directory");
        return Ok(props);
    };
    let (mut map, stored_node) = MetaProperties::parse(&text);
    if let Some(stored) = stored_node.filter(|&s| s != node_id) {
        return Err(MetaPropertiesError::NodeIdMismatch {
            dir: dir_name,
            stored,
            configured: node_id,
        });
    }
    let stored_cluster = map.remove("cluster.id");
    let cluster_id = match (stored_cluster, configured_cluster_id) {
        (Some(stored), Some(configured)) if stored != configured => {
            return Err(MetaPropertiesError::ClusterIdMismatch {
                dir: dir_name,
                stored,
                configured: configured.to_string(),
            })
        }
        (Some(stored), _) => stored,
        (None, configured) => configured.unwrap_or(DEFAULT_CLUSTER_ID).to_string(),
    };
    map.remove("node.id");
    map.remove("version");
    let directory_id = map
        .remove("directory.id")
        .and_then(|v| uuid::Uuid::parse_str(&v).ok())
        .unwrap_or_else(|| new_uuid(node_id));
    let incarnation_id = map
        .remove("incarnation.id")
        .and_then(|v| uuid::Uuid::parse_str(&v).ok());
    let props = MetaProperties {
        cluster_id,
        node_id,
        directory_id,
        incarnation_id,
        other: map,
    };
    if props.render() != text {
        props.store(dir)?;
    }
    Ok(props)
}

/// A fresh id from the clock and the process (no randomness source is needed: ids only have
/// to differ between directories and incarnations).
pub fn new_uuid(node_id: i32) -> uuid::Uuid {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let salt = (u64::from(std::process::id()) << 32) | u64::from(node_id as u32);
    uuid::Uuid::from_u64_pair(nanos, salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_formatted_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = format_or_check(dir.path(), Some("abc"), 3).unwrap();
        assert_eq!(first.cluster_id, "abc");
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains("cluster.id=abc") && text.contains("node.id=3"),
            "{text}"
        );
        let again = format_or_check(dir.path(), Some("abc"), 3).unwrap();
        assert_eq!(again, first);
        // A configuration without a cluster id adopts the directory's.
        assert_eq!(
            format_or_check(dir.path(), None, 3).unwrap().cluster_id,
            "abc"
        );
    }

    #[test]
    fn another_cluster_id_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        format_or_check(dir.path(), Some("cluster-a"), 1).unwrap();
        let err = format_or_check(dir.path(), Some("cluster-b"), 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cluster-a") && text.contains("cluster-b"),
            "{text}"
        );
    }

    #[test]
    fn another_node_id_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        format_or_check(dir.path(), Some("c"), 1).unwrap();
        let err = format_or_check(dir.path(), Some("c"), 2).unwrap_err();
        assert_eq!(
            err,
            MetaPropertiesError::NodeIdMismatch {
                dir: dir.path().display().to_string(),
                stored: 1,
                configured: 2
            }
        );
        assert!(err.to_string().contains("node id 1") && err.to_string().contains("node id 2"));
    }

    #[test]
    fn an_older_file_without_a_cluster_id_is_completed_and_keeps_its_incarnation() {
        let dir = tempfile::tempdir().unwrap();
        let incarnation = new_uuid(4);
        std::fs::write(
            dir.path().join(FILE_NAME),
            format!("version=1\nnode.id=4\nincarnation.id={incarnation}\n"),
        )
        .unwrap();
        let props = format_or_check(dir.path(), Some("x"), 4).unwrap();
        assert_eq!(props.cluster_id, "x");
        assert_eq!(props.incarnation_id, Some(incarnation));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("cluster.id=x"), "{text}");
    }
}
