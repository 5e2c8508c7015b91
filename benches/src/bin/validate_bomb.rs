//! Peak memory and time of the leader's validation against decompression bombs: for each
//! codec, one record whose value is `--mib` MiB of zeros (gzip: ~200 KB for 200 MiB),
//! built as a stream so that building it does not itself use the memory being measured.
//! Prints the process's resident memory before and its peak while validating each bomb.
//!
//! `cargo run --release -p osprey-benches --bin validate_bomb -- --mib 200`

use std::io::{self, Read, Write};
use std::time::Instant;

use clap::Parser;
use osprey_broker::storage::builder::{put_varint, put_varlong};
use osprey_broker::storage::{validate_produce, BatchBuilder, Compression, ValidationConfig};

#[derive(Parser)]
struct Args {
    /// Decompressed size of each bomb, MiB.
    #[arg(long, default_value_t = 200)]
    mib: usize,
}

/// A `/proc/self/status` field of this process, KiB (`VmHWM`: peak resident set since the
/// last reset; `VmRSS`: resident now).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The uncompressed records section as a stream: one record, `n` zero bytes of value.
fn records(n: usize) -> impl Read {
    let mut body = bytes::BytesMut::new();
    body.extend_from_slice(&[0]);
    put_varlong(&mut body, 0);
    put_varint(&mut body, 0);
    put_varint(&mut body, -1);
    put_varint(&mut body, n as i32);
    let mut head = bytes::BytesMut::new();
    put_varint(&mut head, (body.len() + n + 1) as i32);
    head.extend_from_slice(&body);
    io::Cursor::new(head.to_vec())
        .chain(io::repeat(0).take(n as u64))
        .chain(io::Cursor::new(vec![0u8]))
}

fn compress_stream(codec: Compression, raw_snappy: bool, n: usize) -> Vec<u8> {
    let mut src = records(n);
    if raw_snappy {
        // librdkafka's form: one raw block for the whole records section.
        let mut all = Vec::new();
        src.read_to_end(&mut all).expect("records");
        return snap::raw::Encoder::new()
            .compress_vec(&all)
            .expect("snappy");
    }
    match codec {
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            io::copy(&mut src, &mut e).expect("gzip");
            e.finish().expect("gzip")
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            io::copy(&mut src, &mut e).expect("lz4");
            e.finish().expect("lz4")
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(src, ruzstd::encoding::CompressionLevel::Fastest)
        }
        Compression::Snappy | Compression::None => {
            // xerial framing, 32 KiB blocks (Java's block size), compressed one at a time.
            let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
            let mut enc = snap::raw::Encoder::new();
            let mut chunk = vec![0u8; 32 * 1024];
            loop {
                let k = read_full(&mut src, &mut chunk);
                if k == 0 {
                    break;
                }
                let block = enc.compress_vec(&chunk[..k]).expect("snappy");
                out.write_all(&(block.len() as u32).to_be_bytes()).ok();
                out.extend_from_slice(&block);
            }
            out
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut k = 0;
    while k < buf.len() {
        match r.read(&mut buf[k..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => k += n,
        }
    }
    k
}

fn main() {
    let args = Args::parse();
    let n = args.mib << 20;
    let default = ValidationConfig::new(1_048_588, 0);
    println!(
        "bound: decompressed at most {} B (16 x max.message.bytes 1048588)",
        default.max_uncompressed_bytes
    );
    for (name, codec, raw) in [
        ("gzip", Compression::Gzip, false),
        ("snappy", Compression::Snappy, false),
        ("snappy-raw", Compression::Snappy, true),
        ("lz4", Compression::Lz4, false),
        ("zstd", Compression::Zstd, false),
    ] {
        let payload = compress_stream(codec, raw, n);
        // A header around the compressed records (lastOffsetDelta 0, count 1), CRC sealed.
        let mut b = BatchBuilder::new(0).record(0, None, None).build().to_vec();
        b.truncate(61);
        b.extend_from_slice(&payload);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[22] = codec.id();
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        // Reset the peak to the current RSS (Linux: clear_refs 5), so the peak after
        // validation is this validation's own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        // Snappy compresses at most ~21:1, so its bombs are larger than max.message.bytes;
        // let the wire size pass so that the decompression bound is what is measured.
        let config = ValidationConfig {
            max_batch_bytes: default.max_batch_bytes.max(b.len() as u64),
            ..default
        };
        let before = status_kib("VmRSS:");
        let t = Instant::now();
        let result = validate_produce(&b, &config);
        let took = t.elapsed();
        let after = status_kib("VmHWM:");
        let code = result.err().map_or(0, |r| r.error_code);
        println!(
            "{name:>10}: {} MiB in {} B on the wire -> error {code} in {:.1} ms; RSS {} KiB before, peak {} KiB during (+{} KiB)",
            args.mib,
            b.len(),
            took.as_secs_f64() * 1e3,
            before,
            after,
            after.saturating_sub(before)
        );
    }
}
