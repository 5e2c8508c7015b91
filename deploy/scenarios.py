#!/usr/bin/env python3
"""The seed talk's HA scenarios, and one beyond it, run against an Osprey Compose cluster.

  python3 deploy/scenarios.py --up --down          # bring deploy/compose.ha.yml up, run 1-4, remove it

1. Replication: `orders` (6 partitions, RF 3, min.insync.replicas=2) is created and
   described; records go through a real client (confluent-kafka, librdkafka) and come back.
2. Broker resilience: the leader of a partition is stopped (`docker stop`) and, separately,
   killed (`docker kill`) while an idempotent acks=all producer runs; the under-replicated
   partitions are listed while it is down; after `docker start` the ISR is full again.
3. Controller fault tolerance: the active controller is stopped; another is elected and a
   topic can still be created; the old one rejoins as a follower.
4. Network partition: a partition leader is cut off its network (`docker network
   disconnect`) under the same producer; a new leader is elected; after reconnecting, the
   old leader truncates what diverged and rejoins the ISR.

After each, every acknowledged record is read back: none lost, none duplicated. The script
prints what a person would look at (describe, metadata-quorum) and the measured failover
times, writes them as JSON with --json, and exits 1 if a check fails. Every wait is bounded.
Clients reach the brokers through the ports published on the host (localhost:19092, ...).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Failed(Exception):
    pass


# librdkafka logs every refused connection while a broker is down, which is what the
# scenarios do on purpose; the delivery reports say what matters (acknowledged or failed).
QUIET = {"log_level": 2, "log.connection.close": False}


def log(msg=""):
    print(msg, flush=True)


def run(cmd, check=True, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def wait_until(what, predicate, timeout, interval=0.25):
    """Polls predicate() until it returns a true value, for at most timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # a broker or controller that is down answers nothing
            last_error = e
        time.sleep(interval)
    raise Failed(f"timed out after {timeout}s waiting for {what}" + (f" ({last_error})" if last_error else ""))


class Cluster:
    """The Compose cluster: its containers by node id, and the osprey CLI against it."""

    def __init__(self, compose, project, osprey, bootstrap):
        self.compose, self.project, self.osprey, self.bootstrap = compose, project, osprey, bootstrap

    def compose_cmd(self, *args):
        return ["docker-compose", "-f", self.compose, "-p", self.project, *args]

    def up(self):
        run(self.compose_cmd("down", "-v", "--remove-orphans"), check=False, timeout=180)
        run(self.compose_cmd("up", "-d"), timeout=300)

    def down(self):
        run(self.compose_cmd("down", "-v", "--remove-orphans"), check=False, timeout=180)

    def containers(self):
        """{node id: (container name, roles)} from each container's KAFKA_NODE_ID."""
        names = run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                     "--format", "{{.Names}}"]).stdout.split()
        out = {}
        for name in names:
            env = run(["docker", "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", name]).stdout
            kv = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
            out[int(kv["KAFKA_NODE_ID"])] = (name, kv.get("KAFKA_PROCESS_ROLES", ""))
        return out

    def network(self):
        nets = run(["docker", "network", "ls", "--filter", f"label=com.docker.compose.project={self.project}",
                    "--format", "{{.Name}}"]).stdout.split()
        if len(nets) != 1:
            raise Failed(f"expected one network for project {self.project}, found {nets}")
        return nets[0]

    def cli(self, *args, timeout=40):
        return run([self.osprey, *args], timeout=timeout).stdout

    def describe(self, topic=None, under_replicated=False, via=None):
        args = ["topics", "--bootstrap-server", via or self.bootstrap, "describe"]
        if topic:
            args += ["--topic", topic]
        if under_replicated:
            args.append("--under-replicated-partitions")
        return self.cli(*args)

    def partitions(self, topic, via=None):
        """{partition: (leader, replicas, isr)} parsed from describe (asked of `via`, or of the
        first reachable broker)."""
        out = {}
        for m in re.finditer(r"Partition: (\d+)\tLeader: (-?\d+)\tReplicas: ([\d,]*)\tIsr: ([\d,]*)",
                             self.describe(topic, via=via)):
            ints = lambda s: [int(x) for x in s.split(",") if x]
            out[int(m.group(1))] = (int(m.group(2)), ints(m.group(3)), ints(m.group(4)))
        return out

    def quorum_status(self):
        text = self.cli("metadata-quorum", "--bootstrap-server", self.bootstrap, "describe", "--status",
                        timeout=20)
        return text, dict(re.findall(r"^(\w+):\s+(.*)$", text, re.M))

    def wait_for_brokers(self, count, timeout=90):
        probe = Producer({"bootstrap.servers": self.bootstrap, **QUIET})
        try:
            wait_until(f"{count} brokers", lambda: len(probe.list_topics(timeout=3).brokers) >= count,
                       timeout, interval=1)
        finally:
            del probe

    def wait_for_full_isr(self, topic, timeout=90):
        """Waits until every broker reports every partition of `topic` with a leader and a full
        ISR, and all report the same: a broker that has just come back (after a network
        partition) answers from its old metadata until it has caught up with the controller."""
        def full():
            views = [self.partitions(topic, via=addr) for addr in self.bootstrap.split(",")]
            parts = views[0]
            return parts and all(v == parts for v in views) and all(
                leader >= 0 and sorted(isr) == sorted(replicas) for leader, replicas, isr in parts.values())
        wait_until(f"a full ISR on every partition of {topic}, seen alike by every broker", full, timeout,
                   interval=0.5)


