//! A small FUSE filesystem that holds every write in memory until it is fsynced, so that a
//! simulated power cut loses exactly what a real disk could lose: the fault campaign
//! (`osprey nemesis`) mounts one as each node's log directory.
//!
//! - A file's bytes become durable when the file is fsynced; a directory's creations,
//!   renames and deletions when the directory is fsynced ([`state`] has the rules).
//! - [`Control::crash`] (called while the node's process is dead, after a `kill -9`) puts
//!   every file back to its last fsynced contents; unsynced creations vanish.
//! - [`Control::set_faults`] makes writes and/or fsyncs fail with EIO, and changes nothing
//!   while they do.
//!
//! Control is in-process: the process that mounts the filesystem (the nemesis) serves its
//! FUSE requests on a background thread and keeps a [`Control`] handle to the same state.
//! Nothing else can reach it, so no node under test can crash its own disk by accident.
//!
//! Everything is in memory and bounded by the capacity given at mount time (current plus
//! durable bytes); past it writes fail with ENOSPC.

pub mod fuse;
pub mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use state::{CrashReport, Faults, FsError, Stats};

/// A handle on a mounted filesystem's state, for the nemesis.
#[derive(Clone)]
pub struct Control {
    state: Arc<Mutex<state::State>>,
}

impl Control {
    fn with<T>(&self, f: impl FnOnce(&mut state::State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A power cut: drops everything not fsynced. Call it while nothing has the
    /// filesystem open (the node is dead).
    pub fn crash(&self) -> CrashReport {
        self.with(|s| s.crash())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.with(|s| s.set_faults(faults))
    }

    pub fn faults(&self) -> Faults {
        self.with(|s| s.faults())
    }

    pub fn stats(&self) -> Stats {
        self.with(|s| s.stats())
    }

    /// Bytes held, current and durable copies.
    pub fn used(&self) -> u64 {
        self.with(|s| s.used())
    }
}

/// A mounted filesystem; unmounted on drop.
pub struct Mount {
    path: PathBuf,
    /// The FUSE connection's name under /sys/fs/fuse/connections (its device number).
    connection: Option<String>,
    control: Control,
    session: Option<fuser::BackgroundSession>,
}

impl Mount {
    /// Mounts an empty filesystem of `capacity` bytes at `path` (an existing, empty
    /// directory). Needs root or a `fusermount3` the caller may use.
    pub fn new(path: &Path, capacity: u64, name: &str) -> io::Result<Mount> {
        let state = Arc::new(Mutex::new(state::State::new(capacity, SystemTime::now())));
        let fs = fuse::LazyFs {
            state: state.clone(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName(name.to_string()),
            fuser::MountOption::Subtype("osprey-lazyfs".into()),
            fuser::MountOption::NoAtime,
        ];
        // Every process may use it (the nodes run as root like the nemesis, but in other
        // namespaces); permissions are still checked by the kernel.
        config.acl = fuser::SessionACL::All;
        config
            .mount_options
            .push(fuser::MountOption::DefaultPermissions);
        let session = fuser::spawn_mount(fs, path, &config)?;
        let connection = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| {
                let dev = m.dev();
                // The kernel names the connection by its own dev_t encoding.
                (libc::major(dev) << 20 | libc::minor(dev)).to_string()
            })
        };
        Ok(Mount {
            path: path.to_path_buf(),
            connection,
            control: Control { state },
            session: Some(session),
        })
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts (lazily if something still holds it open) and waits for the serving thread.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        if let Some(session) = self.session.take() {
            // Detach it from the tree first (this succeeds while files are still open),
            // then abort the connection: every pending or later request fails with
            // ENOTCONN instead of waiting for a server that is going away. Without the
            // abort, a file still open on the mount when the serving thread stops would
            // hang its closer (even this process, at exit) in the kernel for good.
            let _ = lazy_unmount(&self.path);
            if let Some(c) = &self.connection {
                abort_connection(c);
            }
            return session.join();
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

/// Aborts FUSE connection `name` (/sys/fs/fuse/connections/NAME/abort), mounting the
/// fusectl filesystem there first if it is not.
fn abort_connection(name: &str) {
    let dir = Path::new("/sys/fs/fuse/connections");
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("fusectl"))
        })
        .unwrap_or(false);
    if !mounted {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "fusectl"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
    // Gone already if nothing held the filesystem open: the unmount ended it.
    let _ = std::fs::write(dir.join(name).join("abort"), "1");
}

/// Detaches whatever is mounted at `path` (`umount -l`): used to clean up mounts left by a
/// run that was killed.
pub fn lazy_unmount(path: &Path) -> io::Result<()> {
    let status = Command::new("umount").arg("-l").arg(path).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "umount -l {} failed ({status})",
            path.display()
        )))
    }
}
