//! The active controller's side of the driver: running a controller operation and
//! committing its records through the quorum, a copy of the controller for lookups, and
//! resigning on a clean shutdown.

use std::time::Duration;

use super::{fatal, NotActive, QuorumDriver};
use crate::controller::records::MetadataRecord;
use crate::controller::Controller;
use crate::node::clock::now_ms;
use crate::node::metadata_log::encode_batch;

impl QuorumDriver {
    /// Runs one controller operation on the active controller, appends its records through
    /// the quorum as one batch, and returns once the high watermark has passed them.
    pub async fn commit<T>(&self, op: impl FnOnce(&mut Controller) -> T) -> Result<T, NotActive> {
        let (out, end, epoch) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let Some(c) = st.controller.as_mut() else {
                return Err(NotActive);
            };
            let out = op(c);
            let records = c.drain_records();
            let Some(&(first, _)) = records.first() else {
                return Ok(out);
            };
            let (base, epoch) = st
                .core
                .append(records.len() as i64)
                .map_err(|_| NotActive)?;
            if base != first {
                fatal(
                    "the controller and the metadata log disagree on offsets",
                    format!("controller {first}, log {base}"),
                );
            }
            let values: Vec<MetadataRecord> = records.into_iter().map(|(_, r)| r).collect();
            let result = encode_batch(&values, now_ms() as i64)
                .and_then(|batch| Ok(st.log.append_as_leader(batch, epoch)?));
            if let Err(e) = result {
                fatal("cannot write the metadata log", e);
            }
            let end = st.log.log_end_offset();
            st.core.flushed(end);
            self.perform(st);
            (out, end, epoch)
        };
        let mut rx = self.progress();
        let done = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|p| p.high_watermark >= end || p.epoch != epoch || !p.active),
        )
        .await;
        match done {
            Ok(Ok(p)) if p.high_watermark >= end && p.epoch == epoch => Ok(out),
            _ => Err(NotActive),
        }
    }

    /// Clean shutdown: the leader resigns and tells the other voters (EndQuorumEpoch).
    /// Returns whether it was the leader.
    pub fn resign(&self) -> bool {
        let mut st = self.lock();
        let was_leader = st.core.is_leader();
        st.core.resign();
        self.perform(&mut st);
        was_leader
    }

    /// A copy of the active controller (for validate-only requests and lookups).
    pub fn controller_snapshot(&self) -> Result<Controller, NotActive> {
        self.lock().controller.clone().ok_or(NotActive)
    }
}
