"""Two confluent-kafka consumers in one group (subscribe()) read --expect records between
them, commit, and close. Prints {"values": {"0": [...], "1": [...]}} as JSON.

Commits are manual, as an application that processes each record once makes them: every
500 records asynchronously, synchronously when partitions are revoked (a rebalance moves
them to the other consumer, which resumes from the committed offset), and synchronously
before leaving."""
import argparse, json, time
from confluent_kafka import Consumer, KafkaException, KafkaError

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--group", required=True)
ap.add_argument("--expect", type=int, required=True)
ap.add_argument("--seconds", type=int, default=90)
a = ap.parse_args()


def commit_consumed(c):
    """Commits the offsets after the records consumed from the current assignment."""
    try:
        c.commit(asynchronous=False)
    except KafkaException as e:
        # Nothing consumed since the last commit.
        if e.args[0].code() != KafkaError._NO_OFFSET:
            raise


def on_revoke(c, partitions):
    # Still the owner until this returns: commit what was read, or the next owner reads
    # it again.
    commit_consumed(c)


def on_lost(c, partitions):
    # The membership is gone (session expired): a commit would be refused, and the next
    # owner rereads from the last commit. Does not happen unless the broker stalls.
    pass


def consumer():
    return Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000})


cs = [consumer(), consumer()]
for c in cs:
    c.subscribe([a.topic], on_revoke=on_revoke, on_lost=on_lost)
values = {0: [], 1: []}


def poll(i, timeout):
    m = cs[i].poll(timeout)
    if m is not None and not m.error():
        values[i].append(m.value().decode())
        if len(values[i]) % 500 == 0:
            cs[i].commit(asynchronous=True)


deadline = time.time() + a.seconds
while time.time() < deadline and len(values[0]) + len(values[1]) < a.expect:
    for i in range(len(cs)):
        poll(i, 0.05)
# Commit what both consumed while both are still members (a consumer that leaves first
# starts a rebalance), then leave the group.
for i in range(len(cs)):
    for _ in range(5):
        poll(i, 0.05)
for c in cs:
    commit_consumed(c)
for c in cs:
    c.close()
print(json.dumps({"values": {str(k): v for k, v in values.items()}}))
