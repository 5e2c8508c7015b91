"""Reads every partition of --topic from its start to its high watermark with
confluent-kafka and prints [[partition, offset, value], ...] as JSON."""
import argparse, json, time
from confluent_kafka import Consumer, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--partitions", type=int, required=True)
a = ap.parse_args()

c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "osprey-verify",
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
ends = {}
for p in range(a.partitions):
    lo, hi = c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=20)
    ends[p] = hi
c.assign([TopicPartition(a.topic, p, 0) for p in range(a.partitions)])
out = []
pos = {p: 0 for p in range(a.partitions)}
deadline = time.time() + 60
while any(pos[p] < ends[p] for p in pos) and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    out.append([m.partition(), m.offset(), m.value().decode()])
    pos[m.partition()] = m.offset() + 1
c.close()
print(json.dumps(out))
