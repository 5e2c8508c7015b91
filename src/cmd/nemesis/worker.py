#!/usr/bin/env python3
"""The fault campaign's client: real librdkafka (confluent-kafka) against the cluster under
test, every operation written as one JSON line on stdout for the checker.

  worker.py run  --bootstrap B --duration S   the three workloads while faults run
  worker.py read --bootstrap B                 read every partition back to its high watermark

Workloads of `run` (each a thread, each its own client):
  queue  idempotent acks=all producer, unique values ("q<N>"), topic nemesis-queue
  log    idempotent acks=all producer, per key k0..k5 increasing values, topic nemesis-log
  group  a consumer group on nemesis-queue committing offsets after each batch it consumed,
         and reading its committed offsets back now and then

Times are wall-clock milliseconds, like the nemesis's own events. Every line is flushed at
once so the nemesis can interleave it with faults.
"""
import argparse
import json
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

QUEUE = "nemesis-queue"
LOG = "nemesis-log"
GROUP = "nemesis-group"
KEYS = 6

_out = threading.Lock()


def now_ms():
    return int(time.time() * 1000)


def emit(**event):
    event.setdefault("t", now_ms())
    line = json.dumps(event, separators=(",", ":"))
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


REQUEST_TIMEOUT_MS = 30000


def producer(bootstrap):
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # librdkafka's default request timeout (30 s) unless --request-timeout-ms: a produce
        # that times out in flight makes librdkafka re-send its records, see README.
        "request.timeout.ms": REQUEST_TIMEOUT_MS,
        "message.timeout.ms": max(60000, 2 * REQUEST_TIMEOUT_MS),
        "socket.timeout.ms": 10000,
        "metadata.max.age.ms": 2000,
        "topic.metadata.refresh.interval.ms": 1000,
        "reconnect.backoff.max.ms": 1000,
        "retry.backoff.ms": 100,
    })


def produce_loop(bootstrap, stop, rate, workload, topic, value_of):
    """Sends `rate` records a second until `stop`; reports each ack or failure."""
    n = 0
    p = producer(bootstrap)

    def report(err, msg, v, key):
        if err is None:
            emit(w=workload, op="ack", v=v, k=key, p=msg.partition(), o=msg.offset())
        else:
            emit(w=workload, op="fail", v=v, k=key, err=str(err.name()))
            if err.fatal():
                raise KafkaException(err)

    period = 1.0 / rate
    next_send = time.time()
    while not stop.is_set():
        key, v = value_of(n)
        n += 1
        try:
            p.produce(topic, value=v.encode(), key=None if key is None else key.encode(),
                      on_delivery=lambda err, msg, v=v, key=key: report(err, msg, v, key))
            emit(w=workload, op="send", v=v, k=key)
        except BufferError:
            emit(w=workload, op="fail", v=v, k=key, err="LOCAL_QUEUE_FULL")
        except KafkaException as e:
            emit(w=workload, op="error", err=str(e))
            p = producer(bootstrap)
        try:
            p.poll(0)
        except KafkaException as e:
            # A fatal idempotence error: a new producer (new id) carries on.
            emit(w=workload, op="error", err=str(e))
            p = producer(bootstrap)
        next_send += period
        delay = next_send - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            next_send = time.time()
    left = p.flush(30)
    emit(w=workload, op="done", unflushed=left)


def group_loop(bootstrap, stop):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "socket.timeout.ms": 5000,
        "metadata.max.age.ms": 2000,
        "topic.metadata.refresh.interval.ms": 1000,
    })

    def on_assign(consumer, parts):
        emit(w="group", op="assigned", parts=[tp.partition for tp in parts])

    def on_revoke(consumer, parts):
        emit(w="group", op="revoked", parts=[tp.partition for tp in parts])

    c.subscribe([QUEUE], on_assign=on_assign, on_revoke=on_revoke)
    last_check = time.time()
    while not stop.is_set():
        try:
            msgs = c.consume(num_messages=200, timeout=0.5)
        except KafkaException as e:
            emit(w="group", op="error", err=str(e))
            continue
        batch = {}
        for m in msgs:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    emit(w="group", op="error", err=m.error().name())
                continue
            emit(w="group", op="consumed", p=m.partition(), o=m.offset(),
                 v=m.value().decode())
            batch[m.partition()] = m.offset() + 1
        if batch:
            t0 = now_ms()
            offsets = [TopicPartition(QUEUE, p, o) for p, o in sorted(batch.items())]
            try:
                done = c.commit(offsets=offsets, asynchronous=False)
                for tp in done:
                    if tp.error is None:
                        emit(w="group", op="commit", p=tp.partition, o=tp.offset, t0=t0)
                    else:
                        emit(w="group", op="commit_fail", p=tp.partition, err=tp.error.name())
            except KafkaException as e:
                emit(w="group", op="commit_fail", err=str(e))
        if time.time() - last_check > 3:
            last_check = time.time()
            t0 = now_ms()
            try:
                parts = [TopicPartition(QUEUE, p) for p in range(6)]
                for tp in c.committed(parts, timeout=5):
                    if tp.error is None and tp.offset >= 0:
                        emit(w="group", op="committed", p=tp.partition, o=tp.offset, t0=t0)
            except KafkaException as e:
                emit(w="group", op="error", err=str(e))
    try:
        c.close()
    except KafkaException:
        pass
    emit(w="group", op="done")


def run(args):
    stop = threading.Event()
    threads = [
        threading.Thread(target=produce_loop, args=(
            args.bootstrap, stop, args.rate, "queue", QUEUE, lambda n: (None, "q%d" % n))),
        threading.Thread(target=produce_loop, args=(
            args.bootstrap, stop, args.rate, "log", LOG,
            lambda n: ("k%d" % (n % KEYS), "%d" % (n // KEYS)))),
        threading.Thread(target=group_loop, args=(args.bootstrap, stop)),
    ]
    for t in threads:
        t.daemon = True
        t.start()
    deadline = time.time() + args.duration
    while time.time() < deadline and not sys.stdin.closed:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(60)
    emit(op="run-done")


def read(args):
    """Reads every partition of both topics from the start to its high watermark."""
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "nemesis-read-%d" % now_ms(),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "socket.timeout.ms": 10000,
        "check.crcs": True,
    })
    deadline = time.time() + args.timeout
    for topic in (QUEUE, LOG):
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions.keys())
        for p in parts:
            while True:
                try:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    break
                except KafkaException as e:
                    if time.time() > deadline:
                        raise
                    emit(op="read-retry", topic=topic, p=p, err=str(e))
                    time.sleep(1)
            emit(op="watermarks", topic=topic, p=p, low=low, high=high)
            if high <= low:
                continue
            c.assign([TopicPartition(topic, p, low)])
            pos = low
            while pos < high and time.time() < deadline:
                m = c.poll(1.0)
                if m is None:
                    continue
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        emit(op="read-error", topic=topic, p=p, err=m.error().name())
                    continue
                key = m.key().decode() if m.key() is not None else None
                emit(op="read", topic=topic, p=p, o=m.offset(), k=key, v=m.value().decode())
                pos = m.offset() + 1
            if pos < high:
                emit(op="read-incomplete", topic=topic, p=p, pos=pos, high=high)
            c.unassign()
    c.close()
    emit(op="read-done")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "read"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rate", type=float, default=100, help="records a second per producer")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--request-timeout-ms", type=int, default=30000)
    args = ap.parse_args()
    global REQUEST_TIMEOUT_MS
    REQUEST_TIMEOUT_MS = args.request_timeout_ms
    if args.mode == "run":
        run(args)
    else:
        read(args)


if __name__ == "__main__":
    main()
