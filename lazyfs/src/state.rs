//! The filesystem's contents as two layers: what a process sees now, and what a disk would
//! still hold after a power cut. Pure data, no FUSE and no clock (times are passed in), so
//! every durability rule is unit-tested here and the FUSE adapter only translates.
//!
//! The rules are the strict POSIX ones a crash-consistent program must assume:
//! - a file's contents (its bytes and its length) become durable when the file is fsynced
//!   (`fsync` or `fdatasync`);
//! - a directory's entries (creations, renames, deletions in it) become durable when the
//!   directory itself is fsynced;
//! - a crash puts every file back to its last fsynced contents and every directory back to
//!   its last fsynced entries; a file or directory no durable entry names any more is gone.
//!
//! Faults can be switched on at any time: writes or fsyncs then fail with EIO and change
//! nothing (an fsync that failed made nothing durable).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// An inode number. Numbers are never reused, so the kernel cannot confuse a file that
/// vanished in a crash with a later one.
pub type Ino = u64;

/// The root directory's inode number (FUSE's fixed root).
pub const ROOT: Ino = 1;

/// Longest name accepted in a directory (Linux's NAME_MAX).
const NAME_MAX: usize = 255;

/// Why an operation was refused; the FUSE adapter maps each to its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("no space left (the filesystem's capacity is reached)")]
    NoSpace,
    #[error("input/output error (injected)")]
    Io,
    #[error("invalid argument")]
    Invalid,
    #[error("file name too long")]
    NameTooLong,
}

pub type Result<T> = std::result::Result<T, FsError>;

/// File or directory (the only kinds this filesystem holds; a log directory needs no more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Faults the nemesis switches on and off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every write (and truncation) fails with EIO.
    pub write_eio: bool,
    /// Every fsync of a file or directory fails with EIO and makes nothing durable.
    pub fsync_eio: bool,
}

/// What `stat` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub mtime: SystemTime,
}

/// What a crash threw away, for the nemesis's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Files whose contents went back to an older (fsynced) version.
    pub files_reverted: u64,
    /// Bytes of file contents that were never fsynced and are gone.
    pub bytes_dropped: u64,
    /// Files and directories that vanished (their creation was never made durable).
    pub entries_vanished: u64,
}

/// Counters since the filesystem was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub bytes_written: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub crashes: u64,
    pub injected_errors: u64,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
    /// File: the bytes a reader sees now.
    data: Vec<u8>,
    /// File: the bytes a crash goes back to.
    durable: Vec<u8>,
    /// File: lowest offset changed since the last fsync (`None`: data == durable). Lets an
    /// fsync copy only what changed, so appending to a large segment stays cheap.
    dirty_from: Option<usize>,
    /// Directory: the entries a reader sees now.
    entries: BTreeMap<OsString, Ino>,
    /// Directory: the entries a crash goes back to.
    durable_entries: BTreeMap<OsString, Ino>,
}

impl Node {
    fn new(kind: Kind, perm: u16, now: SystemTime) -> Node {
        Node {
            kind,
            perm,
            mtime: now,
            data: Vec::new(),
            durable: Vec::new(),
            dirty_from: None,
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }

    fn footprint(&self) -> u64 {
        (self.data.len() + self.durable.len()) as u64
    }

    fn mark_dirty(&mut self, from: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }
}

/// The whole filesystem. Its memory is bounded by `capacity` (current plus durable bytes):
/// past it writes fail with ENOSPC, as a small disk would.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    capacity: u64,
    used: u64,
    faults: Faults,
    open: HashMap<Ino, u32>,
    stats: Stats,
}

