//! The filesystem through a real mount: ordinary file operations (std::fs, as the broker's
//! storage does them) against the durability rules, a crash, and injected EIO. Needs
//! /dev/fuse and root (the test command runs as root).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use osprey_lazyfs::{Faults, Mount};

fn mount() -> (tempfile::TempDir, Mount) {
    let dir = tempfile::tempdir().expect("temp dir");
    let m = Mount::new(dir.path(), 64 << 20, "lazyfs-test")
        .expect("mounting the filesystem (needs /dev/fuse and root)");
    (dir, m)
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn read(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn writes_are_kept_until_fsync_and_the_rest_is_dropped_by_a_crash() {
    let (_dir, m) = mount();
    let root = m.path().to_path_buf();
    let part = root.join("orders-0");
    fs::create_dir(&part).unwrap();
    fsync_dir(&root);
    let seg = part.join("00000000000000000000.log");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&seg)
        .unwrap();
    fsync_dir(&part);
    f.write_all(b"batch-1;").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"batch-2;").unwrap();
    // Before the crash a reader sees everything written, fsynced or not.
    assert_eq!(read(&seg), b"batch-1;batch-2;");
    // A file created and written but never named durably.
    fs::write(part.join("leader-epoch-checkpoint.tmp"), b"0\n1\n0 0\n").unwrap();
    drop(f);

    let report = m.control().crash();
    assert_eq!(read(&seg), b"batch-1;", "the unflushed tail is gone");
    assert!(!part.join("leader-epoch-checkpoint.tmp").exists());
    assert_eq!(report.bytes_dropped, 8 + 8);
    assert_eq!(report.entries_vanished, 1);
    let names: Vec<_> = fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["00000000000000000000.log"]);

    // Appending again after the crash works from the durable end.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"batch-3;").unwrap();
    f.sync_all().unwrap();
    m.control().crash();
    assert_eq!(read(&seg), b"batch-1;batch-3;");
    m.unmount().unwrap();
}

#[test]
fn a_rename_is_durable_once_its_directory_is_fsynced() {
    let (_dir, m) = mount();
    let root = m.path().to_path_buf();
    let write_atomically = |contents: &[u8], sync_dir: bool| {
        let tmp = root.join("quorum-state.tmp");
        let mut f = File::create(&tmp).unwrap();
        f.write_all(contents).unwrap();
        f.sync_all().unwrap();
        fs::rename(&tmp, root.join("quorum-state")).unwrap();
        if sync_dir {
            fsync_dir(&root);
        }
    };
    write_atomically(b"epoch 1", true);
    write_atomically(b"epoch 2", false);
    assert_eq!(read(&root.join("quorum-state")), b"epoch 2");
    m.control().crash();
    assert_eq!(read(&root.join("quorum-state")), b"epoch 1");
    // Truncation (set_len) is undone too unless fsynced.
    let f = OpenOptions::new()
        .write(true)
        .open(root.join("quorum-state"))
        .unwrap();
    f.set_len(2).unwrap();
    assert_eq!(read(&root.join("quorum-state")), b"ep");
    drop(f);
    m.control().crash();
    assert_eq!(read(&root.join("quorum-state")), b"epoch 1");
}

#[test]
fn fsync_and_write_errors_are_injectable() {
    let (_dir, m) = mount();
    let root = m.path().to_path_buf();
    let path = root.join("segment.log");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    fsync_dir(&root);
    f.write_all(b"ok;").unwrap();

    m.control().set_faults(Faults {
        fsync_eio: true,
        write_eio: false,
    });
    let err = f.sync_data().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = File::open(&root).unwrap().sync_all().unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EIO),
        "directory fsync: {err}"
    );

    m.control().set_faults(Faults {
        fsync_eio: false,
        write_eio: true,
    });
    let err = f.write_all(b"lost;").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(read(&path), b"ok;", "a failed write changes nothing");

    m.control().set_faults(Faults::default());
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b"again;").unwrap();
    f.sync_data().unwrap();
    drop(f);
    m.control().crash();
    assert_eq!(read(&path), b"ok;again;");
    assert_eq!(m.control().stats().injected_errors, 3);
}

#[test]
fn the_capacity_is_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mount::new(dir.path(), 4096, "lazyfs-small").expect("mount");
    let mut f = File::create(m.path().join("big")).unwrap();
    let err = f.write_all(&[7u8; 8192]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
}
