//! The Kafka wire protocol front end: bytes on a socket in, typed kafka-protocol
//! requests to a [`RequestHandler`], typed responses back out. No broker logic lives here.
//!
//! * [`frame`] — i32 size-prefixed framing with `socket.request.max.bytes` enforced
//!   before allocation.
//! * [`request`] — header + body decoding with kafka-protocol, after the version check
//!   against [`versions`] and the allocation-safety walk in [`schema`].
//! * [`response`] — response header + body encoding (ApiVersions always uses header v0).
//! * [`versions`] — the one table of served APIs and versions.
//! * [`server`] — the pipelined, order-preserving per-connection loop.
//!
//! Every Kafka message struct comes from kafka-protocol; nothing here defines its own.

pub mod frame;
pub mod request;
pub mod response;
pub mod schema;
pub mod server;
pub mod versions;

pub use frame::{FrameError, FrameReader, DEFAULT_MAX_REQUEST_BYTES};
pub use request::{decode_request, encode_request, Decoded, RequestError};
pub use response::{
    decode_response, encode_response, encode_unsupported_api_versions, ResponseError,
};
pub use server::{
    serve_connection, serve_connection_with, ConnectionConfig, ConnectionError, RequestHandler,
};
pub use versions::{ServedApi, SERVED_APIS};
