//! Node processes: spawning detached `osprey broker --config FILE` children, signalling
//! them by pid, and probing their listener ports.

use super::state::NodeRecord;
use anyhow::{Context, Result};
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often readiness and exits are polled.
const POLL: Duration = Duration::from_millis(100);

/// Starts `exe broker --config <node.config>` as a detached process: its own process group
/// (a Ctrl-C in the terminal that ran `up` does not reach it), stdin closed, stdout and
/// stderr appended to the node's log file.
pub fn spawn_node(exe: &Path, node: &NodeRecord) -> Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let err = log.try_clone().context("duplicating the log file handle")?;
    Command::new(exe)
        .arg("broker")
        .arg("--config")
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting node {} ({})", node.id, exe.display()))
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Whether `127.0.0.1:port` can be bound now, i.e. no other process holds it (checked
/// before starting, or a foreign listener would look like a ready node).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Why a node did not start.
#[derive(Debug)]
pub enum StartFailure {
    /// The process exited before its ports were up.
    Exited(std::process::ExitStatus),
    /// Still not listening at the deadline.
    TimedOut,
}

/// Waits until every port of every node accepts TCP, a node exits, or `timeout` passes.
/// Returns the first node that did not become ready, with why; `None` if all did.
pub fn wait_ready(
    nodes: &[&NodeRecord],
    children: &mut [Child],
    timeout: Duration,
) -> Result<Option<(usize, StartFailure)>> {
    let deadline = Instant::now() + timeout;
    let mut ready = vec![false; nodes.len()];
    loop {
        for (i, (node, child)) in nodes.iter().zip(children.iter_mut()).enumerate() {
            if ready[i] {
                continue;
            }
            if let Some(status) = child.try_wait().context("polling a node process")? {
                return Ok(Some((i, StartFailure::Exited(status))));
            }
            ready[i] = node.ports().into_iter().all(port_accepts);
        }
        if ready.iter().all(|&r| r) {
            return Ok(None);
        }
        if Instant::now() >= deadline {
            let i = ready.iter().position(|&r| !r).unwrap_or(0);
            return Ok(Some((i, StartFailure::TimedOut)));
        }
        std::thread::sleep(POLL);
    }
}

/// Sends `signal` to `pid`; `Ok(false)` if no such process exists.
pub fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<bool> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ESRCH) => Ok(false),
        _ => Err(e),
    }
}

/// Whether process `pid` exists (signal 0 probes without signalling).
pub fn is_alive(pid: u32) -> bool {
    match send_signal(pid, 0) {
        Ok(alive) => alive,
        // EPERM: it exists but belongs to someone else.
        Err(e) => e.kind() == ErrorKind::PermissionDenied,
    }
}

/// Whether `pid` is still the node started from `config`, not an unrelated process that
/// reused the pid: its command line must name the config file. Where `/proc` is not
/// available the pid is trusted.
pub fn is_node_process(pid: u32, config: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let want = config.as_os_str().as_encoded_bytes();
            cmdline.split(|&b| b == 0).any(|arg| arg == want)
        }
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// What happened to one process asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Exited after SIGTERM.
    Terminated,
    /// Still running after the grace period: SIGKILLed.
    Killed,
    /// Was not running.
    NotRunning,
}

/// SIGTERM every pid, wait up to `grace` for all of them together, then SIGKILL the
/// leftovers. Returns the fate of each pid, in order.
pub fn stop_all(pids: &[u32], grace: Duration) -> Vec<Stopped> {
    let mut fate: Vec<Stopped> = pids
        .iter()
        .map(|&pid| match send_signal(pid, libc::SIGTERM) {
            Ok(true) => Stopped::Terminated,
            _ => Stopped::NotRunning,
        })
        .collect();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && pids
            .iter()
            .zip(&fate)
            .any(|(&p, f)| *f == Stopped::Terminated && is_alive(p))
    {
        std::thread::sleep(POLL);
    }
    for (&pid, f) in pids.iter().zip(fate.iter_mut()) {
        if *f == Stopped::Terminated && is_alive(pid) && send_signal(pid, libc::SIGKILL).is_ok() {
            *f = Stopped::Killed;
        }
    }
    fate
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 2), "b\nc");
        assert_eq!(tail(&p, 10), "a\nb\nc");
        assert_eq!(tail(&tmp.path().join("missing"), 3), "");
    }

    #[test]
    fn a_bound_port_is_not_free_and_accepts() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!port_free(port));
        assert!(port_accepts(port));
        drop(l);
        // A port that saw a connection may linger in TIME_WAIT, so check release on a port
        // that never accepted one.
        let quiet = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let quiet_port = quiet.local_addr().unwrap().port();
        assert!(!port_free(quiet_port));
        drop(quiet);
        assert!(port_free(quiet_port));
    }

    #[test]
    fn stopping_a_process_that_honours_sigterm() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(is_alive(pid));
        // Reap in a thread, as init would for a detached node.
        let reaper = std::thread::spawn(move || {
            let mut child = child;
            child.wait().unwrap()
        });
        assert_eq!(
            stop_all(&[pid], Duration::from_secs(5)),
            vec![Stopped::Terminated]
        );
        assert!(!reaper.join().unwrap().success());
        assert_eq!(
            stop_all(&[pid], Duration::from_millis(10)),
            vec![Stopped::NotRunning]
        );
    }

    #[test]
    fn an_early_exit_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let node = NodeRecord {
            id: 1,
            roles: super::super::layout::Roles::Broker,
            broker_port: Some(1),
            controller_port: None,
            pid: None,
            config: tmp.path().join("c"),
            log: tmp.path().join("l"),
        };
        let mut children = vec![Command::new("true").spawn().unwrap()];
        let out = wait_ready(&[&node], &mut children, Duration::from_secs(10)).unwrap();
        assert!(matches!(out, Some((0, StartFailure::Exited(s))) if s.success()));
    }
}
