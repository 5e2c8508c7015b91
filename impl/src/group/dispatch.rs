//! Routing a decoded request (as the wire layer produces it) to the coordinator, so the
//! node runtime needs one call for every group API.

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use super::coordinator::GroupCoordinator;
use super::types::{ClientInfo, Reply};

impl<T> Reply<T> {
    /// Maps an immediate response.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        match self {
            Reply::Now(r) => Reply::Now(f(r)),
            Reply::Parked => Reply::Parked,
        }
    }
}

impl GroupCoordinator {
    /// Handles `body` if it is one of the group APIs (JoinGroup, SyncGroup, Heartbeat,
    /// LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups) at
    /// `header.request_api_version`; any other request comes back as `Err` untouched.
    /// `client_host` is the peer address DescribeGroups reports (Kafka writes `/ip`).
    // The unhandled request is moved back to the caller once; boxing it would add an
    // allocation to every request for nothing (as in the wire layer's `Decoded`).
    #[allow(clippy::result_large_err)]
    pub fn handle_request(
        &mut self,
        request_id: u64,
        header: &RequestHeader,
        client_host: &str,
        body: RequestKind,
        now_ms: u64,
    ) -> Result<Reply<ResponseKind>, RequestKind> {
        let version = header.request_api_version;
        Ok(match body {
            RequestKind::JoinGroup(req) => {
                let client = ClientInfo {
                    client_id: header
                        .client_id
                        .as_ref()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    client_host: client_host.to_owned(),
                };
                self.handle_join(request_id, version, &client, req, now_ms)
                    .map(ResponseKind::JoinGroup)
            }
            RequestKind::SyncGroup(req) => self
                .handle_sync(request_id, version, req, now_ms)
                .map(ResponseKind::SyncGroup),
            RequestKind::OffsetCommit(req) => self
                .handle_offset_commit(request_id, version, req, now_ms)
                .map(ResponseKind::OffsetCommit),
            RequestKind::Heartbeat(req) => Reply::Now(ResponseKind::Heartbeat(
                self.handle_heartbeat(version, req, now_ms),
            )),
            RequestKind::LeaveGroup(req) => Reply::Now(ResponseKind::LeaveGroup(
                self.handle_leave(version, req, now_ms),
            )),
            RequestKind::OffsetFetch(req) => Reply::Now(ResponseKind::OffsetFetch(
                self.handle_offset_fetch(version, req),
            )),
            RequestKind::ListGroups(req) => Reply::Now(ResponseKind::ListGroups(
                self.handle_list_groups(version, req),
            )),
            RequestKind::DescribeGroups(req) => Reply::Now(ResponseKind::DescribeGroups(
                self.handle_describe_groups(version, req),
            )),
            other => return Err(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_codes as errors;
    use crate::group::types::{CoordinatorConfig, Effect, GroupResponse};
    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    fn header(key: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
    }

    #[test]
    fn routes_group_apis_and_returns_the_rest() {
        let mut c = GroupCoordinator::new(CoordinatorConfig {
            offsets_partitions: 1,
            initial_rebalance_delay_ms: 0,
            ..CoordinatorConfig::default()
        });
        c.load_partition(0, 0, Vec::new(), 0);
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m"))]);
        let h = header(ApiKey::JoinGroup, 5);
        let Ok(Reply::Now(ResponseKind::JoinGroup(r))) =
            c.handle_request(1, &h, "/10.0.0.9", RequestKind::JoinGroup(join.clone()), 0)
        else {
            panic!("MEMBER_ID_REQUIRED expected")
        };
        assert_eq!(r.error_code, errors::MEMBER_ID_REQUIRED);
        assert_eq!(
            r.member_id.as_str(),
            "rdkafka-0-1",
            "client id from the header"
        );
        let rejoin = join.with_member_id(r.member_id.clone());
        assert_eq!(
            c.handle_request(2, &h, "/10.0.0.9", RequestKind::JoinGroup(rejoin), 0),
            Ok(Reply::Parked)
        );
        let Some(Effect::Respond {
            request_id: 2,
            response: GroupResponse::Join(r),
        }) = c.poll_effect()
        else {
            panic!("join completes at once with no initial delay")
        };
        assert_eq!(r.generation_id, 1);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(1)
            .with_member_id(r.member_id.clone());
        assert!(matches!(
            c.handle_request(3, &header(ApiKey::Heartbeat, 4), "", RequestKind::Heartbeat(hb), 1),
            Ok(Reply::Now(ResponseKind::Heartbeat(h))) if h.error_code == errors::NONE
        ));
        let other = RequestKind::ApiVersions(ApiVersionsRequest::default());
        assert_eq!(
            c.handle_request(4, &header(ApiKey::ApiVersions, 3), "", other.clone(), 1),
            Err(other)
        );
        let view = c.group("g").unwrap();
        assert_eq!(view.members.len(), 1);
    }
}
