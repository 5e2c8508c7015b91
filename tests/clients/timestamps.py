"""Produces --count records with the given CreateTime timestamps (1000, 1001, ...) through
confluent-kafka, reads them back, and prints [[timestamp type, timestamp, value], ...] as
JSON (librdkafka's types: 1 CreateTime, 2 LogAppendTime)."""
import argparse, json, time
from confluent_kafka import Consumer, Producer, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--count", type=int, default=5)
a = ap.parse_args()

p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 0})
for i in range(a.count):
    p.produce(a.topic, value=f"v{i}", timestamp=1000 + i)
    p.flush(30)
c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"timestamps-{time.time_ns()}",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition(a.topic, 0, 0)])
out, deadline = [], time.monotonic() + 30
while len(out) < a.count and time.monotonic() < deadline:
    m = c.poll(1.0)
    if m is None or m.error():
        continue
    kind, ts = m.timestamp()
    out.append([kind, ts, m.value().decode()])
c.close()
print(json.dumps(out))
