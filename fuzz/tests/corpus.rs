//! Replays every committed corpus input (the seeds and whatever the fuzzer kept or found)
//! through the same checks the fuzz targets run, with the stable compiler and no fuzzer:
//! part of the test suite, so an input that once crashed a decoder stays a test.

use std::fs;
use std::path::Path;

#[global_allocator]
static ALLOC: osprey_fuzz::alloc::Counting = osprey_fuzz::alloc::Counting;

#[test]
fn every_committed_input_passes_its_target_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, check) in osprey_fuzz::TARGETS {
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.expect("entry").path()).collect();
            paths.sort();
            for path in paths {
                let data = fs::read(&path).expect("read input");
                check(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no committed inputs for {target}");
        eprintln!("{target}: {n} inputs");
    }
}