class Workload:
    """An idempotent acks=all producer writing unique values in a thread, recording every
    acknowledgement (partition, offset, time) and every error."""

    def __init__(self, bootstrap, topic, prefix, interval=0.004):
        self.topic, self.prefix, self.interval = topic, prefix, interval
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 5, "message.timeout.ms": 120000,
                                  "topic.metadata.refresh.interval.ms": 1000, **QUIET})
        self.acked, self.errors, self.sent = [], [], []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value().decode(), time.monotonic()))
        else:
            self.errors.append((err.name(), msg.value().decode()))

    def _run(self):
        i = 0
        while not self.stop_flag.is_set() and i < 200_000:
            value = f"{self.prefix}-{i}"
            try:
                self.producer.produce(self.topic, key=value, value=value, callback=self._delivered)
                self.sent.append((value, time.monotonic()))
                i += 1
            except BufferError:
                pass
            self.producer.poll(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self, timeout=130):
        self.stop_flag.set()
        self.thread.join(timeout=10)
        left = self.producer.flush(timeout)
        self.producer = None  # closes its connections
        if left:
            raise Failed(f"{left} records of {self.prefix} neither acknowledged nor failed after {timeout}s")

    def acked_after(self, t0, partitions):
        """Whether a record was acknowledged on one of `partitions` after t0."""
        return any(p in partitions and t > t0 for (p, _, _, t) in self.acked)

    def failover(self, t0, partitions):
        """The longest time without an acknowledgement on `partitions` from t0 on, and the
        time from t0 to the acknowledgement that ended it: the first one from the new
        leader (the old leader may still acknowledge for a moment after a `docker stop`,
        which is a controlled shutdown, or while `docker network disconnect` runs)."""
        times = sorted(t for (p, _, _, t) in self.acked if p in partitions and t >= t0)
        points = [t0] + times
        gaps = [(b - a, b) for a, b in zip(points, points[1:])]
        if not gaps:
            return None, None
        gap, end = max(gaps)
        return gap, end - t0


def high_watermarks(consumer, topic, parts):
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}


def stable_high_watermarks(consumer, topic, parts, timeout=60):
    """Each partition's high watermark once two readings a second apart agree: a leader just
    elected learns the high watermark from its followers' next fetches, so a single reading
    right after an election can be below what was acknowledged."""
    def stable():
        first = high_watermarks(consumer, topic, parts)
        time.sleep(1.0)
        second = high_watermarks(consumer, topic, parts)
        return second if first == second else None
    return wait_until(f"stable high watermarks of {topic}", stable, timeout, interval=0.5)


