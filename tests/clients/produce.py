"""Produces --count records with confluent-kafka (librdkafka) and prints what was
acknowledged as JSON: {"acked": [[partition, offset, value], ...], "errors": [...]}.
With --kill-pid P --kill-at K, sends SIGKILL to P after K records were handed over.
--batch-size caps librdkafka's batches (for brokers with small segments)."""
import argparse, json, os, signal, sys, time
from confluent_kafka import Producer

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--acks", default="all")
ap.add_argument("--idempotent", action="store_true")
ap.add_argument("--kill-pid", type=int)
ap.add_argument("--kill-at", type=int, default=-1)
ap.add_argument("--prefix", default="")
ap.add_argument("--timeout-ms", type=int, default=60000)
ap.add_argument("--compression", default="none")
ap.add_argument("--batch-size", type=int)
a = ap.parse_args()

conf = {"bootstrap.servers": a.bootstrap, "acks": a.acks, "linger.ms": 5,
        "message.timeout.ms": a.timeout_ms, "enable.idempotence": a.idempotent,
        "compression.type": a.compression}
if not a.idempotent:
    conf["retries"] = 0
if a.batch_size:
    conf["batch.size"] = a.batch_size
p = Producer(conf)
acked, errors = [], []
def cb(err, msg):
    if err is None:
        acked.append([msg.partition(), msg.offset(), msg.value().decode()])
    else:
        errors.append(err.name())
for i in range(a.count):
    if i == a.kill_at and a.kill_pid:
        os.kill(a.kill_pid, signal.SIGKILL)
    v = f"{a.prefix}{i}"
    while True:
        try:
            p.produce(a.topic, key=v, value=v, callback=cb)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)
left = p.flush(a.timeout_ms / 1000 + 10)
print(json.dumps({"acked": acked, "errors": errors, "unflushed": left}))
