//! OffsetCommit and OffsetFetch.
//!
//! A commit is validated against the group (generation and member, or a "simple" commit
//! with generation -1 and no member id to a group without members), written to the
//! group's `__consumer_offsets` partition through [`Effect::AppendOffsets`], and answered
//! only when [`GroupCoordinator::complete_append`] reports the append committed: only
//! then do the offsets become visible to OffsetFetch. If the append fails, the client gets
//! Kafka's mapping of the append error (see [`for_append_error`]).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{self, OffsetValue, RecordKey};
use super::coordinator::GroupCoordinator;
use super::state::{Group, GroupState};
use super::types::{
    fill_commit_codes, for_append_error, Effect, GroupResponse, PendingAppend, Reply,
    AWAITING_APPEND,
};
use crate::error_codes as errors;

/// Committed offsets of one topic, per requested partition (`None` = nothing committed).
type TopicOffsets<'a> = Vec<(String, Vec<(i32, Option<&'a OffsetValue>)>)>;

impl GroupCoordinator {
    /// Why a commit to `group` by (`generation`, `member_id`) is refused, if it is.
    /// Kafka's order of checks.
    fn commit_error(&self, group: Option<&Group>, generation: i32, member_id: &str) -> i16 {
        let Some(group) = group else {
            // Only a simple commit may create a group; a group-managed one from a
            // generation this coordinator does not know is stale.
            return if generation < 0 {
                errors::NONE
            } else {
                errors::ILLEGAL_GENERATION
            };
        };
        if generation < 0 && member_id.is_empty() && group.state == GroupState::Empty {
            errors::NONE
        } else if group.state == GroupState::CompletingRebalance {
            errors::REBALANCE_IN_PROGRESS
        } else if !group.members.contains_key(member_id) {
            errors::UNKNOWN_MEMBER_ID
        } else if generation != group.generation {
            errors::ILLEGAL_GENERATION
        } else {
            errors::NONE
        }
    }

