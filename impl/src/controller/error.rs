//! The controller's error: a Kafka error code and a message, as the response carries them.

use kafka_protocol::ResponseError;

/// Why an operation was refused. `error` is the Kafka error the driver puts in the response
/// (`error.code()` is Kafka's number); `message` is the response's error message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {message}")]
pub struct ControllerError {
    pub error: ResponseError,
    pub message: String,
}

impl ControllerError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            error,
            message: message.into(),
        }
    }

    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        self.error.code()
    }
}

/// Shorthand for `Err(ControllerError::new(..))`.
pub(crate) fn fail<T>(
    error: ResponseError,
    message: impl Into<String>,
) -> Result<T, ControllerError> {
    Err(ControllerError::new(error, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_kafkas_code_and_a_message() {
        let e = ControllerError::new(ResponseError::StaleBrokerEpoch, "broker 1 epoch 3 is not 4");
        assert_eq!(e.code(), 77);
        assert_eq!(e.to_string(), "StaleBrokerEpoch: broker 1 epoch 3 is not 4");
    }
}