impl State {
    /// An empty filesystem (an empty, durable root directory) holding at most `capacity`
    /// bytes.
    pub fn new(capacity: u64, now: SystemTime) -> State {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::new(Kind::Dir, 0o755, now));
        State {
            nodes,
            next_ino: ROOT + 1,
            capacity,
            used: 0,
            faults: Faults::default(),
            open: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes held (current and durable contents).
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&Node> {
        let n = self.node(ino)?;
        if n.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        Ok(n)
    }

    pub fn attr(&self, ino: Ino) -> Result<Attr> {
        let n = self.node(ino)?;
        let nlink = match n.kind {
            Kind::File => 1,
            Kind::Dir => {
                2 + n
                    .entries
                    .values()
                    .filter(|c| self.nodes.get(c).is_some_and(|c| c.kind == Kind::Dir))
                    .count() as u32
            }
        };
        Ok(Attr {
            ino,
            kind: n.kind,
            size: match n.kind {
                Kind::File => n.data.len() as u64,
                Kind::Dir => n.entries.len() as u64,
            },
            perm: n.perm,
            nlink,
            mtime: n.mtime,
        })
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// The entries of a directory, in name order.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<(OsString, Ino, Kind)>> {
        let d = self.dir(ino)?;
        Ok(d.entries
            .iter()
            .filter_map(|(name, c)| self.nodes.get(c).map(|n| (name.clone(), *c, n.kind)))
            .collect())
    }

    /// Creates a file or directory named `name` in `parent` (not durable until `parent` is
    /// fsynced).
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        perm: u16,
        now: SystemTime,
    ) -> Result<Ino> {
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        if name.is_empty() || name == "." || name == ".." || name.as_encoded_bytes().contains(&b'/')
        {
            return Err(FsError::Invalid);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(kind, perm, now));
        let p = self.node_mut(parent)?;
        p.entries.insert(name.to_owned(), ino);
        p.mtime = now;
        Ok(ino)
    }

    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<&[u8]> {
        let n = self.node(ino)?;
        if n.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let start = (offset as usize).min(n.data.len());
        let end = start.saturating_add(size as usize).min(n.data.len());
        Ok(&n.data[start..end])
    }

