//! The node's clock: the one place Osprey reads the time. The cores take `now_ms` as an
//! argument, so every test and replay chooses its own time.

/// Wall-clock milliseconds since the Unix epoch: the only clock the node reads.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
