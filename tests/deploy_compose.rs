//! The deployment, as a user runs it: the `osprey` image built from this build's binary with
//! `deploy/build-image.sh`, the seed talk's single-node compose file (image swapped, nothing
//! else changed) serving kcat, and the HA compose files running the seed's scenarios and the
//! network partition one (`deploy/scenarios.py`) with nothing acknowledged lost.
//!
//! Needs a Docker engine and docker-compose (the machines and CI have both; nothing is
//! pulled). Every container, network and volume a test makes is removed when it ends, also
//! when it fails.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const OSPREY: &str = env!("CARGO_BIN_EXE_osprey");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One image build per test binary, shared by the tests (they run one at a time).
fn build_image() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        ok(Command::new("bash")
            .arg(root().join("deploy/build-image.sh"))
            .args(["--binary", OSPREY]));
    });
}

/// A lock so the compose tests, which publish the same host ports, run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A compose project, brought down with its volumes on drop.
struct Project {
    file: PathBuf,
    name: &'static str,
}

impl Project {
    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-f").arg(&self.file).args(["-p", self.name]);
        cmd
    }

    fn down(&self) {
        let _ = run(self
            .compose()
            .args(["down", "-v", "--remove-orphans", "-t", "5"]));
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.down();
    }
}

/// Runs `kcat ARGS` inside the network namespace of `container` (whose listeners bind its
/// loopback, as the seed's file has them).
fn kcat_in(container: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let pid = ok(Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", container]));
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", pid.trim(), "-n", "kcat"]).args(args);
    match stdin {
        None => run(&mut cmd),
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn kcat");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().expect("kcat")
        }
    }
}

#[test]
fn the_seeds_single_node_compose_file_serves_kcat_with_only_the_image_changed() {
    let _guard = serial();
    build_image();
    // The file is used as written; its `./data` volume lands beside the copy.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::copy(root().join("deploy/compose.seed.yml"), &file).unwrap();
    let seed = std::fs::read_to_string(&file).unwrap();
    assert!(seed.contains("KAFKA_KRAFT_MODE: \"true\"") && seed.contains("image: osprey:latest"));
    let project = Project {
        file,
        name: "osprey-seed-test",
    };
    project.down();
    ok(project.compose().args(["up", "-d"]));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kcat_in("broker-1", &["-b", "localhost:9092", "-L", "-m", "2"], None);
        if String::from_utf8_lossy(&out.stdout).contains("1 brokers") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the seed node never answered kcat -L: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let produced = kcat_in(
        "broker-1",
        &[
            "-b",
            "localhost:9092",
            "-P",
            "-t",
            "seed-topic",
            "-X",
            "acks=all",
        ],
        Some("bonjour\nkraft\n"),
    );
    assert!(produced.status.success(), "{produced:?}");
    let consumed = kcat_in(
        "broker-1",
        &[
            "-b",
            "localhost:9092",
            "-C",
            "-t",
            "seed-topic",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&consumed.stdout),
        "bonjour\nkraft\n"
    );

    // The unknown KAFKA_KRAFT_MODE is a warning that names it; the node formatted its volume.
    let logs = run(Command::new("docker").args(["logs", "broker-1"]));
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(
        logs.contains("`kraft.mode`") && logs.contains("isn't a known config"),
        "{logs}"
    );
    assert!(dir.path().join("data/meta.properties").exists());
}