    /// An injected EIO when `fault` is switched on (counted in the stats).
    fn injected(&mut self, fault: bool) -> Result<()> {
        if fault {
            self.stats.injected_errors += 1;
            return Err(FsError::Io);
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` (a hole before it reads as zeros).
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8], now: SystemTime) -> Result<u32> {
        self.injected(self.faults.write_eio)?;
        let (capacity, used) = (self.capacity, self.used);
        let n = self.node_mut(ino)?;
        if n.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let offset = usize::try_from(offset).map_err(|_| FsError::Invalid)?;
        let end = offset.checked_add(bytes.len()).ok_or(FsError::Invalid)?;
        let growth = end.saturating_sub(n.data.len()) as u64;
        if used + growth > capacity {
            return Err(FsError::NoSpace);
        }
        if end > n.data.len() {
            n.data.resize(end, 0);
        }
        n.data[offset..end].copy_from_slice(bytes);
        n.mark_dirty(offset);
        n.mtime = now;
        self.used += growth;
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(bytes.len() as u32)
    }

    /// Sets a file's length (ftruncate / set_len).
    pub fn truncate(&mut self, ino: Ino, size: u64, now: SystemTime) -> Result<()> {
        self.injected(self.faults.write_eio)?;
        let (capacity, used) = (self.capacity, self.used);
        let n = self.node_mut(ino)?;
        if n.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let size = usize::try_from(size).map_err(|_| FsError::Invalid)?;
        let old = n.data.len();
        if size > old && used + (size - old) as u64 > capacity {
            return Err(FsError::NoSpace);
        }
        n.data.resize(size, 0);
        n.mark_dirty(size.min(old));
        n.mtime = now;
        self.used = self.used + size as u64 - old as u64;
        Ok(())
    }

    /// Makes a file's contents, or a directory's entries, durable.
    pub fn fsync(&mut self, ino: Ino) -> Result<()> {
        self.injected(self.faults.fsync_eio)?;
        let n = self.node_mut(ino)?;
        match n.kind {
            Kind::File => {
                let before = n.durable.len();
                if let Some(from) = n.dirty_from.take() {
                    let keep = from.min(n.durable.len());
                    n.durable.truncate(keep);
                    let data = &n.data[keep..];
                    n.durable.extend_from_slice(data);
                }
                let after = n.durable.len();
                self.used = self.used + after as u64 - before as u64;
                self.stats.fsyncs += 1;
            }
            Kind::Dir => {
                n.durable_entries = n.entries.clone();
                self.stats.dir_fsyncs += 1;
                self.collect();
            }
        }
        Ok(())
    }

    /// Removes a file's name.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr, now: SystemTime) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if self.node(ino)?.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.mtime = now;
        self.collect();
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr, now: SystemTime) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        let d = self.node(ino)?;
        if d.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        if !d.entries.is_empty() {
            return Err(FsError::NotEmpty);
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.mtime = now;
        self.collect();
        Ok(())
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, replacing a file (or an
    /// empty directory, for a directory) of that name; `no_replace` refuses instead.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
        now: SystemTime,
    ) -> Result<()> {
        if new_name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        let kind = self.node(ino)?.kind;
        if kind == Kind::Dir && (ino == new_parent || self.is_ancestor(ino, new_parent)) {
            return Err(FsError::Invalid);
        }
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            let t = self.node(target)?;
            match (kind, t.kind) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::Dir, Kind::Dir) if !t.entries.is_empty() => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.mtime = now;
        let np = self.node_mut(new_parent)?;
        np.entries.insert(new_name.to_owned(), ino);
        np.mtime = now;
        self.collect();
        Ok(())
    }

    /// Whether `dir` is an ancestor of `ino` through current entries.
    fn is_ancestor(&self, dir: Ino, ino: Ino) -> bool {
        let mut stack = vec![dir];
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d) {
                continue;
            }
            if let Some(n) = self.nodes.get(&d) {
                for c in n.entries.values() {
                    if *c == ino {
                        return true;
                    }
                    stack.push(*c);
                }
            }
        }
        false
    }

    pub fn set_perm(&mut self, ino: Ino, perm: u16) -> Result<()> {
        self.node_mut(ino)?.perm = perm & 0o7777;
        Ok(())
    }

    /// A file or directory was opened: it stays while open even if unlinked.
    pub fn opened(&mut self, ino: Ino) {
        *self.open.entry(ino).or_default() += 1;
    }

    pub fn released(&mut self, ino: Ino) {
        if let Some(c) = self.open.get_mut(&ino) {
            *c -= 1;
            if *c == 0 {
                self.open.remove(&ino);
                self.collect();
            }
        }
    }

    /// A power cut: every file back to its fsynced contents, every directory back to its
    /// fsynced entries; what no durable entry reaches is gone.
    pub fn crash(&mut self) -> CrashReport {
        let mut report = CrashReport::default();
        let durable = self.reachable(true, false);
        for (ino, n) in &mut self.nodes {
            if !durable.contains(ino) {
                // Vanishes below, with everything written to it.
                report.bytes_dropped += n.data.len() as u64;
                continue;
            }
            if n.dirty_from.is_some() {
                report.files_reverted += 1;
                let from = n.dirty_from.unwrap_or(0).min(n.data.len());
                report.bytes_dropped += (n.data.len() - from) as u64;
                n.data = n.durable.clone();
                n.dirty_from = None;
            }
            if n.kind == Kind::Dir {
                n.entries = n.durable_entries.clone();
            }
        }
        let before = self.nodes.len();
        // Open handles do not survive a power cut.
        self.open.clear();
        self.collect();
        report.entries_vanished = (before - self.nodes.len()) as u64;
        self.used = self.nodes.values().map(Node::footprint).sum();
        self.stats.crashes += 1;
        report
    }

    /// Inodes reachable from the root through current entries and/or durable ones.
    fn reachable(&self, durable: bool, current: bool) -> HashSet<Ino> {
        let mut seen = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(n) = self.nodes.get(&ino) {
                if current {
                    stack.extend(n.entries.values().copied());
                }
                if durable {
                    stack.extend(n.durable_entries.values().copied());
                }
            }
        }
        seen
    }

    /// Frees inodes no entry (current or durable) names and no handle holds.
    fn collect(&mut self) {
        let mut live = self.reachable(true, true);
        live.extend(self.open.keys().copied());
        let dead: Vec<Ino> = self
            .nodes
            .keys()
            .filter(|i| !live.contains(i))
            .copied()
            .collect();
        for ino in dead {
            if let Some(n) = self.nodes.remove(&ino) {
                self.used -= n.footprint();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn fs() -> State {
        State::new(1 << 20, t())
    }

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn contents(s: &State, parent: Ino, n: &str) -> Option<Vec<u8>> {
        let ino = s.lookup(parent, name(n)).ok()?;
        Some(s.read(ino, 0, u32::MAX).unwrap().to_vec())
    }

    #[test]
    fn unsynced_creation_vanishes_in_a_crash() {
        let mut s = fs();
        let f = s.create(ROOT, name("a"), Kind::File, 0o644, t()).unwrap();
        s.write(f, 0, b"hello", t()).unwrap();
        s.fsync(f).unwrap();
        let r = s.crash();
        assert_eq!(
            contents(&s, ROOT, "a"),
            None,
            "the name was never made durable"
        );
        assert_eq!(r.entries_vanished, 1);
        assert_eq!(r.bytes_dropped, 5);
        assert_eq!(s.used(), 0);
    }

    #[test]
    fn durable_name_keeps_only_fsynced_bytes() {
        let mut s = fs();
        let f = s.create(ROOT, name("a"), Kind::File, 0o644, t()).unwrap();
        s.fsync(ROOT).unwrap();
        s.write(f, 0, b"hello", t()).unwrap();
        s.fsync(f).unwrap();
        s.write(f, 5, b" world", t()).unwrap();
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"hello world");
        let r = s.crash();
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"hello");
        assert_eq!(r.files_reverted, 1);
        assert_eq!(r.bytes_dropped, 6);
        assert_eq!(s.used(), 10, "current and durable copies of 5 bytes");
    }

    #[test]
    fn overwrite_inside_the_durable_part_is_undone() {
        let mut s = fs();
        let f = s.create(ROOT, name("a"), Kind::File, 0o644, t()).unwrap();
        s.fsync(ROOT).unwrap();
        s.write(f, 0, b"abcdef", t()).unwrap();
        s.fsync(f).unwrap();
        s.write(f, 1, b"XY", t()).unwrap();
        s.truncate(f, 4, t()).unwrap();
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"aXYd");
        s.crash();
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"abcdef");
        // Only the changed tail is copied on fsync, and the result is exact.
        s.write(f, 3, b"Z", t()).unwrap();
        s.fsync(f).unwrap();
        s.write(f, 0, b"!", t()).unwrap();
        s.crash();
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"abcZef");
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_fsync() {
        let mut s = fs();
        let tmp = s
            .create(ROOT, name("cp.tmp"), Kind::File, 0o644, t())
            .unwrap();
        s.write(tmp, 0, b"v1", t()).unwrap();
        s.fsync(tmp).unwrap();
        s.rename(ROOT, name("cp.tmp"), ROOT, name("cp"), false, t())
            .unwrap();
        s.fsync(ROOT).unwrap();
        // Second version, renamed over but the directory not fsynced.
        let tmp2 = s
            .create(ROOT, name("cp.tmp"), Kind::File, 0o644, t())
            .unwrap();
        s.write(tmp2, 0, b"v2", t()).unwrap();
        s.fsync(tmp2).unwrap();
        s.rename(ROOT, name("cp.tmp"), ROOT, name("cp"), false, t())
            .unwrap();
        assert_eq!(contents(&s, ROOT, "cp").unwrap(), b"v2");
        s.crash();
        assert_eq!(contents(&s, ROOT, "cp").unwrap(), b"v1");
        assert_eq!(contents(&s, ROOT, "cp.tmp"), None);
    }

    #[test]
    fn unlinked_durable_file_comes_back() {
        let mut s = fs();
        let f = s.create(ROOT, name("seg"), Kind::File, 0o644, t()).unwrap();
        s.write(f, 0, b"data", t()).unwrap();
        s.fsync(f).unwrap();
        s.fsync(ROOT).unwrap();
        s.unlink(ROOT, name("seg"), t()).unwrap();
        assert_eq!(contents(&s, ROOT, "seg"), None);
        s.crash();
        assert_eq!(contents(&s, ROOT, "seg").unwrap(), b"data");
        s.unlink(ROOT, name("seg"), t()).unwrap();
        s.fsync(ROOT).unwrap();
        assert_eq!(s.used(), 0, "freed once no durable entry names it");
    }

    #[test]
    fn new_directory_and_its_files_vanish_unless_the_parent_is_fsynced() {
        let mut s = fs();
        let d = s
            .create(ROOT, name("orders-0"), Kind::Dir, 0o755, t())
            .unwrap();
        let f = s.create(d, name("0.log"), Kind::File, 0o644, t()).unwrap();
        s.write(f, 0, b"x", t()).unwrap();
        s.fsync(f).unwrap();
        s.fsync(d).unwrap();
        s.crash();
        assert!(s.lookup(ROOT, name("orders-0")).is_err());
        let d = s
            .create(ROOT, name("orders-0"), Kind::Dir, 0o755, t())
            .unwrap();
        let f = s.create(d, name("0.log"), Kind::File, 0o644, t()).unwrap();
        s.write(f, 0, b"x", t()).unwrap();
        s.fsync(f).unwrap();
        s.fsync(d).unwrap();
        s.fsync(ROOT).unwrap();
        s.crash();
        assert_eq!(contents(&s, d, "0.log").unwrap(), b"x");
    }

    #[test]
    fn injected_errors_change_nothing() {
        let mut s = fs();
        let f = s.create(ROOT, name("a"), Kind::File, 0o644, t()).unwrap();
        s.fsync(ROOT).unwrap();
        s.write(f, 0, b"kept", t()).unwrap();
        s.set_faults(Faults {
            fsync_eio: true,
            write_eio: false,
        });
        assert_eq!(s.fsync(f), Err(FsError::Io));
        s.set_faults(Faults {
            fsync_eio: false,
            write_eio: true,
        });
        assert_eq!(s.write(f, 4, b"more", t()), Err(FsError::Io));
        assert_eq!(s.truncate(f, 0, t()), Err(FsError::Io));
        assert_eq!(contents(&s, ROOT, "a").unwrap(), b"kept");
        s.crash();
        assert_eq!(
            contents(&s, ROOT, "a").unwrap(),
            b"",
            "the failed fsync made nothing durable"
        );
        assert_eq!(s.stats().injected_errors, 3);
    }

    #[test]
    fn capacity_bounds_memory() {
        let mut s = State::new(10, t());
        let f = s.create(ROOT, name("a"), Kind::File, 0o644, t()).unwrap();
        s.write(f, 0, b"12345", t()).unwrap();
        s.fsync(f).unwrap();
        assert_eq!(s.used(), 10);
        assert_eq!(s.write(f, 5, b"6", t()), Err(FsError::NoSpace));
        assert_eq!(
            s.write(f, 0, b"abc", t()),
            Ok(3),
            "overwrites need no space"
        );
        assert_eq!(s.truncate(f, 100, t()), Err(FsError::NoSpace));
    }

    #[test]
    fn directory_rules() {
        let mut s = fs();
        let d = s.create(ROOT, name("d"), Kind::Dir, 0o755, t()).unwrap();
        s.create(d, name("f"), Kind::File, 0o644, t()).unwrap();
        assert_eq!(
            s.create(ROOT, name("d"), Kind::File, 0o644, t()),
            Err(FsError::Exists)
        );
        assert_eq!(s.rmdir(ROOT, name("d"), t()), Err(FsError::NotEmpty));
        assert_eq!(s.unlink(ROOT, name("d"), t()), Err(FsError::IsDir));
        assert_eq!(
            s.rename(ROOT, name("d"), d, name("inner"), false, t()),
            Err(FsError::Invalid)
        );
        let names: Vec<_> = s.readdir(d).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec![OsString::from("f")]);
        assert_eq!(s.attr(ROOT).unwrap().nlink, 3);
    }
}
