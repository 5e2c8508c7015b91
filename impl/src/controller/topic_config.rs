//! The topic configs Osprey supports, and their validation (Kafka's `LogConfig` rules).

use kafka_protocol::ResponseError;

use super::error::{fail, ControllerError};
use crate::storage::BATCH_HEADER_LEN;

pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";
pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";

/// Every topic config the controller accepts (`segment.ms` is refused by name).
pub const SUPPORTED: [&str; 10] = [
    MIN_INSYNC_REPLICAS,
    UNCLEAN_LEADER_ELECTION_ENABLE,
    RETENTION_MS,
    RETENTION_BYTES,
    CLEANUP_POLICY,
    SEGMENT_BYTES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_TYPE,
    MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
    MESSAGE_TIMESTAMP_AFTER_MAX_MS,
];

/// `message.timestamp.type`'s value, as Kafka spells it (`CreateTime`, `LogAppendTime`).
pub fn parse_timestamp_type(v: &str) -> Option<crate::storage::TimestampType> {
    match v.trim() {
        "CreateTime" => Some(crate::storage::TimestampType::CreateTime),
        "LogAppendTime" => Some(crate::storage::TimestampType::LogAppendTime),
        _ => None,
    }
}

/// Kafka parses booleans case-insensitively.
pub fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Checks one topic config: known name, value of the right type and range. INVALID_CONFIG
/// otherwise.
pub fn validate(name: &str, value: &str) -> Result<(), ControllerError> {
    let v = value.trim();
    let int_at_least = |min: i64, max: i64| -> Result<(), ControllerError> {
        match v.parse::<i64>() {
            Ok(n) if n >= min && n <= max => Ok(()),
            _ => fail(
                ResponseError::InvalidConfig,
                format!("Invalid value {value} for configuration {name}: must be an integer in [{min}, {max}]"),
            ),
        }
    };
    match name {
        MIN_INSYNC_REPLICAS => int_at_least(1, i32::MAX.into()),
        UNCLEAN_LEADER_ELECTION_ENABLE => match parse_bool(v) {
            Some(_) => Ok(()),
            None => fail(
                ResponseError::InvalidConfig,
                format!("Invalid value {value} for configuration {name}: expected true or false"),
            ),
        },
        RETENTION_MS => int_at_least(-1, i64::MAX),
        RETENTION_BYTES => int_at_least(i64::MIN, i64::MAX),
        // Osprey's log cannot roll below one batch header (Kafka's own floor is lower).
        SEGMENT_BYTES => int_at_least(BATCH_HEADER_LEN as i64, i32::MAX.into()),
        // Osprey rolls segments by size only: a time-based roll it would not do is refused
        // rather than accepted and ignored.
        SEGMENT_MS => fail(
            ResponseError::InvalidConfig,
            format!("Invalid value {value} for configuration {name}: Osprey rolls segments by size only (segment.bytes); segment.ms is not supported"),
        ),
        MAX_MESSAGE_BYTES => int_at_least(0, i32::MAX.into()),
        MESSAGE_TIMESTAMP_BEFORE_MAX_MS | MESSAGE_TIMESTAMP_AFTER_MAX_MS => {
            int_at_least(0, i64::MAX)
        }
        MESSAGE_TIMESTAMP_TYPE => match parse_timestamp_type(v) {
            Some(_) => Ok(()),
            None => fail(
                ResponseError::InvalidConfig,
                format!(
                    "Invalid value {value} for configuration {name}: String must be one of: CreateTime, LogAppendTime"
                ),
            ),
        },
        CLEANUP_POLICY => {
            if v == "delete" {
                Ok(())
            } else {
                fail(
                    ResponseError::InvalidConfig,
                    format!("Invalid value {value} for configuration {name}: Osprey supports only delete"),
                )
            }
        }
        _ => fail(
            ResponseError::InvalidConfig,
            format!("Unknown topic config name: {name}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_configs_accept_legal_values() {
        for (k, v) in [
            (MIN_INSYNC_REPLICAS, "2"),
            (UNCLEAN_LEADER_ELECTION_ENABLE, "TRUE"),
            (UNCLEAN_LEADER_ELECTION_ENABLE, "false"),
            (RETENTION_MS, "-1"),
            (RETENTION_BYTES, "1073741824"),
            (CLEANUP_POLICY, "delete"),
            (SEGMENT_BYTES, "1048576"),
            (MAX_MESSAGE_BYTES, "1048588"),
        ] {
            assert_eq!(validate(k, v), Ok(()), "{k}={v}");
        }
    }

    #[test]
    fn bad_names_and_values_are_invalid_config() {
        for (k, v) in [
            ("no.such.config", "1"),
            (MIN_INSYNC_REPLICAS, "0"),
            (MIN_INSYNC_REPLICAS, "two"),
            (UNCLEAN_LEADER_ELECTION_ENABLE, "yes"),
            (RETENTION_MS, "-2"),
            (CLEANUP_POLICY, "compact"),
            (SEGMENT_BYTES, "10"),
            (SEGMENT_BYTES, "4294967296"),
            (SEGMENT_MS, "604800000"),
        ] {
            let e = validate(k, v).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidConfig, "{k}={v}");
        }
        assert!(SUPPORTED.iter().all(|k| validate(k, "").is_err()));
    }

    #[test]
    fn message_timestamp_type_takes_kafkas_two_values() {
        assert!(validate(MESSAGE_TIMESTAMP_TYPE, "LogAppendTime").is_ok());
        assert!(validate(MESSAGE_TIMESTAMP_TYPE, "CreateTime").is_ok());
        let err = validate(MESSAGE_TIMESTAMP_TYPE, "logappendtime").unwrap_err();
        assert!(
            format!("{err:?}").contains("CreateTime, LogAppendTime"),
            "{err:?}"
        );
        assert!(validate(MESSAGE_TIMESTAMP_AFTER_MAX_MS, "3600000").is_ok());
        assert!(validate(MESSAGE_TIMESTAMP_BEFORE_MAX_MS, "-1").is_err());
    }
}
