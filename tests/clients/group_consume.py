"""Two confluent-kafka consumers in one group (subscribe()) read --expect records between
them, commit, and close. Prints {"values": {"0": [...], "1": [...]}} as JSON."""
import argparse, json, time
from confluent_kafka import Consumer

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--group", required=True)
ap.add_argument("--expect", type=int, required=True)
ap.add_argument("--seconds", type=int, default=90)
a = ap.parse_args()

def consumer():
    return Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000})
cs = [consumer(), consumer()]
for c in cs:
    c.subscribe([a.topic])
values = {0: [], 1: []}
deadline = time.time() + a.seconds
while time.time() < deadline and len(values[0]) + len(values[1]) < a.expect:
    for i, c in enumerate(cs):
        m = c.poll(0.05)
        if m is not None and not m.error():
            values[i].append(m.value().decode())
            if len(values[i]) % 500 == 0:
                c.commit(asynchronous=True)
# Commit what both consumed while both are still members (a consumer that leaves first
# would start a rebalance and the other's commit would be refused), then leave the group.
for c in cs:
    for _ in range(5):
        c.poll(0.05)
for c in cs:
    try:
        c.commit(asynchronous=False)
    except Exception as e:  # nothing consumed since the last commit
        if "NO_OFFSET" not in str(e):
            raise
for c in cs:
    c.close()
print(json.dumps({"values": {str(k): v for k, v in values.items()}}))
