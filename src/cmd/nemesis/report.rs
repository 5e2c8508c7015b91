//! A run's timeline as one self-contained HTML page (inline SVG, no scripts): fault bands on
//! top, acknowledged writes and failures per second in the middle, and one row per
//! partition with a mark at every leader change the brokers reported. The plots a person
//! looks at first after a run.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

use super::check::Report;

/// Per partition, the leader changes seen: (time, leader, leader epoch).
type LeaderChanges = BTreeMap<(String, i64), Vec<(i64, i64, i64)>>;

const W: f64 = 1200.0;
const LEFT: f64 = 150.0;

fn color(kind: &str) -> &'static str {
    match kind {
        "kill-broker" | "kill-combined" => "#d62728",
        "kill-controller" => "#8c1c13",
        "stop" => "#ff7f0e",
        "pause" => "#bcbd22",
        "isolate" => "#1f77b4",
        "split" => "#17becf",
        "bridge" => "#9467bd",
        "controller-leader-cut" => "#e377c2",
        "power-cut" => "#000000",
        "disk-eio" => "#8c564b",
        _ => "#7f7f7f",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The timeline page for `history`, titled `title`, with `report`'s numbers on top.
pub fn timeline(history: &[Value], report: &Report, title: &str) -> String {
    let ts: Vec<i64> = history
        .iter()
        .filter_map(|e| e.get("t").and_then(Value::as_i64))
        .collect();
    let t0 = ts.iter().copied().min().unwrap_or(0);
    let t1 = ts.iter().copied().max().unwrap_or(1).max(t0 + 1);
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - 10.0);
    let op = |e: &Value| {
        e.get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };

    // Fault bands: fault id -> (start, end, kind, nodes).
    let mut faults: BTreeMap<i64, (i64, Option<i64>, String, String)> = BTreeMap::new();
    let mut acks: BTreeMap<i64, u64> = BTreeMap::new();
    let mut fails: BTreeMap<i64, u64> = BTreeMap::new();
    let mut leaders: LeaderChanges = BTreeMap::new();
    let mut last_leader: HashMap<(String, i64), (i64, i64)> = HashMap::new();
    for e in history {
        let t = e.get("t").and_then(Value::as_i64).unwrap_or(t0);
        match op(e).as_str() {
            "fault" if e.get("applied").and_then(Value::as_bool) == Some(true) => {
                let id = e.get("id").and_then(Value::as_i64).unwrap_or(0);
                let kind = e
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let nodes = e.get("nodes").map(|n| n.to_string()).unwrap_or_default();
                faults.insert(id, (t, None, kind, nodes));
            }
            "heal" => {
                let id = e.get("id").and_then(Value::as_i64).unwrap_or(0);
                if let Some(f) = faults.get_mut(&id) {
                    f.1 = Some(t);
                }
            }
            "ack" => *acks.entry((t - t0) / 1000).or_default() += 1,
            "fail" => *fails.entry((t - t0) / 1000).or_default() += 1,
            "observe-partition" => {
                let topic = e.get("topic").and_then(Value::as_str).unwrap_or("");
                let p = e.get("p").and_then(Value::as_i64).unwrap_or(0);
                let leader = e.get("leader").and_then(Value::as_i64).unwrap_or(-1);
                let epoch = e.get("epoch").and_then(Value::as_i64).unwrap_or(-1);
                let key = (topic.to_string(), p);
                // A change is a higher epoch than any seen for the partition.
                let seen = last_leader.get(&key).copied();
                if seen.is_none_or(|(_, ep)| epoch > ep) {
                    last_leader.insert(key.clone(), (leader, epoch));
                    leaders.entry(key).or_default().push((t, leader, epoch));
                }
            }
            _ => {}
        }
    }

    let lanes: Vec<&(String, i64)> = leaders.keys().collect();
    let fault_rows = 6.0;
    let band_h = 14.0;
    let chart_top = 40.0 + fault_rows * band_h + 20.0;
    let chart_h = 160.0;
    let lanes_top = chart_top + chart_h + 40.0;
    let lane_h = 16.0;
    let height = lanes_top + lanes.len() as f64 * lane_h + 40.0;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    // Time axis, every 10 s.
    let secs = (t1 - t0) / 1000;
    for s in (0..=secs).step_by(10) {
        let px = x(t0 + s * 1000);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="30" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="24" text-anchor="middle" fill="#666">{s}s</text>"##,
            height - 30.0
        );
    }
    // Fault bands, in rows so overlapping faults stay visible.
    let _ = write!(
        svg,
        r#"<text x="8" y="{:.1}" font-weight="bold">faults</text>"#,
        40.0 + band_h
    );
    let mut row_end = vec![i64::MIN; fault_rows as usize];
    for (start, end, kind, nodes) in faults.values() {
        let end = end.unwrap_or(t1);
        let row = row_end.iter().position(|e| *e < *start).unwrap_or(0);
        row_end[row] = end;
        let y = 40.0 + row as f64 * band_h;
        let (a, b) = (x(*start), x(end).max(x(*start) + 2.0));
        let _ = write!(
            svg,
            r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}" opacity="0.75"><title>{} {} ({:.1}s–{:.1}s)</title></rect>"#,
            b - a,
            band_h - 2.0,
            color(kind),
            esc(kind),
            esc(nodes),
            (start - t0) as f64 / 1000.0,
            (end - t0) as f64 / 1000.0
        );
        if b - a > 40.0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="#fff" font-size="9">{} {}</text>"##,
                a + 2.0,
                y + band_h - 5.0,
                esc(kind),
                esc(nodes)
            );
        }
    }
    // Acks and failures per second.
    let max = acks
        .values()
        .chain(fails.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let _ = write!(
        svg,
        r##"<text x="8" y="{:.1}" font-weight="bold">acked/s</text><text x="8" y="{:.1}" fill="#d62728">failed/s</text><text x="{:.1}" y="{:.1}" fill="#666" text-anchor="end">{max}</text><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999"/>"##,
        chart_top + 12.0,
        chart_top + 26.0,
        LEFT - 4.0,
        chart_top + 8.0,
        chart_top + chart_h,
        W - 10.0,
        chart_top + chart_h
    );
    for (series, stroke) in [(&acks, "#2ca02c"), (&fails, "#d62728")] {
        let mut pts = String::new();
        for s in 0..=secs {
            let n = series.get(&s).copied().unwrap_or(0) as f64;
            let _ = write!(
                pts,
                "{:.1},{:.1} ",
                x(t0 + s * 1000 + 500),
                chart_top + chart_h - n / max * (chart_h - 10.0)
            );
        }
        let _ = write!(
            svg,
            r#"<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="1.5"/>"#
        );
    }
    // Leader changes per partition.
    let _ = write!(
        svg,
        r#"<text x="8" y="{:.1}" font-weight="bold">leader changes</text>"#,
        lanes_top - 10.0
    );
    let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    ];
    for (n, key) in lanes.iter().enumerate() {
        let y = lanes_top + n as f64 * lane_h;
        let _ = write!(
            svg,
            r##"<text x="8" y="{:.1}">{}-{}</text><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            y + 11.0,
            esc(&key.0),
            key.1,
            y + 7.0,
            W - 10.0,
            y + 7.0
        );
        let changes = &leaders[*key];
        for (k, (t, leader, epoch)) in changes.iter().enumerate() {
            let end = changes.get(k + 1).map(|c| c.0).unwrap_or(t1);
            let fill = if *leader < 0 {
                "#000"
            } else {
                palette[*leader as usize % palette.len()]
            };
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="10" fill="{fill}" opacity="0.35"><title>leader {leader}, epoch {epoch}</title></rect><rect x="{:.1}" y="{:.1}" width="2" height="14" fill="{fill}"/>"#,
                x(*t),
                y + 2.0,
                (x(end) - x(*t)).max(1.0),
                x(*t),
                y
            );
        }
    }
    svg.push_str("</svg>");

    let mut faults_line = String::new();
    for (k, n) in &report.faults {
        let _ = write!(
            faults_line,
            r#"<span style="background:{};color:#fff;padding:1px 4px;margin-right:4px">{} × {n}</span>"#,
            color(k),
            esc(k)
        );
    }
    let verdict = if report.violations.is_empty() {
        "<b style=\"color:#2ca02c\">no violation</b>".to_string()
    } else {
        format!(
            "<b style=\"color:#d62728\">{} violations</b>: {}",
            report.violations.len(),
            esc(&report
                .violations
                .iter()
                .take(5)
                .map(|v| format!("{} ({})", v.property, v.message))
                .collect::<Vec<_>>()
                .join("; "))
        )
    };
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;margin:12px\"><h2 style=\"margin:0 0 6px 0\">{t}</h2>\
         <p style=\"margin:4px 0\">acked {acked}, lost {lost}, duplicated {dup}, reordered {reo}, \
         consumed then gone {gone}, availability {avail:.1}% — {verdict}</p>\
         <p style=\"margin:4px 0\">{faults_line}</p>{svg}</body></html>",
        t = esc(title),
        acked = report.acked,
        lost = report.lost,
        dup = report.duplicated,
        reo = report.reordered,
        gone = report.consumed_then_gone,
        avail = report.availability * 100.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_has_a_band_per_fault_and_a_lane_per_partition() {
        let h = vec![
            json!({"t": 0, "op": "fault", "id": 1, "kind": "isolate", "nodes": [4], "applied": true}),
            json!({"t": 3000, "op": "heal", "id": 1, "kind": "isolate"}),
            json!({"t": 500, "w": "queue", "op": "ack", "v": "q0"}),
            json!({"t": 700, "op": "observe-partition", "from": 4, "topic": "nemesis-queue", "p": 0, "leader": 4, "epoch": 1, "isr": [4]}),
            json!({"t": 4000, "op": "observe-partition", "from": 5, "topic": "nemesis-queue", "p": 0, "leader": 5, "epoch": 2, "isr": [5]}),
        ];
        let page = timeline(&h, &Report::default(), "seed 1");
        assert!(page.contains("<title>isolate [4] (0.0s–3.0s)</title>"));
        assert!(page.contains(">nemesis-queue-0<"));
        assert!(page.contains("leader 5, epoch 2"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }
}
