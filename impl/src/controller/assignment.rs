//! Topic names, replica placement and topic ids: the deterministic parts of creating a topic.

use super::records::{TopicId, ZERO_TOPIC_ID};
use crate::replication::BrokerId;

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Why a topic name is illegal, or `None` when it is legal: Kafka's `Topic.validate` (not
/// empty, not `.` or `..`, at most 249 characters of `[a-zA-Z0-9._-]`).
pub fn topic_name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("Topic name cannot be \"{name}\""));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Some(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

/// Kafka treats `.` and `_` as the same in metric names, so two topics whose names differ
/// only there collide.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// FNV-1a, 64 bits: a stable hash (unlike `std`'s, which may change between releases), so the
/// same topic name gets the same placement on every controller and every run.
pub fn stable_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x0000_0100_0000_01b3);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where placement starts for a topic: Kafka draws the start index and the replica shift at
/// random; Osprey derives both from the topic name so that a controller replaying the same
/// requests places replicas identically.
pub fn placement_seed(topic: &str, brokers: usize) -> (usize, usize) {
    if brokers == 0 {
        return (0, 0);
    }
    let h = stable_hash(0, topic.as_bytes());
    (
        (h % brokers as u64) as usize,
        ((h >> 32) % brokers as u64) as usize,
    )
}

/// Kafka's rack-unaware replica placement (`assignReplicasToBrokers`). The first replica of
/// partition `p` is broker `(p + start_index) % n` in the sorted broker list; the others follow
/// it at a distance of `1 + (shift + j) % (n - 1)`, and the shift grows by one each time the
/// partitions wrap around the brokers, so followers spread evenly too.
///
/// Returns one replica list per partition `start_partition_id..start_partition_id + count`, or
/// `None` if `replication_factor` is 0 or larger than the number of brokers.
pub fn assign_replicas_to_brokers(
    count: usize,
    replication_factor: usize,
    brokers: &[BrokerId],
    start_index: usize,
    replica_shift: usize,
    start_partition_id: usize,
) -> Option<Vec<Vec<BrokerId>>> {
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let n = sorted.len();
    if replication_factor == 0 || replication_factor > n {
        return None;
    }
    let mut shift = replica_shift;
    let mut out = Vec::with_capacity(count);
    for p in start_partition_id..start_partition_id + count {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start_index) % n;
        let mut replicas = Vec::with_capacity(replication_factor);
        replicas.push(sorted[first]);
        for j in 0..replication_factor - 1 {
            let distance = 1 + (shift + j) % (n - 1);
            replicas.push(sorted[(first + distance) % n]);
        }
        out.push(replicas);
    }
    Some(out)
}

/// A topic id for the topic created by the record at `offset`: a stable hash of the name and
/// the offset (so a topic deleted and created again gets a new id), never zero and never one
/// already in use (`taken`).
pub fn derive_topic_id(name: &str, offset: i64, taken: impl Fn(&TopicId) -> bool) -> TopicId {
    let mut salt = 0u64;
    loop {
        let mut input = name.as_bytes().to_vec();
        input.extend_from_slice(&offset.to_be_bytes());
        input.extend_from_slice(&salt.to_be_bytes());
        let hi = stable_hash(1, &input);
        let lo = stable_hash(2, &input);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hi.to_be_bytes());
        id[8..].copy_from_slice(&lo.to_be_bytes());
        if id != ZERO_TOPIC_ID && !taken(&id) {
            return id;
        }
        salt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_topic_names() {
        for ok in ["a", "orders", "a.b_c-D9", &"x".repeat(249)] {
            assert_eq!(topic_name_error(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(topic_name_error(bad).is_some(), "{bad}");
        }
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }

    #[test]
    fn placement_is_kafkas_round_robin_with_a_growing_shift() {
        // Five brokers, start index 0, shift 0: partition p leads on broker p % 5, its
        // followers at distance 1 + (shift + j) % 4, the shift growing every 5 partitions.
        let brokers = [4, 0, 3, 1, 2];
        let a = assign_replicas_to_brokers(10, 3, &brokers, 0, 0, 0).unwrap();
        assert_eq!(a[0], vec![0, 1, 2]);
        assert_eq!(a[1], vec![1, 2, 3]);
        assert_eq!(a[4], vec![4, 0, 1]);
        assert_eq!(a[5], vec![0, 2, 3]);
        assert_eq!(a[9], vec![4, 1, 2]);
        // Leaders are spread evenly, and no partition repeats a broker.
        for b in 0..5 {
            assert_eq!(a.iter().filter(|r| r[0] == b).count(), 2);
        }
        for r in &a {
            let mut s = r.clone();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
    }

    #[test]
    fn placement_continues_from_a_start_partition() {
        let all = assign_replicas_to_brokers(8, 2, &[1, 2, 3], 2, 1, 0).unwrap();
        let tail = assign_replicas_to_brokers(3, 2, &[1, 2, 3], 2, 1, 5).unwrap();
        // Partitions 5.. placed on their own agree with the one-shot placement as far as the
        // shift does (the shift is recounted from the start partition).
        assert_eq!(tail[0][0], all[5][0]);
        assert_eq!(assign_replicas_to_brokers(1, 4, &[1, 2, 3], 0, 0, 0), None);
        assert_eq!(assign_replicas_to_brokers(1, 0, &[1], 0, 0, 0), None);
        assert_eq!(
            assign_replicas_to_brokers(2, 1, &[7], 0, 0, 0),
            Some(vec![vec![7], vec![7]])
        );
    }

    #[test]
    fn seeds_and_ids_are_deterministic() {
        assert_eq!(placement_seed("orders", 3), placement_seed("orders", 3));
        let (s, r) = placement_seed("orders", 3);
        assert!(s < 3 && r < 3);
        assert_eq!(placement_seed("x", 0), (0, 0));
        let a = derive_topic_id("t", 5, |_| false);
        assert_eq!(a, derive_topic_id("t", 5, |_| false));
        assert_ne!(a, derive_topic_id("t", 6, |_| false));
        let b = derive_topic_id("t", 5, |id| *id == a);
        assert_ne!(a, b);
        assert_ne!(b, ZERO_TOPIC_ID);
    }
}
