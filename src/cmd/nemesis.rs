//! `osprey nemesis`: the fault campaign. A real cluster (one network namespace per node, log
//! directories on the lazy filesystem), real clients (librdkafka through confluent-kafka)
//! running three workloads, a seeded schedule of faults, and a checker over the history.
//!
//! ```text
//! osprey nemesis run --seed 7 --time 120s [--layout dedicated|combined] [--unclean]
//! osprey nemesis campaign --seeds 10 --first-seed 1 --time 120s
//! osprey nemesis check --run DIR [--unclean]      # re-check a run's history.jsonl
//! ```
//!
//! Each run writes `DIR/seed-S/`: `history.jsonl`, `summary.json`, `timeline.html`, the
//! worker's stderr and each node's log. Needs root (namespaces, nftables, FUSE) and
//! python3 with confluent-kafka.

mod check;
mod cluster;
mod faults;
mod history;
mod net;
mod observe;
mod report;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::SeedableRng;
use serde_json::json;

use cluster::{Cluster, Layout, Settings};
use faults::{FaultKind, Nemesis, Timing};
use history::History;

const WORKER: &str = include_str!("nemesis/worker.py");

/// Set by SIGINT/SIGTERM: the run stops its faults, heals, and tears everything down
/// (namespaces, mounts, processes) instead of leaving them behind.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[derive(Args)]
pub struct NemesisArgs {
    #[command(subcommand)]
    command: NemesisCommand,
}

#[derive(Subcommand)]
enum NemesisCommand {
    /// One run: a cluster, the workloads, `--time` of faults, the read-back and the check.
    Run(RunArgs),
    /// Runs over many seeds, one after another, and sums them up.
    Campaign(CampaignArgs),
    /// Checks the history of a finished run again.
    Check(CheckArgs),
}

#[derive(Args, Clone)]
struct RunOptions {
    /// How long faults run (`120s`, `2m`, `90`).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    time: Duration,
    #[arg(long, value_enum, default_value = "dedicated")]
    layout: Layout,
    /// Turn unclean leader election on: losses are then reported, not violations.
    #[arg(long)]
    unclean: bool,
    #[arg(long, default_value_t = 2)]
    min_insync: u16,
    /// The producers' `request.timeout.ms` (librdkafka's default is 30000). Shorter values
    /// make produces time out in flight during faults, which librdkafka answers by sending
    /// their records again (see the README).
    #[arg(long, default_value_t = 30000)]
    request_timeout_ms: u64,
    /// Records a second each producer sends.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Only these faults (repeatable); default: every fault the layout allows.
    #[arg(long = "fault", value_enum)]
    faults: Vec<FaultKind>,
    /// A fault lasts between these many milliseconds...
    #[arg(long, default_value_t = 1500)]
    hold_min_ms: u64,
    #[arg(long, default_value_t = 5000)]
    hold_max_ms: u64,
    /// ...and the cluster rests between these many after it is healed.
    #[arg(long, default_value_t = 500)]
    rest_min_ms: u64,
    #[arg(long, default_value_t = 2500)]
    rest_max_ms: u64,
    /// After each heal, wait up to this many seconds for every partition to be led and
    /// fully replicated again before the next fault (0: do not wait).
    #[arg(long, default_value_t = 15)]
    wait_recovery_s: u64,
    /// Where runs are written (one `seed-S` directory each).
    #[arg(long, default_value = "./nemesis-runs")]
    dir: PathBuf,
    /// The osprey binary to run as nodes (default: this one).
    #[arg(long)]
    osprey: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    options: RunOptions,
}

#[derive(Args)]
struct CampaignArgs {
    /// How many seeds.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Alternate the dedicated and combined layouts from seed to seed.
    #[arg(long)]
    both_layouts: bool,
    #[command(flatten)]
    options: RunOptions,
}