def read_all(bootstrap, topic, timeout=120):
    """Every value in the topic, from the log start to each partition's high watermark, with
    CRC checks on."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"scenarios-check-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "check.crcs": True,
                  **QUIET})
    md = wait_until(f"metadata of {topic}", lambda: c.list_topics(topic, timeout=10), 30)
    parts = sorted(md.topics[topic].partitions)
    ends = stable_high_watermarks(c, topic, parts)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    values, positions = [], {p: 0 for p in parts}
    deadline = time.monotonic() + timeout
    while any(positions[p] < ends[p] for p in parts):
        if time.monotonic() > deadline:
            raise Failed(f"reading {topic} back timed out at {positions} of {ends}")
        for m in c.consume(500, 1.0):
            if m.error():
                raise Failed(f"consumer error: {m.error()}")
            values.append(m.value().decode())
            positions[m.partition()] = m.offset() + 1
    c.close()
    return values


def check_nothing_lost(cluster, topic, workloads):
    values = read_all(cluster.bootstrap, topic)
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    acked = [v for w in workloads for (_, _, v, _) in w.acked]
    lost = [v for v in acked if v not in counts]
    duplicated = [v for v, n in counts.items() if n > 1]
    return {"read": len(values), "acknowledged": len(acked), "lost": len(lost), "duplicated": len(duplicated),
            "lost_sample": lost[:5], "duplicated_sample": duplicated[:5]}


def scenario_replication(cluster, results):
    log("== 1. Replication: topics are replicated across brokers")
    existing = cluster.cli("topics", "--bootstrap-server", cluster.bootstrap, "list").split()
    if "orders" not in existing:
        log(cluster.cli("topics", "--bootstrap-server", cluster.bootstrap, "create", "--topic", "orders",
                        "--partitions", "6", "--replication-factor", "3", "--config", "min.insync.replicas=2").strip())
    cluster.wait_for_full_isr("orders")
    log(cluster.describe("orders"))
    parts = cluster.partitions("orders")
    if len(parts) != 6 or any(len(r) != 3 or sorted(i) != sorted(r) for (_, r, i) in parts.values()):
        raise Failed(f"orders is not 6 partitions with 3 replicas in sync: {parts}")
    w = Workload(cluster.bootstrap, "orders", "s1").start()
    time.sleep(2)
    w.stop()
    check = check_nothing_lost(cluster, "orders", [w])
    log(f"produced and acknowledged {len(w.acked)} records, read back {check['read']}; "
        f"lost {check['lost']}, duplicated {check['duplicated']}")
    results["replication"] = {"acknowledged": len(w.acked), **check}
    return [w]


def leaders_moved(cluster, partitions, old_leader):
    parts = cluster.partitions("orders")
    return all(parts[p][0] not in (-1, old_leader) for p in partitions)


def leader_container(cluster, topic, partition):
    leader = cluster.partitions(topic)[partition][0]
    return leader, cluster.containers()[leader][0]


def scenario_broker(cluster, results, workloads, mode):
    log(f"== 2{'a' if mode == 'stop' else 'b'}. Broker resilience: docker {mode} the leader of orders-0")
    cluster.wait_for_full_isr("orders")
    w = Workload(cluster.bootstrap, "orders", f"s2{mode}").start()
    workloads.append(w)
    time.sleep(3)
    # Leadership can move while the producer warms up (a preferred-leader election): read it
    # right before the fault.
    victim, name = leader_container(cluster, "orders", 0)
    led = [p for p, (leader, _, _) in cluster.partitions("orders").items() if leader == victim]
    log(f"broker {victim} ({name}) leads partitions {led}")
    t0 = time.monotonic()
    run(["docker", mode, name], timeout=60)
    log(f"docker {mode} {name}")
    under = wait_until("under-replicated partitions to be listed",
                       lambda: cluster.describe("orders", under_replicated=True).strip(), 60, interval=0.5)
    log("while it is down, describe --under-replicated-partitions:")
    log(under)
    wait_until("new leaders for the partitions it led", lambda: leaders_moved(cluster, led, victim), 90,
               interval=0.5)
    moved_at = time.monotonic()
    wait_until("a write acknowledged by a new leader", lambda: w.acked_after(moved_at, led), 90, interval=0.2)
    time.sleep(3)
    run(["docker", "start", name], timeout=60)
    log(f"docker start {name}")
    cluster.wait_for_full_isr("orders")
    w.stop()
    log(cluster.describe("orders"))
    gap, first = w.failover(t0, led)
    log(f"first write acknowledged by the new leader {first:.2f} s after the {mode}; no "
        f"acknowledgement on its partitions for {gap:.2f} s; producer errors: {len(w.errors)}")
    results[f"broker_{mode}"] = {"broker": victim, "partitions": led, "new_leader_first_ack_s": round(first, 3),
                                 "longest_ack_gap_s": round(gap, 3), "acknowledged": len(w.acked),
                                 "producer_errors": len(w.errors), "under_replicated_listed": under.count("Partition:")}


def scenario_controller(cluster, results):
    log("== 3. Controller fault tolerance: stop the active controller")
    text, status = cluster.quorum_status()
    log(text)
    old_leader, old_epoch = int(status["LeaderId"]), int(status["LeaderEpoch"])
    name = cluster.containers()[old_leader][0]
    t0 = time.monotonic()
    run(["docker", "stop", name], timeout=60)
    log(f"docker stop {name}")

    def new_leader():
        _, st = cluster.quorum_status()
        leader = int(st["LeaderId"])
        return (leader, int(st["LeaderEpoch"])) if leader not in (-1, old_leader) else None
    leader, epoch = wait_until("a new active controller", new_leader, 60)
    t_elected = time.monotonic() - t0
    topic = f"after-failover-{int(time.time())}"
    # On a combined cluster the stopped controller was a broker too.
    replication = str(min(3, sum(1 for n, (_, roles) in cluster.containers().items()
                                 if "broker" in roles and n != old_leader)))

    def created():
        r = run([cluster.osprey, "topics", "--bootstrap-server", cluster.bootstrap, "create", "--topic", topic,
                 "--partitions", "3", "--replication-factor", replication], check=False, timeout=40)
        return r.returncode == 0 or "already exists" in r.stderr
    wait_until(f"topic {topic} to be created", created, 60, interval=0.2)
    t_created = time.monotonic() - t0
    text, _ = cluster.quorum_status()
    log(text)
    log(f"new active controller {leader} in epoch {epoch} (was {old_leader} in {old_epoch}) after "
        f"{t_elected:.2f} s; topic {topic} created {t_created:.2f} s after the stop")
    if epoch <= old_epoch:
        raise Failed(f"the new leader's epoch {epoch} is not above {old_epoch}")
    run(["docker", "start", name], timeout=60)
    log(f"docker start {name}")

    def rejoined():
        out = cluster.cli("metadata-quorum", "--bootstrap-server", cluster.bootstrap, "describe",
                          "--replication", timeout=20)
        row = [l.split() for l in out.splitlines() if l.split() and l.split()[0] == str(old_leader)]
        return out if row and row[0][5] == "Follower" and row[0][2] == "0" else None
    table = wait_until(f"controller {old_leader} to rejoin as a caught-up follower", rejoined, 60, interval=0.5)
    log(table)
    results["controller_stop"] = {"old_leader": old_leader, "new_leader": leader, "old_epoch": old_epoch,
                                  "new_epoch": epoch, "new_leader_after_s": round(t_elected, 3),
                                  "metadata_change_after_s": round(t_created, 3)}


def scenario_partition(cluster, results, workloads):
    log("== 4. Network partition: cut the leader of orders-1 off the network")
    cluster.wait_for_full_isr("orders")
    network = cluster.network()
    w = Workload(cluster.bootstrap, "orders", "s4").start()
    workloads.append(w)
    time.sleep(3)
    victim, name = leader_container(cluster, "orders", 1)
    led = [p for p, (leader, _, _) in cluster.partitions("orders").items() if leader == victim]
    log(f"broker {victim} ({name}) leads partitions {led}")
    t0 = time.monotonic()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    run(["docker", "network", "disconnect", network, name], timeout=60)
    log(f"docker network disconnect {network} {name}")

    wait_until("new leaders for the partitions it led", lambda: leaders_moved(cluster, led, victim), 90,
               interval=0.5)
    moved_at = time.monotonic()
    wait_until("a write acknowledged by a new leader", lambda: w.acked_after(moved_at, led), 90, interval=0.2)
    log(cluster.describe("orders"))
    time.sleep(3)
    alias = name.split("_")[-1]
    run(["docker", "network", "connect", "--alias", alias, network, name], timeout=60)
    log(f"docker network connect {network} {name}")
    cluster.wait_for_full_isr("orders")
    w.stop()
    log(cluster.describe("orders"))
    truncations = [l for l in run(["docker", "logs", name]).stderr.splitlines()
                   if "diverged from the leader" in l and l[:19] >= since]
    for line in truncations:
        log(f"{name}: {line}")
    gap, first = w.failover(t0, led)
    log(f"first write acknowledged by a new leader {first:.2f} s after the disconnect; no "
        f"acknowledgement on its partitions for {gap:.2f} s; producer errors: {len(w.errors)}; "
        f"the old leader truncated {len(truncations)} partition logs where they diverged")
    results["network_partition"] = {"broker": victim, "partitions": led, "new_leader_first_ack_s": round(first, 3),
                                    "longest_ack_gap_s": round(gap, 3), "acknowledged": len(w.acked),
                                    "producer_errors": len(w.errors), "old_leader_truncations": len(truncations)}


def published_bootstrap(compose):
    """localhost:PORT for every port the compose file publishes as `- "PORT:PORT"`."""
    with open(compose) as f:
        ports = re.findall(r'^\s*-\s*"(\d+):\1"', f.read(), re.M)
    if not ports:
        raise SystemExit(f"{compose} publishes no broker port; give --bootstrap")
    return ",".join(f"localhost:{p}" for p in ports)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compose", default=os.path.join(HERE, "compose.ha.yml"))
    ap.add_argument("--project", default="osprey-ha")
    ap.add_argument("--osprey", default=os.environ.get("OSPREY", os.path.join(ROOT, "target", "release", "osprey")))
    ap.add_argument("--bootstrap", help="brokers on the host; by default the ports the compose file publishes")
    ap.add_argument("--scenarios", default="1,2,3,4", help="which scenarios, e.g. 1,3")
    ap.add_argument("--up", action="store_true", help="bring the cluster up first (removing an old one)")
    ap.add_argument("--down", action="store_true", help="remove the cluster and its volumes at the end")
    ap.add_argument("--json", help="write the measurements and checks here")
    a = ap.parse_args()
    chosen = {s.strip() for s in a.scenarios.split(",")}
    bootstrap = a.bootstrap or published_bootstrap(a.compose)
    cluster = Cluster(a.compose, a.project, a.osprey, bootstrap)
    results, ok = {}, False
    try:
        if a.up:
            cluster.up()
        brokers = sum(1 for _, roles in cluster.containers().values() if "broker" in roles)
        cluster.wait_for_brokers(brokers)
        workloads = scenario_replication(cluster, results)
        if "2" in chosen:
            scenario_broker(cluster, results, workloads, "stop")
            scenario_broker(cluster, results, workloads, "kill")
        if "3" in chosen:
            scenario_controller(cluster, results)
        if "4" in chosen:
            scenario_partition(cluster, results, workloads)
        check = check_nothing_lost(cluster, "orders", workloads)
        results["durability"] = check
        log(f"== every acknowledged record read back: {check['acknowledged']} acknowledged, {check['read']} read, "
            f"{check['lost']} lost, {check['duplicated']} duplicated")
        if check["lost"] or check["duplicated"]:
            raise Failed(f"acknowledged records lost or duplicated: {check}")
        ok = True
    except Failed as e:
        log(f"FAILED: {e}")
        for node, (name, _) in sorted(cluster.containers().items()):
            tail = run(["docker", "logs", "--tail", "15", name], check=False).stderr
            log(f"--- {name} (node {node}), last lines:\n{tail}")
    finally:
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"ok": ok, **results}, f, indent=2)
        if a.down:
            cluster.down()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
