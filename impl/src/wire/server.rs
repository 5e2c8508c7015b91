//! The per-connection loop: frames in, handler calls, responses out — no broker logic.
//!
//! Kafka guarantees that responses on a connection come back in request order, and
//! clients pipeline (librdkafka keeps up to `max.in.flight` requests outstanding). So the
//! connection is split in two halves that run concurrently:
//!
//! * the reader reads and decodes the next request while earlier ones are still being
//!   handled. It runs each handler up to its first wait itself, in request order, and then
//!   moves the rest to a task of its own, so handlers wait (and may finish) in any order;
//! * the writer awaits those tasks strictly in request order and writes each response.
//!
//! Kafka also guarantees that a connection's requests are *processed* in the order they
//! were sent, and clients rely on it: librdkafka pipelines a consumer's OffsetCommits, and
//! an older commit applied after a newer one would move the group's offset back. Handlers
//! apply a request to the broker's state before their first wait (see [`RequestHandler`]),
//! which is why the reader starts them one by one.
//!
//! At most `max_in_flight` requests are between "read" and "response written" at any
//! time: the reader takes a semaphore permit before reading a frame, and the permit is
//! released only after the response is written. That bounds memory per connection to
//! `max_in_flight` frames plus responses.
//!
//! Bad input (a bad frame, an unknown API or version, a malformed body) stops the reader:
//! responses to the requests before it are still written, then the connection is closed
//! and `serve_connection` returns the error, after a `tracing` warning. A handler error
//! or panic closes the connection too (the panic stays inside its task). Handler tasks
//! already started are not cancelled when the connection closes, so the broker never sees
//! a request half-applied because its client went away.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::frame::{FrameError, FrameReader, DEFAULT_MAX_REQUEST_BYTES};
use super::request::{decode_request, Decoded, RequestError};
use super::response::{encode_response, encode_unsupported_api_versions, ResponseError};

