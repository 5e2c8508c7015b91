//! Length-prefixed framing: every Kafka request is an `i32` big-endian size followed by
//! that many bytes.
//!
//! The size prefix is attacker-controlled, so it is checked (negative, or larger than
//! `socket.request.max.bytes`) *before* anything is allocated, exactly like Kafka's
//! `NetworkReceive`. Beyond that, the body buffer grows only as bytes actually arrive
//! (doubling from [`INITIAL_BODY_CAPACITY`], never past the declared size), so a peer
//! that announces a 100 MiB request and then stalls pins 64 KiB, not 100 MiB.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 104_857_600;

/// Largest body buffer allocated before any body byte has arrived.
pub const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Why a frame could not be read. Every variant means the connection must be closed:
/// after a bad size prefix the byte stream can no longer be re-synchronised.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative (Kafka: `InvalidReceiveException`).
    #[error("invalid negative frame size {0}")]
    NegativeSize(i32),
    /// The size prefix exceeds the configured `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge {
        /// Declared body size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The peer closed the connection part-way through a frame.
    #[error("connection closed mid-frame after {received} of {expected} bytes")]
    Truncated {
        /// Bytes of the current section (prefix or body) that did arrive.
        received: usize,
        /// Bytes the section needed.
        expected: usize,
    },
    /// The underlying transport failed.
    #[error("i/o error while reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads size-prefixed frames from a byte stream, one at a time.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max_frame_bytes: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`, refusing frames whose body is larger than `max_frame_bytes`
    /// (Kafka's `socket.request.max.bytes`, see [`DEFAULT_MAX_REQUEST_BYTES`]).
    pub fn new(inner: R, max_frame_bytes: usize) -> Self {
        Self {
            inner,
            max_frame_bytes,
        }
    }

    /// The configured maximum body size.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Gives the underlying reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next frame body (without its size prefix).
    ///
    /// Returns `Ok(None)` when the peer closed the stream cleanly between frames.
    /// Not cancel-safe: dropping the future part-way loses the partial frame.
    pub async fn read_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let mut prefix = [0u8; 4];
        let got = read_full(&mut self.inner, &mut prefix).await?;
        if got == 0 {
            return Ok(None);
        }
        if got < prefix.len() {
            return Err(FrameError::Truncated {
                received: got,
                expected: prefix.len(),
            });
        }
        let size = check_size(i32::from_be_bytes(prefix), self.max_frame_bytes)?;
        self.read_body(size).await.map(Some)
    }

    /// Reads exactly `size` bytes, growing the buffer only as data arrives.
    async fn read_body(&mut self, size: usize) -> Result<BytesMut, FrameError> {
        // A Vec rather than a BytesMut because `Vec::reserve_exact` is exact, so the
        // allocation can never exceed `size`; the conversion below does not copy.
        let mut body: Vec<u8> = Vec::with_capacity(size.min(INITIAL_BODY_CAPACITY));
        while body.len() < size {
            if body.len() == body.capacity() {
                let grow = body.capacity().max(INITIAL_BODY_CAPACITY);
                body.reserve_exact(grow.min(size - body.len()));
            }
            let want = (body.capacity() - body.len()).min(size - body.len());
            let n = (&mut self.inner)
                .take(want as u64)
                .read_buf(&mut body)
                .await?;
            if n == 0 {
                return Err(FrameError::Truncated {
                    received: body.len(),
                    expected: size,
                });
            }
        }
        Ok(BytesMut::from(Bytes::from(body)))
    }
}

/// Validates a size prefix against the configured maximum.
///
/// Public so that callers with their own buffering (and the tests) apply the same rule.
pub fn check_size(size: i32, max_frame_bytes: usize) -> Result<usize, FrameError> {
    let size = usize::try_from(size).map_err(|_| FrameError::NegativeSize(size))?;
    if size > max_frame_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_frame_bytes,
        });
    }
    Ok(size)
}

/// Fills `buf` unless the stream ends first; returns how many bytes were read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    async fn read_all(input: &[u8], max: usize) -> Vec<Result<Option<BytesMut>, FrameError>> {
        let mut reader = FrameReader::new(input, max);
        let mut out = Vec::new();
        loop {
            let r = reader.read_frame().await;
            let stop = !matches!(r, Ok(Some(_)));
            out.push(r);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn reads_consecutive_frames_then_clean_eof() {
        let mut input = framed(b"hello");
        input.extend(framed(b""));
        input.extend(framed(&[7u8; 70_000]));
        let got = read_all(&input, 1 << 20).await;
        assert_eq!(got.len(), 4);
        assert_eq!(&got[0].as_ref().unwrap().as_ref().unwrap()[..], b"hello");
        assert!(got[1].as_ref().unwrap().as_ref().unwrap().is_empty());
        let big = got[2].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(big.len(), 70_000);
        assert!(big.iter().all(|&b| b == 7));
        assert!(matches!(got[3], Ok(None)));
    }

    #[tokio::test]
    async fn oversize_rejected_from_the_prefix_alone() {
        // Only the prefix is sent: rejection cannot depend on (or wait for) the body.
        let input = (1_000_001i32).to_be_bytes();
        let got = read_all(&input, 1_000_000).await;
        assert!(matches!(
            got[0],
            Err(FrameError::TooLarge {
                size: 1_000_001,
                max: 1_000_000
            })
        ));
        // The Kafka default is accepted exactly at the limit.
        assert_eq!(
            check_size(DEFAULT_MAX_REQUEST_BYTES as i32, DEFAULT_MAX_REQUEST_BYTES).unwrap(),
            DEFAULT_MAX_REQUEST_BYTES
        );
        assert!(check_size(i32::MAX, DEFAULT_MAX_REQUEST_BYTES).is_err());
    }

    #[tokio::test]
    async fn negative_size_rejected() {
        for size in [-1i32, i32::MIN] {
            let got = read_all(&size.to_be_bytes(), 1 << 20).await;
            assert!(matches!(got[0], Err(FrameError::NegativeSize(s)) if s == size));
        }
    }

    #[tokio::test]
    async fn truncated_prefix_and_body() {
        let got = read_all(&[0, 0], 1 << 20).await;
        assert!(matches!(
            got[0],
            Err(FrameError::Truncated {
                received: 2,
                expected: 4
            })
        ));
        let mut input = framed(b"0123456789");
        input.truncate(4 + 6);
        let got = read_all(&input, 1 << 20).await;
        assert!(matches!(
            got[0],
            Err(FrameError::Truncated {
                received: 6,
                expected: 10
            })
        ));
    }

    #[tokio::test]
    async fn body_buffer_grows_with_data_not_with_the_prefix() {
        // Declares 10 MiB but sends 3 bytes: the reader must fail having allocated at most
        // the initial chunk, which we observe through the capacity of a successful small
        // read and the fact that the truncated read returns promptly.
        let mut input = (10i32 << 20).to_be_bytes().to_vec();
        input.extend_from_slice(b"abc");
        let got = read_all(&input, 16 << 20).await;
        assert!(matches!(
            got[0],
            Err(FrameError::Truncated {
                received: 3,
                expected
            }) if expected == 10 << 20
        ));
        let input = framed(&[1u8; 100]);
        let mut reader = FrameReader::new(&input[..], 1 << 20);
        let frame = reader.read_frame().await.unwrap().unwrap();
        assert!(frame.capacity() <= 100);
    }
}
