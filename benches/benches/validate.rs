//! The leader's produce validation (`storage::validate`) per batch: 100 records of 100 B
//! and of 1 KiB, uncompressed and with each codec. The uncompressed case is the hot path
//! (records walked in place, no copy); compressed cases are dominated by decompression.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use osprey_broker::storage::{validate_produce, BatchBuilder, Compression, ValidationConfig};

fn batch(records: usize, value_len: usize, codec: Compression) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000).compression(codec);
    for i in 0..records {
        // Text-like values (compressible, not trivially so), as a producer would send.
        let v: Vec<u8> = (0..value_len)
            .map(|j| b"abcdefghijklmnopqrstuvwxyz0123456789 "[(i * 7 + j * 13) % 37])
            .collect();
        b = b.record(1_700_000_000_000 + i as i64, Some(b"key"), Some(&v));
    }
    b.build().to_vec()
}

fn bench_validate(c: &mut Criterion) {
    let config = ValidationConfig::new(1_048_588, 1_700_000_000_000);
    for value_len in [100usize, 1024] {
        let mut group = c.benchmark_group(format!("validate-100x{value_len}B"));
        group.sample_size(20);
        let raw_len = batch(100, value_len, Compression::None).len();
        group.throughput(Throughput::Bytes(raw_len as u64));
        for (name, codec) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let b = batch(100, value_len, codec);
            validate_produce(&b, &config).expect("valid");
            group.bench_function(name, |bench| {
                bench.iter(|| validate_produce(&b, &config).expect("valid").len())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