#[derive(Args)]
struct CheckArgs {
    /// A run's directory (with history.jsonl).
    #[arg(long)]
    run: PathBuf,
    #[arg(long)]
    unclean: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (like 120s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs < 86400.0 * 7.0) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(args: NemesisArgs) -> ExitCode {
    install_signal_handlers();
    let result = match args.command {
        NemesisCommand::Run(a) => run_one(a.seed, &a.options).map(|r| r.violations.is_empty()),
        NemesisCommand::Campaign(a) => campaign(&a),
        NemesisCommand::Check(a) => recheck(&a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("osprey nemesis: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The summary of one run: what the checker found, and how the run was set up.
fn summary_json(seed: u64, o: &RunOptions, r: &check::Report) -> serde_json::Value {
    json!({
        "seed": seed,
        "layout": o.layout,
        "unclean": o.unclean,
        "min_insync": o.min_insync,
        "time_s": o.time.as_secs_f64(),
        "report": r,
    })
}

fn print_report(seed: u64, r: &check::Report, history: &[serde_json::Value], dir: &Path) {
    let faults: Vec<String> = r.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "seed {seed}: faults {} ({}); sent {}, acked {}, failed {}, lost {}, duplicated {}, reordered {}, \
         consumed-then-gone {}, commits {} (backwards {}, redelivered {}), observations {}, node exits {}, \
         not recovered {}, availability {:.1}%",
        r.faults.values().sum::<u64>(),
        faults.join(", "),
        r.sent,
        r.acked,
        r.failed,
        r.lost,
        r.duplicated,
        r.reordered,
        r.consumed_then_gone,
        r.commits,
        r.commit_backwards,
        r.redelivered,
        r.observations,
        r.node_exits,
        r.not_recovered,
        r.availability * 100.0
    );
    for v in r.violations.iter().take(10) {
        println!("  VIOLATION {}: {}", v.property, v.message);
        for l in check::stretch(history, v.line, 6) {
            println!("    {l}");
        }
    }
    if r.violations.len() > 10 {
        println!("  ... {} violations in all", r.violations.len());
    }
    println!("  {}", dir.display());
}

fn recheck(a: &CheckArgs) -> Result<bool> {
    let history = history::load(&a.run.join("history.jsonl"))?;
    let r = check::check(&history, a.unclean);
    print_report(0, &r, &history, &a.run);
    Ok(r.violations.is_empty())
}

fn campaign(a: &CampaignArgs) -> Result<bool> {
    let mut all_ok = true;
    let mut total = check::Report::default();
    let mut runs = Vec::new();
    for seed in a.first_seed..a.first_seed + a.seeds {
        if interrupted() {
            break;
        }
        let mut o = a.options.clone();
        if a.both_layouts && seed % 2 == 0 {
            o.layout = Layout::Combined;
        }
        let r = run_one(seed, &o)?;
        all_ok &= r.violations.is_empty();
        total.sent += r.sent;
        total.acked += r.acked;
        total.failed += r.failed;
        total.lost += r.lost;
        total.duplicated += r.duplicated;
        total.reordered += r.reordered;
        total.consumed_then_gone += r.consumed_then_gone;
        total.commit_backwards += r.commit_backwards;
        total.redelivered += r.redelivered;
        total.node_exits += r.node_exits;
        total.not_recovered += r.not_recovered;
        for (k, n) in &r.faults {
            *total.faults.entry(k.clone()).or_default() += n;
        }
        total.availability += r.availability;
        total.violations.extend(r.violations.iter().cloned());
        runs.push(summary_json(seed, &o, &r));
    }
    total.availability /= a.seeds.max(1) as f64;
    let out = a.options.dir.join("campaign.json");
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json!({"runs": runs, "total": total}))?,
    )?;
    println!(
        "campaign: {} runs; faults {:?}; acked {}, lost {}, duplicated {}, reordered {}, consumed-then-gone {}, \
         commits backwards {}, redelivered {}, violations {}, mean availability {:.1}%  ({})",
        a.seeds,
        total.faults,
        total.acked,
        total.lost,
        total.duplicated,
        total.reordered,
        total.consumed_then_gone,
        total.commit_backwards,
        total.redelivered,
        total.violations.len(),
        total.availability * 100.0,
        out.display()
    );
    Ok(all_ok)
}

/// Runs a command until it succeeds or `within` passes.
fn retry_command(cmd: &mut Command, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let out = cmd.output()?;
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{:?} kept failing: {}",
                cmd,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts the worker; its stdout lines go into the history. Returns the child and the
/// thread copying its output.
fn start_worker(
    dir: &Path,
    args: &[String],
    history: &History,
) -> Result<(std::process::Child, std::thread::JoinHandle<()>)> {
    let script = dir.join("worker.py");
    std::fs::write(&script, WORKER)?;
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("worker.err"))?;
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("starting the workload worker (python3 with confluent-kafka)")?;
    let out = child.stdout.take().context("worker stdout")?;
    let h = history.clone();
    let copier = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            h.record_raw(&line);
        }
    });
    Ok((child, copier))
}