/// Broker logic behind a connection.
///
/// Implementations may be written as `async fn handle(...)`; the returned future must be
/// `Send` because each request is handled on its own task.
///
/// Ordering: the part of `handle` before its first wait (its first `.await` that is not
/// ready at once) runs on the connection's reader, for one request after the other in
/// request order. A handler must apply its request there — append a produce, hand a
/// commit to the group coordinator — and only then wait for the outcome, so that requests
/// pipelined on one connection take effect in the order they were sent, as in Kafka.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request. `Ok(None)` means "send no response" (Produce with acks=0);
    /// `Err` closes the connection.
    fn handle(
        &self,
        header: RequestHeader,
        request: RequestKind,
    ) -> impl Future<Output = anyhow::Result<Option<ResponseKind>>> + Send;
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Largest request body accepted (`socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Requests read but not yet answered, per connection (at least 1).
    pub max_in_flight: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight: 32,
        }
    }
}

/// Why a connection was closed other than by the peer hanging up between requests.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Bad framing (also: the peer vanished mid-frame).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame that is not a servable request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A response that could not be encoded.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The handler failed.
    #[error("request handler failed for correlation id {correlation_id}: {source:#}")]
    Handler {
        /// The request's correlation id.
        correlation_id: i32,
        /// The handler's error.
        source: anyhow::Error,
    },
    /// The handler panicked (or its task was cancelled).
    #[error("request handler task for correlation id {correlation_id} failed: {source}")]
    HandlerPanicked {
        /// The request's correlation id.
        correlation_id: i32,
        /// The join error.
        source: tokio::task::JoinError,
    },
    /// Writing a response failed.
    #[error("i/o error writing a response: {0}")]
    Write(std::io::Error),
}

/// Serves one connection with [`ConnectionConfig::default`]; see [`serve_connection_with`].
pub async fn serve_connection<S, H>(stream: S, handler: Arc<H>) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Send,
    H: RequestHandler,
{
    serve_connection_with(stream, handler, ConnectionConfig::default()).await
}

/// Serves one connection until the peer closes it (`Ok`) or something goes wrong
/// (`Err`, already logged as a warning). Never panics on peer input.
pub async fn serve_connection_with<S, H>(
    stream: S,
    handler: Arc<H>,
    config: ConnectionConfig,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Send,
    H: RequestHandler,
{
    let max_in_flight = config.max_in_flight.max(1);
    let (read_half, write_half) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(max_in_flight);
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let reader = read_requests(
        FrameReader::new(read_half, config.max_request_bytes),
        handler,
        permits,
        tx,
    );
    let writer = write_responses(write_half, rx);
    let (read_result, write_result) = tokio::join!(reader, writer);
    // A writer failure is the root cause when both failed (the reader then only saw the
    // writer go away, which it reports as Ok).
    let result = write_result.and(read_result);
    if let Err(e) = &result {
        tracing::warn!(error = %e, "closing Kafka connection");
    }
    result
}

/// A request between "read" and "response written".
struct InFlight {
    header: RequestHeader,
    reply: Reply,
    _permit: OwnedSemaphorePermit,
}

type HandlerResult = anyhow::Result<Option<ResponseKind>>;

enum Reply {
    /// The handler finished before its first wait.
    Ready(Box<HandlerResult>),
    /// The rest of the handler, running on its own task.
    Handler(JoinHandle<HandlerResult>),
    UnsupportedApiVersions,
}

/// Runs a handler up to its first wait right here, on the reader, and only then hands the
/// rest to a task of its own. Kafka processes the requests of a connection in the order
/// they were sent; handlers apply a request to the broker's state before they wait (a
/// produce is appended, then waits for acks; an OffsetCommit enters the group coordinator,
/// then waits for its append), so starting them one after the other in request order keeps
/// that guarantee while their waits still overlap. Spawning right away would not: a task
/// scheduler runs spawned tasks in no promised order (tokio runs the newest one first), and
/// a client's pipelined OffsetCommits would then be applied out of order, an older offset
/// overwriting a newer one.
async fn start_in_order<F>(handler: F) -> Reply
where
    F: Future<Output = HandlerResult> + Send + 'static,
{
    let mut handler = Box::pin(handler);
    let first = std::future::poll_fn(|cx| {
        Poll::Ready(panic::catch_unwind(AssertUnwindSafe(|| {
            handler.as_mut().poll(cx)
        })))
    })
    .await;
    match first {
        Ok(Poll::Ready(result)) => Reply::Ready(Box::new(result)),
        // Polled again on its task, which registers that task's waker.
        Ok(Poll::Pending) => Reply::Handler(tokio::spawn(handler)),
        // The panic surfaces through the task's JoinError, as for a panic after a wait.
        Err(payload) => Reply::Handler(tokio::spawn(async move { panic::resume_unwind(payload) })),
    }
}

async fn read_requests<R, H>(
    mut frames: FrameReader<R>,
    handler: Arc<H>,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<InFlight>,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Unpin,
    H: RequestHandler,
{
    loop {
        // Stop early if the writer is gone; reading more would be pointless.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            _ = tx.closed() => return Ok(()),
        };
        let frame = tokio::select! {
            frame = frames.read_frame() => frame?,
            _ = tx.closed() => return Ok(()),
        };
        let Some(frame) = frame else {
            return Ok(()); // clean EOF between requests
        };
        let in_flight = match decode_request(frame.freeze())? {
            Decoded::Request { header, body } => {
                let handler = handler.clone();
                let task_header = header.clone();
                let reply =
                    start_in_order(async move { handler.handle(task_header, body).await }).await;
                InFlight {
                    header,
                    reply,
                    _permit: permit,
                }
            }
            Decoded::UnsupportedApiVersions { header } => InFlight {
                header,
                reply: Reply::UnsupportedApiVersions,
                _permit: permit,
            },
        };
        // Capacity equals the permit count, so this never waits; it fails only if the
        // writer has stopped.
        if tx.send(in_flight).await.is_err() {
            return Ok(());
        }
    }
}

async fn write_responses<W>(
    mut out: W,
    mut rx: mpsc::Receiver<InFlight>,
) -> Result<(), ConnectionError>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(in_flight) = rx.recv().await {
        let correlation_id = in_flight.header.correlation_id;
        let result = match in_flight.reply {
            Reply::UnsupportedApiVersions => {
                encode_unsupported_api_versions(&mut buf, correlation_id)?;
                Ok(None)
            }
            Reply::Ready(result) => *result,
            Reply::Handler(task) => {
                task.await
                    .map_err(|source| ConnectionError::HandlerPanicked {
                        correlation_id,
                        source,
                    })?
            }
        };
        match result {
            Ok(Some(response)) => encode_response(&mut buf, &in_flight.header, &response)?,
            Ok(None) => {}
            Err(source) => {
                return Err(ConnectionError::Handler {
                    correlation_id,
                    source,
                })
            }
        }
        // Batch writes while more responses are already queued; flush when caught up.
        if !buf.is_empty() && (rx.is_empty() || buf.len() >= 1 << 20) {
            out.write_all(&buf).await.map_err(ConnectionError::Write)?;
            buf.clear();
        }
        if rx.is_empty() {
            out.flush().await.map_err(ConnectionError::Write)?;
        }
        // `in_flight._permit` drops here: the reader may take another request.
    }
    if !buf.is_empty() {
        out.write_all(&buf).await.map_err(ConnectionError::Write)?;
    }
    out.shutdown().await.map_err(ConnectionError::Write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::request::encode_request;
    use crate::wire::response::decode_response;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::time::timeout;

    /// Answers Heartbeat with error_code = generation_id (so tests can tag responses),
    /// sleeping `generation_id` ms first, or returning nothing / failing on magic values.
    /// Records the correlation id of each request as its handler starts (the part of a
    /// handler before its first wait, where a broker applies the request).
    #[derive(Default)]
    struct Echo {
        running: AtomicUsize,
        peak: AtomicUsize,
        applied: std::sync::Mutex<Vec<i32>>,
    }

    impl RequestHandler for Echo {
        async fn handle(
            &self,
            header: RequestHeader,
            request: RequestKind,
        ) -> anyhow::Result<Option<ResponseKind>> {
            self.applied.lock().unwrap().push(header.correlation_id);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let result = match request {
                RequestKind::Heartbeat(hb) => {
                    let g = hb.generation_id;
                    tokio::time::sleep(Duration::from_millis(g.max(0) as u64)).await;
                    match g {
                        -1 => Ok(None),
                        -2 => Err(anyhow::anyhow!("boom")),
                        -3 => panic!("handler panic (expected by the test)"),
                        _ => Ok(Some(ResponseKind::Heartbeat(
                            HeartbeatResponse::default().with_error_code(g as i16),
                        ))),
                    }
                }
                RequestKind::ApiVersions(_) => Ok(Some(ResponseKind::ApiVersions(
                    crate::wire::versions::api_versions_response(0),
                ))),
                other => Err(anyhow::anyhow!("unexpected {other:?}")),
            };
            self.running.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    fn heartbeat(correlation_id: i32, generation_id: i32) -> BytesMut {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Heartbeat as i16)
            .with_request_api_version(4)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let body = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_static_str("m"));
        let mut out = BytesMut::new();
        encode_request(&mut out, &header, &RequestKind::Heartbeat(body)).unwrap();
        out
    }

    async fn read_frame(client: &mut DuplexStream) -> Option<BytesMut> {
        let mut reader = FrameReader::new(client, 1 << 20);
        timeout(Duration::from_secs(10), reader.read_frame())
            .await
            .expect("timed out waiting for a response")
            .unwrap()
    }

    /// (correlation id, error code) of a Heartbeat v4 response frame.
    fn heartbeat_reply(frame: BytesMut) -> (i32, i16) {
        let (h, body) = decode_response(frame.freeze(), ApiKey::Heartbeat, 4).unwrap();
        let ResponseKind::Heartbeat(body) = body else {
            panic!("{body:?}")
        };
        (h.correlation_id, body.error_code)
    }

    fn start(
        config: ConnectionConfig,
    ) -> (
        DuplexStream,
        Arc<Echo>,
        JoinHandle<Result<(), ConnectionError>>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let handler = Arc::new(Echo::default());
        let h = handler.clone();
        let task = tokio::spawn(async move { serve_connection_with(server, h, config).await });
        (client, handler, task)
    }

    async fn finish(task: JoinHandle<Result<(), ConnectionError>>) -> Result<(), ConnectionError> {
        timeout(Duration::from_secs(10), task)
            .await
            .expect("server did not stop")
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_responses_come_back_in_request_order() {
        let (mut client, handler, task) = start(ConnectionConfig::default());
        // Earlier requests take longer, so handlers finish in reverse order.
        let delays = [80, 60, 40, 20, 0];
        for (i, d) in delays.iter().enumerate() {
            client.write_all(&heartbeat(i as i32, *d)).await.unwrap();
        }
        for (i, d) in delays.iter().enumerate() {
            let frame = read_frame(&mut client).await.unwrap();
            assert_eq!(heartbeat_reply(frame), (i as i32, *d as i16));
        }
        // All five were being handled at once: the reader did not wait for responses.
        assert_eq!(handler.peak.load(Ordering::SeqCst), delays.len());
        drop(client);
        finish(task).await.unwrap();
    }

    /// Kafka processes a connection's requests in the order they were sent (a client's
    /// pipelined OffsetCommits or idempotent Produces rely on it): each handler starts, and
    /// does what it does before its first wait, only after the previous one did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_requests_are_applied_in_request_order() {
        let (mut client, handler, task) = start(ConnectionConfig::default());
        let n = 24;
        let mut burst = BytesMut::new();
        for i in 0..n {
            burst.extend_from_slice(&heartbeat(i, 5));
        }
        client.write_all(&burst).await.unwrap();
        for i in 0..n {
            let frame = read_frame(&mut client).await.unwrap();
            assert_eq!(heartbeat_reply(frame), (i, 5));
        }
        assert_eq!(
            *handler.applied.lock().unwrap(),
            (0..n).collect::<Vec<i32>>()
        );
        // They still overlap while waiting.
        assert!(handler.peak.load(Ordering::SeqCst) > 1);
        drop(client);
        finish(task).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_requests_are_bounded() {
        let config = ConnectionConfig {
            max_in_flight: 3,
            ..Default::default()
        };
        let (mut client, handler, task) = start(config);
        for i in 0..10 {
            client.write_all(&heartbeat(i, 30)).await.unwrap();
        }
        for i in 0..10 {
            let frame = read_frame(&mut client).await.unwrap();
            assert_eq!(heartbeat_reply(frame).0, i);
        }
        assert_eq!(handler.peak.load(Ordering::SeqCst), 3);
        drop(client);
        finish(task).await.unwrap();
    }

    #[tokio::test]
    async fn no_response_requests_keep_order() {
        let (mut client, _, task) = start(ConnectionConfig::default());
        client.write_all(&heartbeat(1, 5)).await.unwrap();
        client.write_all(&heartbeat(2, -1)).await.unwrap(); // like acks=0
        client.write_all(&heartbeat(3, 0)).await.unwrap();
        assert_eq!(
            heartbeat_reply(read_frame(&mut client).await.unwrap()),
            (1, 5)
        );
        assert_eq!(
            heartbeat_reply(read_frame(&mut client).await.unwrap()),
            (3, 0)
        );
        drop(client);
        finish(task).await.unwrap();
    }

    #[tokio::test]
    async fn bad_frame_closes_after_answering_earlier_requests() {
        let (mut client, _, task) = start(ConnectionConfig {
            max_request_bytes: 1000,
            ..Default::default()
        });
        client.write_all(&heartbeat(1, 10)).await.unwrap();
        client.write_all(&5000i32.to_be_bytes()).await.unwrap();
        assert_eq!(
            heartbeat_reply(read_frame(&mut client).await.unwrap()),
            (1, 10)
        );
        assert!(
            read_frame(&mut client).await.is_none(),
            "connection not closed"
        );
        assert!(matches!(
            finish(task).await,
            Err(ConnectionError::Frame(FrameError::TooLarge {
                size: 5000,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn unknown_api_key_and_garbage_close() {
        for garbage in [
            &[0x7f, 0x7f, 0, 0, 0, 0, 0, 1][..],        // unknown key
            &[0, 12, 0, 4, 0, 0, 0, 1, 0x00, 0x01][..], // truncated Heartbeat v4
            &[0, 0, 0, 2, 0, 0, 0, 1][..],              // Produce v2: not served
        ] {
            let (mut client, _, task) = start(ConnectionConfig::default());
            let mut frame = (garbage.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(garbage);
            client.write_all(&frame).await.unwrap();
            assert!(read_frame(&mut client).await.is_none());
            assert!(matches!(
                finish(task).await,
                Err(ConnectionError::Request(_))
            ));
        }
    }

    #[tokio::test]
    async fn handler_error_or_panic_closes() {
        for (generation, panicked) in [(-2, false), (-3, true)] {
            let (mut client, _, task) = start(ConnectionConfig::default());
            client.write_all(&heartbeat(1, generation)).await.unwrap();
            assert!(read_frame(&mut client).await.is_none());
            let err = finish(task).await.unwrap_err();
            assert_eq!(
                matches!(err, ConnectionError::HandlerPanicked { .. }),
                panicked,
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn unsupported_api_versions_is_answered_then_the_connection_continues() {
        let (mut client, _, task) = start(ConnectionConfig::default());
        // ApiVersions v4 (what the Java 4.x client tries first).
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(4)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("java")));
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            &header,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .unwrap();
        client.write_all(&out).await.unwrap();
        let frame = read_frame(&mut client).await.unwrap();
        let (h, body) = decode_response(frame.freeze(), ApiKey::ApiVersions, 0).unwrap();
        assert_eq!(h.correlation_id, 1);
        let ResponseKind::ApiVersions(body) = body else {
            panic!()
        };
        assert_eq!(body.error_code, crate::error_codes::UNSUPPORTED_VERSION);
        // The retry at v3 works on the same connection.
        let header = header.with_request_api_version(3).with_correlation_id(2);
        out.clear();
        encode_request(
            &mut out,
            &header,
            &RequestKind::ApiVersions(ApiVersionsRequest::default()),
        )
        .unwrap();
        client.write_all(&out).await.unwrap();
        let frame = read_frame(&mut client).await.unwrap();
        let (h, body) = decode_response(frame.freeze(), ApiKey::ApiVersions, 3).unwrap();
        assert_eq!(h.correlation_id, 2);
        assert!(matches!(body, ResponseKind::ApiVersions(b) if b.error_code == 0));
        drop(client);
        finish(task).await.unwrap();
    }

    #[tokio::test]
    async fn clean_close_between_requests_is_ok() {
        let (mut client, _, task) = start(ConnectionConfig::default());
        client.write_all(&heartbeat(1, 0)).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(
            heartbeat_reply(read_frame(&mut client).await.unwrap()),
            (1, 0)
        );
        let mut rest = Vec::new();
        timeout(Duration::from_secs(10), client.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
        finish(task).await.unwrap();
    }
}
