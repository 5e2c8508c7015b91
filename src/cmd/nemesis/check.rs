//! The checker: reads a run's history and finds what the guarantees forbid.
//!
//! Client-visible (from the workload's lines and the final read-back):
//! - `lost`: a record acknowledged (acks=all) and not read back;
//! - `duplicated`: a value present more than once in the log;
//! - `reordered`: within a key of the ordered log, a value at a later offset not greater
//!   than the one before it;
//! - `consumed_then_gone`: a value the consumer group read during the run that the final
//!   read no longer finds (the model's ConsumedNeverLost);
//! - `commit_backwards`: a committed offset read back lower than one committed (acknowledged)
//!   before the read started, and `redelivered`: the group consuming below an offset it had
//!   committed.
//!
//! The cluster's own reports (observe-partition / observe-quorum lines) against the model's
//! always-properties: at most one leader per leader epoch, leader epochs only grow (as each
//! node reports them), the leader in the ISR, and the quorum's high watermark at most its
//! leader's log end offset.
//!
//! Pure: a history in, a report out, unit-tested below.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

/// One broken property, with where in the history it happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Violation {
    pub property: String,
    pub message: String,
    /// Index of the history line that shows it.
    pub line: usize,
    pub t: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub read: u64,
    pub lost: u64,
    pub lost_values: Vec<String>,
    pub duplicated: u64,
    pub reordered: u64,
    pub consumed: u64,
    pub consumed_then_gone: u64,
    pub commits: u64,
    pub commit_backwards: u64,
    pub redelivered: u64,
    /// Partitions the final read could not read to their high watermark.
    pub read_incomplete: u64,
    pub read_complete: bool,
    pub observations: u64,
    pub faults: BTreeMap<String, u64>,
    pub node_exits: u64,
    /// Heals after which the cluster was not fully replicated again within the wait.
    pub not_recovered: u64,
    /// Share of the run's seconds in which at least one acks=all write was acknowledged.
    pub availability: f64,
    pub violations: Vec<Violation>,
}

