#![no_main]
//! cargo fuzz target: see `osprey_fuzz::partition_log::check` for what it asserts.

#[global_allocator]
static ALLOC: osprey_fuzz::alloc::Counting = osprey_fuzz::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| osprey_fuzz::partition_log::check(data));
