//! Real clients against the wire front end: Debian's kcat (librdkafka 2.0.2, the one that
//! chokes on tagged fields) and kafka-python, talking to a tiny test-only handler that
//! answers ApiVersions and Metadata (one broker, one topic with one partition).
//!
//! A missing client is skipped with a loud message rather than failing, so the test can
//! run on machines without them; CI installs both.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::wire::versions::api_versions_response;
use osprey_broker::wire::{serve_connection, RequestHandler};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const TOPIC: &str = "osprey-wire-test";
const BROKER_ID: i32 = 1;

/// Test-only broker: static cluster metadata, nothing else.
struct OneTopic {
    port: u16,
}

impl RequestHandler for OneTopic {
    async fn handle(
        &self,
        header: RequestHeader,
        request: RequestKind,
    ) -> anyhow::Result<Option<ResponseKind>> {
        let version = header.request_api_version;
        match request {
            RequestKind::ApiVersions(_) => {
                Ok(Some(ResponseKind::ApiVersions(api_versions_response(0))))
            }
            RequestKind::Metadata(_) => Ok(Some(ResponseKind::Metadata(self.metadata(version)))),
            other => anyhow::bail!("test handler does not serve {other:?}"),
        }
    }
}

impl OneTopic {
    fn metadata(&self, version: i16) -> MetadataResponse {
        let mut resp = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(BROKER_ID))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(self.port))])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(BROKER_ID))
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![BrokerId(BROKER_ID)])
                    .with_isr_nodes(vec![BrokerId(BROKER_ID)])])]);
        if version >= 1 {
            resp.controller_id = BrokerId(BROKER_ID);
        }
        if version >= 2 {
            resp.cluster_id = Some(StrBytes::from_static_str("osprey-test-cluster"));
        }
        resp
    }
}

/// Starts the accept loop on an ephemeral port; abort the handle to stop it.
async fn start_server() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(OneTopic { port });
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_connection(stream, handler).await {
                    eprintln!("connection from {peer} closed: {e}");
                }
            });
        }
    });
    (port, server)
}

fn installed(program: &str, probe: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs a client to completion within 60 s, returning (success, stdout, stderr).
async fn run(cmd: &mut Command) -> (bool, String, String) {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let out = timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("client timed out")
        .expect("client failed to start");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_lists_broker_topic_and_partition() {
    if !installed("kcat", &["-V"]) {
        eprintln!(
            "\n\n*** SKIPPING kcat_lists_broker_topic_and_partition: `kcat` is not installed \
             (apt-get install kcat). CI must install it. ***\n"
        );
        return;
    }
    let (port, server) = start_server().await;
    let (ok, stdout, stderr) =
        run(Command::new("kcat").args(["-L", "-b", &format!("127.0.0.1:{port}"), "-m", "5"])).await;
    server.abort();
    assert!(ok, "kcat failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        !stderr.contains("underflow") && !stdout.contains("underflow"),
        "kcat reported a read underflow\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        " 1 brokers:".to_owned(),
        format!("  broker {BROKER_ID} at 127.0.0.1:{port} (controller)"),
        " 1 topics:".to_owned(),
        format!("  topic \"{TOPIC}\" with 1 partitions:"),
        format!("    partition 0, leader {BROKER_ID}, replicas: {BROKER_ID}, isrs: {BROKER_ID}"),
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "missing {expected:?} in kcat output:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_lists_the_topic() {
    let has_kafka_python = std::process::Command::new("python3")
        .args(["-c", "import kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_kafka_python {
        eprintln!(
            "\n\n*** SKIPPING kafka_python_lists_the_topic: python3 with kafka-python is not \
             available (pip install kafka-python). CI must install it. ***\n"
        );
        return;
    }
    let (port, server) = start_server().await;
    let script = format!(
        "import kafka\n\
         c = kafka.KafkaConsumer(bootstrap_servers='127.0.0.1:{port}', \
         request_timeout_ms=20000)\n\
         print('version', kafka.__version__)\n\
         print('topics', sorted(c.topics()))\n\
         print('partitions', sorted(c.partitions_for_topic('{TOPIC}')))\n\
         c.close()\n"
    );
    let (ok, stdout, stderr) = run(Command::new("python3").args(["-c", &script])).await;
    server.abort();
    assert!(
        ok,
        "kafka-python failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("topics ['{TOPIC}']")),
        "topic missing\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("partitions [0]"),
        "partition missing\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