/// Waits for a child up to `within`, then kills it. Returns whether it exited by itself.
fn wait_or_kill(child: &mut std::process::Child, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline && !interrupted() {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn run_one(seed: u64, o: &RunOptions) -> Result<check::Report> {
    net::cleanup_leftovers();
    cluster::cleanup_leftover_mounts();
    let binary = match &o.osprey {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating the osprey binary")?,
    };
    let dir = o.dir.join(format!("seed-{seed}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let history = History::create(&dir.join("history.jsonl"))?;
    let kinds = if o.faults.is_empty() {
        FaultKind::for_layout(o.layout)
    } else {
        o.faults.clone()
    };
    let settings = Settings {
        unclean: o.unclean,
        min_insync: o.min_insync,
        extra: Vec::new(),
    };
    let mut cluster = Cluster::create(&dir, o.layout, &settings, &binary)?;
    history.record(json!({
        "op": "run-start", "seed": seed, "layout": o.layout, "unclean": o.unclean,
        "min_insync": o.min_insync, "faults": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "nodes": cluster.nodes.iter().map(|n| json!({"id": n.id, "role": n.role, "ip": cluster.net.node(n.id).ip.to_string()})).collect::<Vec<_>>(),
    }));
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    let bootstrap = cluster.bootstrap();
    for topic in observe::TOPICS {
        let mut cmd = Command::new(&binary);
        cmd.args([
            "topics",
            "--bootstrap-server",
            &bootstrap,
            "create",
            "--topic",
            topic,
        ])
        .args(["--partitions", "6", "--replication-factor", "3"])
        .args(["--config", &format!("min.insync.replicas={}", o.min_insync)]);
        retry_command(&mut cmd, Duration::from_secs(60)).with_context(|| {
            format!(
                "creating {topic}; node 4's log:\n{}",
                cluster.log_tail(*cluster.broker_ids().first().unwrap_or(&1), 20)
            )
        })?;
    }
    history.record(json!({"op": "topics-created"}));

    // Observer on its own runtime thread.
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(Mutex::new(observe::Latest::default()));
    let targets = observe::Targets {
        brokers: cluster
            .broker_ids()
            .into_iter()
            .map(|id| (id, cluster.broker_addr(id)))
            .collect(),
        controllers: cluster
            .controller_ids()
            .into_iter()
            .map(|id| (id, cluster.controller_addr(id)))
            .collect(),
    };
    let observer = {
        let (h, l, s) = (history.clone(), latest.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(observe::run(targets, h, l, s, Duration::from_millis(500)));
        })
    };

    let (mut worker, copier) = start_worker(
        &dir,
        &[
            "run".into(),
            "--bootstrap".into(),
            bootstrap.clone(),
            "--duration".into(),
            format!("{}", o.time.as_secs_f64() + 5.0),
            "--rate".into(),
            format!("{}", o.rate),
            "--request-timeout-ms".into(),
            o.request_timeout_ms.to_string(),
        ],
        &history,
    )?;

    // Faults.
    let timing = Timing {
        hold: (o.hold_min_ms, o.hold_max_ms),
        rest: (o.rest_min_ms, o.rest_max_ms),
    };
    let rng = rand::rngs::StdRng::seed_from_u64(seed);
    let schedule_result = {
        let mut nemesis = Nemesis::new(&mut cluster, history.clone(), latest.clone(), rng, kinds);
        // A few seconds of load before the first fault.
        std::thread::sleep(Duration::from_secs(5));
        let end = Instant::now() + o.time;
        let mut result = Ok(());
        while Instant::now() < end && !interrupted() {
            let step = nemesis.choose();
            let hold = timing.hold(&mut nemesis.rng);
            let rest = timing.rest(&mut nemesis.rng);
            for kind in step {
                if let Err(e) = nemesis.apply(kind) {
                    result = Err(e.context(format!("applying {}", kind.name())));
                    break;
                }
            }
            let until = Instant::now() + hold;
            while Instant::now() < until && !interrupted() {
                std::thread::sleep(Duration::from_millis(200));
                nemesis.note_exits();
            }
            if let Err(e) = nemesis.heal() {
                result = Err(e.context("healing"));
                break;
            }
            std::thread::sleep(rest);
            if o.wait_recovery_s > 0 && !interrupted() {
                nemesis.wait_until_recovered(Duration::from_secs(o.wait_recovery_s));
            }
        }
        let _ = nemesis.heal();
        history.record(json!({"op": "faults-done"}));
        nemesis.wait_until_recovered(Duration::from_secs(60));
        result
    };

    // Let the workload finish, the cluster settle, then read everything back.
    wait_or_kill(&mut worker, Duration::from_secs(90));
    let _ = copier.join();
    std::thread::sleep(Duration::from_secs(5));
    let (mut reader, reader_copier) = start_worker(
        &dir,
        &[
            "read".into(),
            "--bootstrap".into(),
            bootstrap,
            "--timeout".into(),
            "120".into(),
        ],
        &history,
    )?;
    wait_or_kill(&mut reader, Duration::from_secs(150));
    let _ = reader_copier.join();
    stop.store(true, Ordering::Relaxed);
    let _ = observer.join();
    history.record(json!({"op": "run-end"}));
    history.flush();
    cluster.teardown();
    schedule_result?;
    if interrupted() {
        bail!(
            "interrupted; everything was torn down, the partial history is in {}",
            dir.display()
        );
    }

    let events = history::load(&dir.join("history.jsonl"))?;
    let report = check::check(&events, o.unclean);
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary_json(seed, o, &report))?,
    )?;
    std::fs::write(
        dir.join("timeline.html"),
        report::timeline(
            &events,
            &report,
            &format!(
                "osprey nemesis — seed {seed}, {:?} layout{}, {} s",
                o.layout,
                if o.unclean { ", unclean election" } else { "" },
                o.time.as_secs()
            ),
        ),
    )?;
    print_report(seed, &report, &events, &dir);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