    /// OffsetCommit at `version` (2–8). Parked until the append is committed, unless
    /// refused outright.
    pub fn handle_offset_commit(
        &mut self,
        request_id: u64,
        version: i16,
        req: OffsetCommitRequest,
        now_ms: u64,
    ) -> Reply<OffsetCommitResponse> {
        let _ = version; // v2–8 responses share one shape; throttle time is always 0.
        let group_id = req.group_id.as_str().to_owned();
        let member_id = req.member_id.as_str();
        let generation = req.generation_id_or_member_epoch;
        let mut code = self.coordinator_error(&group_id);
        if code == errors::NONE {
            code = self.commit_error(self.groups.get(&group_id), generation, member_id);
        }
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let metadata_len = p.committed_metadata.as_ref().map_or(0, |m| m.len());
                        let error_code = if code != errors::NONE {
                            code
                        } else if metadata_len > self.config.max_metadata_bytes {
                            errors::OFFSET_METADATA_TOO_LARGE
                        } else {
                            let key = RecordKey::Offset {
                                group: group_id.clone(),
                                topic: t.name.as_str().to_owned(),
                                partition: p.partition_index,
                            };
                            let value = OffsetValue {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                // Kafka stores a null metadata string as "".
                                metadata: Some(
                                    p.committed_metadata
                                        .as_ref()
                                        .map_or_else(String::new, |m| m.as_str().to_owned()),
                                ),
                                commit_timestamp_ms: now_ms as i64,
                            };
                            records.push((
                                codec::encode_key(&key),
                                codec::encode_offset_value(&value),
                            ));
                            offsets.push(((t.name.as_str().to_owned(), p.partition_index), value));
                            AWAITING_APPEND
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error_code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        let response = OffsetCommitResponse::default().with_topics(topics);
        if records.is_empty() {
            return Reply::Now(response);
        }
        let partition = self.partition_of(&group_id);
        if let Some(member) = self
            .groups
            .get_mut(&group_id)
            .and_then(|g| g.members.get_mut(member_id))
        {
            // A commit is a sign of life, as in Kafka.
            member.last_heartbeat_ms = now_ms;
        }
        self.groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), partition));
        self.out.pending.insert(
            request_id,
            PendingAppend::Commit {
                group: group_id,
                partition,
                offsets,
                response,
            },
        );
        self.out.effects.push_back(Effect::AppendOffsets {
            request_id: Some(request_id),
            partition,
            records,
        });
        Reply::Parked
    }

    /// Completes a parked commit once its append finished with `error_code`.
    pub(crate) fn finish_commit(
        &mut self,
        request_id: u64,
        (group, partition): (String, i32),
        offsets: Vec<((String, i32), OffsetValue)>,
        response: OffsetCommitResponse,
        error_code: i16,
    ) {
        let code = if error_code == errors::NONE {
            self.groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group.clone(), partition));
            let stored = self.offsets.entry(group).or_default();
            for (tp, value) in offsets {
                stored.insert(tp, value);
            }
            errors::NONE
        } else {
            for_append_error(error_code)
        };
        let response = fill_commit_codes(response, code);
        self.out.effects.push_back(Effect::Respond {
            request_id,
            response: GroupResponse::OffsetCommit(response),
        });
    }

    /// The committed offsets of `group_id` for `topics` (`None` = every partition with a
    /// committed offset), or the group's coordinator error.
    fn fetch_group(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<TopicOffsets<'_>, i16> {
        let code = self.coordinator_error(group_id);
        if code != errors::NONE {
            return Err(code);
        }
        let committed = self.offsets.get(group_id);
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, parts)| {
                    let found = parts
                        .into_iter()
                        .map(|p| (p, committed.and_then(|c| c.get(&(topic.clone(), p)))))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<&str, Vec<(i32, Option<&OffsetValue>)>> =
                    BTreeMap::new();
                for ((topic, p), v) in committed.into_iter().flatten() {
                    by_topic.entry(topic).or_default().push((*p, Some(v)));
                }
                by_topic
                    .into_iter()
                    .map(|(t, parts)| (t.to_owned(), parts))
                    .collect()
            }
        })
    }

    /// OffsetFetch at `version` (1–8): -1 for partitions without a committed offset.
    /// v1–7 carry one group (v1 reports errors per partition, v2+ at the top); v8 carries
    /// a list of groups, each with its own error.
    pub fn handle_offset_fetch(
        &self,
        version: i16,
        req: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        if version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                    match self.fetch_group(g.group_id.as_str(), topics) {
                        Err(code) => out.with_error_code(code),
                        Ok(found) => out.with_topics(
                            found
                                .into_iter()
                                .map(|(topic, parts)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(StrBytes::from_string(topic).into())
                                        .with_partitions(
                                            parts
                                                .into_iter()
                                                .map(|(p, v)| v8_partition(p, v))
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            return OffsetFetchResponse::default().with_groups(groups);
        }
        let requested: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect()
        });
        match self.fetch_group(req.group_id.as_str(), requested.clone()) {
            Ok(found) => OffsetFetchResponse::default().with_topics(
                found
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(StrBytes::from_string(topic).into())
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, v)| old_partition(version, p, v, errors::NONE))
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
            Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
            // v1 has no top-level error: report it on every requested partition.
            Err(code) => OffsetFetchResponse::default().with_topics(
                requested
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(StrBytes::from_string(topic).into())
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|p| old_partition(version, p, None, code))
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        }
    }
}

fn metadata_of(v: Option<&OffsetValue>) -> StrBytes {
    StrBytes::from_string(v.and_then(|v| v.metadata.clone()).unwrap_or_default())
}

/// A v1–7 partition entry; the leader epoch exists from v5.
fn old_partition(
    version: i16,
    p: i32,
    v: Option<&OffsetValue>,
    code: i16,
) -> OffsetFetchResponsePartition {
    let out = OffsetFetchResponsePartition::default()
        .with_partition_index(p)
        .with_committed_offset(v.map_or(-1, |v| v.offset))
        .with_metadata(Some(metadata_of(v)))
        .with_error_code(code);
    if version >= 5 {
        out.with_committed_leader_epoch(v.map_or(-1, |v| v.leader_epoch))
    } else {
        out
    }
}

/// A v8 partition entry.
fn v8_partition(p: i32, v: Option<&OffsetValue>) -> OffsetFetchResponsePartitions {
    OffsetFetchResponsePartitions::default()
        .with_partition_index(p)
        .with_committed_offset(v.map_or(-1, |v| v.offset))
        .with_committed_leader_epoch(v.map_or(-1, |v| v.leader_epoch))
        .with_metadata(Some(metadata_of(v)))
        .with_error_code(errors::NONE)
}