/// Runs `deploy/scenarios.py` against a compose file and returns its JSON results.
fn scenarios(compose: &str, project: &'static str, which: &str) -> serde_json::Value {
    let _guard = serial();
    build_image();
    let guard = Project {
        file: root().join(compose),
        name: project,
    };
    let results = tempfile::NamedTempFile::new().unwrap();
    let out = run(Command::new("python3")
        .arg(root().join("deploy/scenarios.py"))
        .args([
            "--compose",
            compose,
            "--project",
            project,
            "--osprey",
            OSPREY,
        ])
        .args(["--scenarios", which, "--up", "--down", "--json"])
        .arg(results.path())
        .current_dir(root()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "scenarios failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(guard);
    serde_json::from_str(&std::fs::read_to_string(results.path()).unwrap()).unwrap()
}

fn assert_nothing_lost(results: &serde_json::Value) {
    let d = &results["durability"];
    assert_eq!(results["ok"], true, "{results:#}");
    assert!(d["acknowledged"].as_u64().unwrap() > 0, "{results:#}");
    assert_eq!(d["lost"], 0, "{results:#}");
    assert_eq!(d["duplicated"], 0, "{results:#}");
}

#[test]
fn the_ha_cluster_survives_a_stopped_and_a_killed_broker_a_stopped_controller_and_a_partition() {
    let r = scenarios("deploy/compose.ha.yml", "osprey-ha-test", "1,2,3,4");
    assert_nothing_lost(&r);
    for fault in ["broker_stop", "broker_kill", "network_partition"] {
        assert!(
            r[fault]["new_leader_first_ack_s"].as_f64().is_some(),
            "{fault}: {r:#}"
        );
        assert!(
            r[fault]["partitions"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{fault}: {r:#}"
        );
    }
    assert!(
        r["broker_stop"]["under_replicated_listed"]
            .as_u64()
            .unwrap()
            > 0
    );
    let c = &r["controller_stop"];
    assert_ne!(c["new_leader"], c["old_leader"], "{r:#}");
    assert!(c["new_epoch"].as_i64() > c["old_epoch"].as_i64(), "{r:#}");
}

#[test]
fn the_combined_cluster_replicates_and_elects_a_new_controller() {
    let r = scenarios("deploy/compose.combined.yml", "osprey-combined-test", "1,3");
    assert_nothing_lost(&r);
    let c = &r["controller_stop"];
    assert_ne!(c["new_leader"], c["old_leader"], "{r:#}");
}

/// A named volume and the containers started on it, removed on drop.
struct Scratch {
    volume: &'static str,
    containers: Vec<String>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", self.volume])
            .output();
    }
}

impl Scratch {
    /// Starts a broker node on the volume, detached; it waits for its (absent) controller
    /// unless it refuses the volume and exits.
    fn start(&mut self, cluster: &str, node_id: &str) -> String {
        let name = format!("{}-{cluster}-{node_id}", self.volume);
        let _ = run(Command::new("docker").args(["rm", "-f", &name]));
        self.containers.push(name.clone());
        ok(Command::new("docker").args([
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &format!("{}:/var/lib/kafka/data", self.volume),
            "-e",
            &format!("CLUSTER_ID={cluster}"),
            "-e",
            &format!("KAFKA_NODE_ID={node_id}"),
            "-e",
            "KAFKA_PROCESS_ROLES=broker",
            "-e",
            "KAFKA_LISTENERS=PLAINTEXT://:9092",
            "-e",
            "KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093",
            "-e",
            "KAFKA_LOG_DIRS=/var/lib/kafka/data",
            "osprey:latest",
        ]));
        name
    }

    fn logs(name: &str) -> String {
        String::from_utf8_lossy(&run(Command::new("docker").args(["logs", name])).stderr)
            .into_owned()
    }

    /// Waits (bounded) until the container has exited, and returns its exit code and logs.
    fn exited(name: &str) -> (i64, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = ok(Command::new("docker").args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                name,
            ]));
            if let Some(code) = state.trim().strip_prefix("false ") {
                return (code.parse().unwrap(), Self::logs(name));
            }
            assert!(
                Instant::now() < deadline,
                "{name} kept running: {}",
                Self::logs(name)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_volume_formatted_for_another_cluster_or_node_is_refused_naming_both() {
    let _guard = serial();
    build_image();
    let mut scratch = Scratch {
        volume: "osprey-test-foreign-volume",
        containers: Vec::new(),
    };
    let _ = run(Command::new("docker").args(["volume", "rm", "-f", scratch.volume]));

    // The first start formats the volume for cluster-a, node 4.
    let first = scratch.start("cluster-a", "4");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Scratch::logs(&first).contains("formatted the log directory") {
        assert!(Instant::now() < deadline, "the volume was never formatted");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(Command::new("docker").args(["rm", "-f", &first]));

    let (code, logs) = Scratch::exited(&scratch.start("cluster-b", "4"));
    assert_eq!(code, 1, "{logs}");
    assert!(
        logs.contains("cluster-a") && logs.contains("cluster-b"),
        "{logs}"
    );

    let (code, logs) = Scratch::exited(&scratch.start("cluster-a", "5"));
    assert_eq!(code, 1, "{logs}");
    assert!(
        logs.contains("node id 4") && logs.contains("node id 5"),
        "{logs}"
    );
}
