//! The guarantee matrix as one self-contained HTML page (no script, no external resource):
//! the grid, then each counterexample as a timeline with one lane per broker.

use super::results::{marks, CellResult};
use osprey_model::guarantees::{Cell, GridBounds};
use osprey_model::state::RecordStatus;
use osprey_model::trace::{BrokerView, Role, Trace};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #bbb;padding:4px 8px;font-size:13px}\
th{background:#eee}.ok{background:#d9f2d9}.bad{background:#f6d2d2}.mark{font-family:monospace;font-size:15px}\
.lane{font-family:monospace;white-space:nowrap}.leader{background:#dbe8ff}.down{background:#ddd;color:#777}\
h2{margin-top:32px}.story{font-style:italic}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn anchor(c: &Cell) -> String {
    c.label().replace([' ', '='], "-")
}

/// The page.
pub fn page(results: &[CellResult], bounds: GridBounds) -> String {
    let mut h = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Osprey guarantee matrix</title><style>{STYLE}</style></head><body>\
         <h1>What Kafka's durability settings guarantee</h1>\
         <p>Each cell was checked by Osprey's replication model (1 record, leader epochs &le; {}, {} ISR change(s)). \
         Marks: acknowledged writes never lost / consumed records never lost / acks=all writes still acknowledged after one broker is lost. \
         <b>+</b> holds (every state explored), <b>x</b> violated (click for the shortest counterexample).</p>",
        bounds.max_epoch, bounds.max_isr_changes
    );
    h.push_str("<table><tr><th>RF</th><th>min.insync</th><th>acks</th><th>unclean</th><th>flush</th><th>ELR, 1 crash</th><th>ELR, 2 crashes</th><th>no ELR (3.x), 1 crash</th><th>no ELR (3.x), 2 crashes</th></tr>");
    let mut rows: Vec<Cell> = Vec::new();
    for r in results {
        let key = Cell {
            elr: true,
            crashes: 1,
            ..r.cell
        };
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for row in rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            row.rf,
            row.min_isr,
            if row.acks_all { "all" } else { "1" },
            if row.unclean { "on" } else { "off" },
            if row.flush_every { "every" } else { "never" }
        ));
        for (elr, crashes) in [(true, 1), (true, 2), (false, 1), (false, 2)] {
            let cell = Cell {
                elr,
                crashes,
                ..row
            };
            match results.iter().find(|r| r.cell == cell) {
                Some(r) if r.counterexample.is_some() => h.push_str(&format!(
                    "<td class=\"bad mark\"><a href=\"#{}\">{}</a></td>",
                    anchor(&cell),
                    marks(r)
                )),
                Some(r) => h.push_str(&format!("<td class=\"ok mark\">{}</td>", marks(r))),
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    for r in results {
        if let Some(c) = &r.counterexample {
            h.push_str(&format!(
                "<h2 id=\"{}\">{}</h2><p>{} steps, violates {}. <span class=\"story\">{}</span></p>",
                anchor(&r.cell),
                esc(&r.cell.label()),
                c.steps,
                esc(&c.violated.join(", ")),
                esc(&c.story)
            ));
            h.push_str(&timeline(&c.trace));
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// One row per step; one lane (column) per broker, then the controller and the producer.
fn timeline(t: &Trace) -> String {
    let mut h = String::from("<table><tr><th>step</th><th>action</th>");
    for b in 0..t.config.brokers {
        h.push_str(&format!("<th>broker {b}</th>"));
    }
    h.push_str("<th>controller</th><th>producer</th></tr>");
    for s in &t.steps {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>",
            s.index,
            esc(&s
                .action
                .map_or("initial state".to_string(), |a| a.describe()))
        ));
        for b in &s.state.brokers {
            let class = match b.role {
                Role::Leader => "lane leader",
                Role::Down => "lane down",
                _ => "lane",
            };
            h.push_str(&format!("<td class=\"{class}\">{}</td>", esc(&lane(b))));
        }
        let c = &s.state.controller;
        h.push_str(&format!(
            "<td class=\"lane\">leader {} e{} ISR {:?} ELR {:?}</td>",
            c.leader.map_or("none".to_string(), |l| format!("b{l}")),
            c.leader_epoch,
            c.isr,
            c.elr
        ));
        let producer: Vec<String> = s.state.records.iter().map(record).collect();
        h.push_str(&format!(
            "<td class=\"lane\">{}</td></tr>",
            producer.join(" ")
        ));
    }
    h.push_str("</table>");
    h
}

fn lane(b: &BrokerView) -> String {
    let role = match b.role {
        Role::Leader => "LEADER",
        Role::Follower => "follower",
        Role::None => "no leader",
        Role::Down => "DOWN",
    };
    let log: Vec<String> = b.log.iter().map(|(r, e)| format!("r{r}@{e}")).collect();
    format!(
        "{role} e{} log [{}] hw {} flushed {}",
        b.leader_epoch,
        log.join(" "),
        b.high_watermark,
        b.flushed_offset
    )
}

fn record(st: &RecordStatus) -> String {
    match st {
        RecordStatus::NotSent => "-".to_string(),
        RecordStatus::Pending { .. } => "waiting".to_string(),
        RecordStatus::Acked { acks_all, .. } => {
            format!("ACKED ({})", if *acks_all { "acks=all" } else { "acks=1" })
        }
        RecordStatus::Failed => "failed".to_string(),
    }
}
