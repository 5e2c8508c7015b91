"""kafka-python: admin creates and describes a topic, a producer sends keyed records,
a consumer reads them back. Prints a JSON summary."""
import argparse, json, time
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
a = ap.parse_args()

admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
admin.create_topics([NewTopic(a.topic, num_partitions=3, replication_factor=3)])
time.sleep(1)
described = admin.describe_topics([a.topic])[0]
listed = admin.list_topics()
p = KafkaProducer(bootstrap_servers=a.bootstrap, acks="all")
for i in range(1000):
    p.send(a.topic, key=f"k{i}".encode(), value=f"v{i}".encode())
p.flush()
c = KafkaConsumer(bootstrap_servers=a.bootstrap, auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=5000)
c.assign([TopicPartition(a.topic, i) for i in range(3)])
c.seek_to_beginning()
got = {}
for m in c:
    got[m.key.decode()] = m.value.decode()
    if len(got) >= 1000:
        break
print(json.dumps({
    "partitions": sorted(p["partition_index"] for p in described["partitions"]),
    "replicas": [sorted(p["replica_nodes"]) for p in described["partitions"]],
    "isr": [sorted(p["isr_nodes"]) for p in described["partitions"]],
    "listed": a.topic in listed,
    "received": len(got),
    "pairs_ok": all(got.get(f"k{i}") == f"v{i}" for i in range(1000)),
}))
