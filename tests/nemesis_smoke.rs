//! The fault campaign's short run, inside the test command: a 3-controller, 3-broker
//! cluster in network namespaces on lazy filesystems, about two minutes of mixed faults
//! under librdkafka workloads, then the checker. Needs root, /dev/fuse, nftables and
//! python3 with confluent-kafka (scripts/test.sh installs them).

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn two_minutes_of_mixed_faults_lose_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(["nemesis", "run", "--seed", "1", "--time", "110s"])
        .arg("--dir")
        .arg(dir.path())
        .spawn()
        .expect("starting osprey nemesis");
    // Bounded: faults, the workload's drain, the read-back and the teardown.
    let deadline = Instant::now() + Duration::from_secs(540);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        if Instant::now() > deadline {
            // SIGTERM: the run heals and tears down its namespaces and mounts.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            panic!("osprey nemesis run did not finish within 9 minutes");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let run = dir.path().join("seed-1");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("summary.json")).expect("summary.json"),
    )
    .expect("summary is JSON");
    let r = &summary["report"];
    assert!(status.success(), "violations: {}", r["violations"]);
    let faults = r["faults"].as_object().expect("faults by kind");
    let total: u64 = faults.values().filter_map(|n| n.as_u64()).sum();
    assert!(total >= 20, "only {total} faults: {faults:?}");
    assert!(
        faults.len() >= 5,
        "only {} kinds of fault: {faults:?}",
        faults.len()
    );
    assert!(r["acked"].as_u64().unwrap() > 1000, "acked: {}", r["acked"]);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert_eq!(r["reordered"], 0);
    assert_eq!(r["read_complete"], true);
    assert!(r["observations"].as_u64().unwrap() > 100);
    let page = std::fs::read_to_string(run.join("timeline.html")).expect("timeline");
    assert!(page.contains("<svg"));
    // Nothing of the run is left: no namespace, interface or mount with its prefix.
    let pid = child.id();
    let netns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!netns.contains(&format!("osn{pid}-")), "{netns}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&format!("osn{pid}-")), "{mounts}");
}