/// A record of the final read: offset, key, value.
type ReadRecord = (i64, Option<String>, String);

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn i(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

/// Checks a history. `unclean`: unclean election was on, so losses are counted but are not
/// violations.
pub fn check(history: &[Value], unclean: bool) -> Report {
    let mut r = Report::default();
    let mut v = Vec::new();
    // Workload values: (workload, key, value) -> line of its ack.
    let mut acked: BTreeMap<(String, Option<String>, String), usize> = BTreeMap::new();
    // Final read: topic -> partition -> [(offset, key, value)].
    let mut read: BTreeMap<String, BTreeMap<i64, Vec<ReadRecord>>> = BTreeMap::new();
    let mut consumed: BTreeMap<String, usize> = BTreeMap::new();
    // Group: per partition, acknowledged commits (ack time, offset).
    let mut commits: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    let mut max_commit: HashMap<i64, i64> = HashMap::new();
    // Observations.
    let mut leader_of_epoch: HashMap<(String, i64, i64), (i64, usize)> = HashMap::new();
    let mut last_epoch: HashMap<(i64, String, i64), i64> = HashMap::new();
    let mut quorum_leader_of_epoch: HashMap<i64, (i64, usize)> = HashMap::new();
    let mut ack_seconds = BTreeSet::new();
    let (mut first_t, mut last_t) = (i64::MAX, i64::MIN);
    let mut read_done = false;

    for (line, e) in history.iter().enumerate() {
        let t = i(e, "t").unwrap_or(0);
        let op = s(e, "op").unwrap_or_default();
        let w = s(e, "w");
        let mut violation = |property: &str, message: String| {
            v.push(Violation {
                property: property.into(),
                message,
                line,
                t,
            })
        };
        match (op.as_str(), w.as_deref()) {
            ("send", Some("queue" | "log")) => {
                r.sent += 1;
                first_t = first_t.min(t);
                last_t = last_t.max(t);
            }
            ("ack", Some(w @ ("queue" | "log"))) => {
                r.acked += 1;
                ack_seconds.insert(t / 1000);
                let key = (w.to_string(), s(e, "k"), s(e, "v").unwrap_or_default());
                acked.insert(key, line);
            }
            ("fail", Some("queue" | "log")) => r.failed += 1,
            ("consumed", Some("group")) => {
                r.consumed += 1;
                let p = i(e, "p").unwrap_or(-1);
                let o = i(e, "o").unwrap_or(-1);
                if let Some(c) = max_commit.get(&p) {
                    if o < *c {
                        r.redelivered += 1;
                        violation(
                            "NoRedeliveryBelowCommit",
                            format!(
                                "the group consumed partition {p} offset {o} after committing {c}"
                            ),
                        );
                    }
                }
                consumed
                    .entry(s(e, "v").unwrap_or_default())
                    .or_insert(line);
            }
            ("commit", Some("group")) => {
                r.commits += 1;
                let (p, o) = (i(e, "p").unwrap_or(-1), i(e, "o").unwrap_or(-1));
                commits.entry(p).or_default().push((t, o));
                let m = max_commit.entry(p).or_insert(o);
                *m = (*m).max(o);
            }
            ("committed", Some("group")) => {
                let (p, o) = (i(e, "p").unwrap_or(-1), i(e, "o").unwrap_or(-1));
                let t0 = i(e, "t0").unwrap_or(t);
                let before = commits
                    .get(&p)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| *at < t0)
                    .map(|(_, o)| *o)
                    .max();
                if let Some(c) = before {
                    if o < c {
                        r.commit_backwards += 1;
                        violation(
                            "CommittedOffsetNeverMovesBack",
                            format!("partition {p}: committed offset read as {o} after {c} was committed"),
                        );
                    }
                }
            }
            ("read", None) => {
                r.read += 1;
                let topic = s(e, "topic").unwrap_or_default();
                read.entry(topic)
                    .or_default()
                    .entry(i(e, "p").unwrap_or(-1))
                    .or_default()
                    .push((
                        i(e, "o").unwrap_or(-1),
                        s(e, "k"),
                        s(e, "v").unwrap_or_default(),
                    ));
            }
            ("read-incomplete", None) => r.read_incomplete += 1,
            ("read-done", None) => read_done = true,
            ("fault", None) if e.get("applied").and_then(Value::as_bool) == Some(true) => {
                *r.faults
                    .entry(s(e, "kind").unwrap_or_default())
                    .or_default() += 1;
            }
            ("node-exited", None) => r.node_exits += 1,
            ("not-recovered", None) => r.not_recovered += 1,
            ("observe-partition", None) => {
                r.observations += 1;
                let topic = s(e, "topic").unwrap_or_default();
                let (from, p) = (i(e, "from").unwrap_or(-1), i(e, "p").unwrap_or(-1));
                let (leader, epoch) = (i(e, "leader").unwrap_or(-1), i(e, "epoch").unwrap_or(-1));
                let isr: Vec<i64> = e
                    .get("isr")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default();
                if leader >= 0 {
                    match leader_of_epoch.get(&(topic.clone(), p, epoch)) {
                        Some((other, at)) if *other != leader => violation(
                            "AtMostOneLeaderPerEpoch",
                            format!(
                                "{topic}-{p} leader epoch {epoch}: broker {from} reports leader {leader}, line {at} reported {other}"
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            leader_of_epoch.insert((topic.clone(), p, epoch), (leader, line));
                        }
                    }
                    if !isr.contains(&leader) {
                        violation(
                            "LeaderInIsr",
                            format!("{topic}-{p}: broker {from} reports leader {leader} outside ISR {isr:?}"),
                        );
                    }
                }
                let last = last_epoch.entry((from, topic.clone(), p)).or_insert(epoch);
                if epoch < *last {
                    violation(
                        "LeaderEpochsOnlyGrow",
                        format!(
                            "{topic}-{p}: broker {from} reported epoch {} then {epoch}",
                            *last
                        ),
                    );
                }
                *last = (*last).max(epoch);
            }
            ("observe-quorum", None) => {
                r.observations += 1;
                let (leader, epoch) = (i(e, "leader").unwrap_or(-1), i(e, "epoch").unwrap_or(-1));
                match quorum_leader_of_epoch.get(&epoch) {
                    Some((other, at)) if *other != leader => violation(
                        "AtMostOneQuorumLeaderPerEpoch",
                        format!("quorum epoch {epoch}: controller {leader} leads, line {at} showed {other}"),
                    ),
                    Some(_) => {}
                    None => {
                        quorum_leader_of_epoch.insert(epoch, (leader, line));
                    }
                }
                if let (Some(hw), Some(leo)) = (i(e, "hw"), i(e, "leo")) {
                    if hw > leo {
                        violation(
                            "HighWatermarkBelowLogEnd",
                            format!(
                                "quorum leader {leader}: high watermark {hw} above log end {leo}"
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    // What the final read holds, by workload value.
    let mut present: HashMap<(String, Option<String>, String), u64> = HashMap::new();
    let mut last_line = history.len().saturating_sub(1);
    if let Some(pos) = history
        .iter()
        .position(|e| s(e, "op").as_deref() == Some("read-done"))
    {
        last_line = pos;
    }
    for (topic, parts) in &read {
        let w = match topic.as_str() {
            "nemesis-queue" => "queue",
            "nemesis-log" => "log",
            _ => continue,
        };
        for (p, records) in parts {
            let mut by_key: HashMap<Option<String>, i64> = HashMap::new();
            let mut records = records.clone();
            records.sort_by_key(|r| r.0);
            for (o, k, val) in records {
                let n = present
                    .entry((w.to_string(), k.clone(), val.clone()))
                    .or_default();
                *n += 1;
                if *n == 2 {
                    r.duplicated += 1;
                    v.push(Violation {
                        property: "NoDuplicates".into(),
                        message: format!(
                            "{topic}-{p} offset {o}: value {val} (key {k:?}) read again"
                        ),
                        line: last_line,
                        t: 0,
                    });
                }
                if w == "log" {
                    let Ok(num) = val.parse::<i64>() else {
                        continue;
                    };
                    if let Some(prev) = by_key.get(&k) {
                        if num <= *prev {
                            r.reordered += 1;
                            v.push(Violation {
                                property: "OrderWithinPartition".into(),
                                message: format!(
                                    "{topic}-{p} key {k:?}: {num} at offset {o} after {prev}"
                                ),
                                line: last_line,
                                t: 0,
                            });
                        }
                    }
                    by_key.insert(k, num);
                }
            }
        }
    }
    r.read_complete = read_done && r.read_incomplete == 0;
    if r.read_complete {
        for ((w, k, val), line) in &acked {
            if !present.contains_key(&(w.clone(), k.clone(), val.clone())) {
                r.lost += 1;
                if r.lost_values.len() < 50 {
                    r.lost_values.push(format!("{w}:{val}"));
                }
                if !unclean {
                    v.push(Violation {
                        property: "NoAcknowledgedWriteLost".into(),
                        message: format!(
                            "{w} value {val} (key {k:?}) acknowledged and not read back"
                        ),
                        line: *line,
                        t: i(&history[*line], "t").unwrap_or(0),
                    });
                }
            }
        }
        for (val, line) in &consumed {
            if !present.contains_key(&("queue".to_string(), None, val.clone())) {
                r.consumed_then_gone += 1;
                if !unclean {
                    v.push(Violation {
                        property: "ConsumedNeverLost".into(),
                        message: format!(
                            "queue value {val} consumed by the group and not read back"
                        ),
                        line: *line,
                        t: i(&history[*line], "t").unwrap_or(0),
                    });
                }
            }
        }
    } else {
        v.push(Violation {
            property: "ReadBackComplete".into(),
            message: format!(
                "the final read did not reach every high watermark ({} partitions short{})",
                r.read_incomplete,
                if read_done {
                    ""
                } else {
                    ", and it did not finish"
                }
            ),
            line: last_line,
            t: 0,
        });
    }
    if last_t > first_t {
        let seconds = (last_t / 1000 - first_t / 1000 + 1) as f64;
        let covered = ack_seconds.range(first_t / 1000..=last_t / 1000).count() as f64;
        r.availability = covered / seconds;
    }
    r.violations = v;
    r
}

/// The history lines around line `at` (`radius` each side), for a violation's report.
pub fn stretch(history: &[Value], at: usize, radius: usize) -> Vec<String> {
    let lo = at.saturating_sub(radius);
    let hi = (at + radius + 1).min(history.len());
    (lo..hi)
        .map(|n| format!("{}{n:>7} {}", if n == at { ">" } else { " " }, history[n]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ack(t: i64, w: &str, k: Option<&str>, v: &str) -> Value {
        json!({"t": t, "w": w, "op": "ack", "k": k, "v": v, "p": 0, "o": 0})
    }
    fn send(t: i64, w: &str, v: &str) -> Value {
        json!({"t": t, "w": w, "op": "send", "v": v})
    }
    fn read(topic: &str, p: i64, o: i64, k: Option<&str>, v: &str) -> Value {
        json!({"t": 9000, "op": "read", "topic": topic, "p": p, "o": o, "k": k, "v": v})
    }
    fn done() -> Value {
        json!({"t": 9999, "op": "read-done"})
    }
    fn props(r: &Report) -> Vec<&str> {
        r.violations.iter().map(|v| v.property.as_str()).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let h = vec![
            send(1000, "queue", "q0"),
            ack(1010, "queue", None, "q0"),
            send(2000, "log", "0"),
            ack(2010, "log", Some("k0"), "0"),
            send(2100, "log", "1"),
            ack(2110, "log", Some("k0"), "1"),
            read("nemesis-queue", 0, 0, None, "q0"),
            read("nemesis-log", 3, 0, Some("k0"), "0"),
            read("nemesis-log", 3, 1, Some("k0"), "1"),
            done(),
        ];
        let r = check(&h, false);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!((r.acked, r.lost, r.duplicated, r.reordered), (3, 0, 0, 0));
        assert_eq!(r.availability, 1.0);
    }

    #[test]
    fn lost_duplicated_and_reordered_records_are_found() {
        let h = vec![
            ack(1000, "queue", None, "q0"),
            ack(1000, "queue", None, "q1"),
            read("nemesis-queue", 0, 0, None, "q0"),
            read("nemesis-queue", 1, 0, None, "q0"),
            read("nemesis-log", 2, 0, Some("k1"), "5"),
            read("nemesis-log", 2, 1, Some("k1"), "4"),
            done(),
        ];
        let r = check(&h, false);
        assert_eq!(r.lost, 1);
        assert_eq!(r.lost_values, vec!["queue:q1".to_string()]);
        assert_eq!(r.duplicated, 1);
        assert_eq!(r.reordered, 1);
        let p = props(&r);
        assert!(p.contains(&"NoAcknowledgedWriteLost"));
        assert!(p.contains(&"NoDuplicates"));
        assert!(p.contains(&"OrderWithinPartition"));
        // With unclean election on, the loss is counted and is not a violation.
        let r = check(&h, true);
        assert_eq!(r.lost, 1);
        assert!(!props(&r).contains(&"NoAcknowledgedWriteLost"));
    }

    #[test]
    fn consumed_then_gone_and_commits_moving_back() {
        let h = vec![
            json!({"t": 100, "w": "group", "op": "consumed", "p": 0, "o": 0, "v": "q7"}),
            json!({"t": 110, "w": "group", "op": "commit", "p": 0, "o": 1, "t0": 105}),
            json!({"t": 300, "w": "group", "op": "committed", "p": 0, "o": 0, "t0": 200}),
            json!({"t": 400, "w": "group", "op": "consumed", "p": 0, "o": 0, "v": "q7"}),
            done(),
        ];
        let r = check(&h, false);
        assert_eq!(r.consumed_then_gone, 1);
        assert_eq!(r.commit_backwards, 1);
        assert_eq!(r.redelivered, 1);
        let p = props(&r);
        assert!(p.contains(&"ConsumedNeverLost"));
        assert!(p.contains(&"CommittedOffsetNeverMovesBack"));
        assert!(p.contains(&"NoRedeliveryBelowCommit"));
    }

    #[test]
    fn observed_states_against_the_model_properties() {
        let obs = |from: i64, leader: i64, epoch: i64, isr: Vec<i64>| {
            json!({"t": 1, "op": "observe-partition", "from": from, "topic": "nemesis-queue",
                   "p": 0, "leader": leader, "epoch": epoch, "isr": isr})
        };
        let h = vec![
            obs(4, 4, 1, vec![4, 5, 6]),
            obs(5, 5, 1, vec![5, 6]),
            obs(5, 5, 0, vec![5, 6]),
            obs(6, 6, 2, vec![4, 5]),
            json!({"t": 1, "op": "observe-quorum", "from": 1, "leader": 1, "epoch": 3, "hw": 10, "leo": 9}),
            json!({"t": 2, "op": "observe-quorum", "from": 2, "leader": 2, "epoch": 3, "hw": 5, "leo": 9}),
            done(),
        ];
        let r = check(&h, false);
        let p = props(&r);
        assert!(p.contains(&"AtMostOneLeaderPerEpoch"));
        assert!(p.contains(&"LeaderEpochsOnlyGrow"));
        assert!(p.contains(&"LeaderInIsr"));
        assert!(p.contains(&"HighWatermarkBelowLogEnd"));
        assert!(p.contains(&"AtMostOneQuorumLeaderPerEpoch"));
    }

    #[test]
    fn an_unfinished_read_is_a_violation_not_a_loss() {
        let h = vec![ack(1, "queue", None, "q0")];
        let r = check(&h, false);
        assert_eq!(r.lost, 0);
        assert_eq!(props(&r), vec!["ReadBackComplete"]);
    }

    #[test]
    fn stretch_marks_the_line() {
        let h: Vec<Value> = (0..10).map(|n| json!({"n": n})).collect();
        let s = stretch(&h, 5, 2);
        assert_eq!(s.len(), 5);
        assert!(s[2].starts_with(">"));
    }
}
