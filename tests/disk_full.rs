//! A full disk during import (the path sync and propagation share: `Store::insert_blocks`):
//! a clear error, the store reopens with a consistent chain, and the import resumes once
//! space is freed. Uses a small tmpfs, which needs root (CI runs as root); elsewhere the
//! test says it skipped.

mod support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use devp2p::chain::{Store, presets};

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn remount(dir: &Path, size: &str) {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,size={size}")])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "remount {size}");
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
        let _ = std::fs::remove_dir_all(self.0);
    }
}

#[test]
fn import_on_a_full_disk_fails_cleanly_and_resumes() {
    let dir = support::tempdir("disk-full");
    if !mount_tmpfs(&dir, "600k") {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Unmount(&dir);
    let chain = support::chain_blocks(600);
    let head_hash = chain[599].header.hash_slow();

    let store = Store::open(&dir, presets::ethtest().unwrap()).expect("store fits");
    // Import in batches, as `devp2p import` and sync do, until the disk is full.
    let mut failed = None;
    for batch in chain.chunks(32) {
        if let Err(e) = store.insert_blocks(batch) {
            failed = Some(e);
            break;
        }
    }
    let err = failed.expect("600 blocks do not fit in 600 KiB");
    let msg = err.to_string();
    assert!(
        matches!(err, devp2p::chain::store::Error::Db(_)),
        "a database error, not a bad block: {msg}"
    );
    // Where the write failed decides whether redb still answers on this handle (an I/O
    // error inside a commit poisons it until reopened: `PreviousIo`).
    let before = store.head().ok().map(|h| h.number);
    eprintln!("full disk at head {before:?}: {msg}");
    drop(store);

    // Reopened as it was: every canonical block up to the head is whole.
    let store = Store::open(&dir, presets::ethtest().unwrap()).expect("reopens on a full disk");
    let head = store.head().unwrap();
    let stuck = head.number;
    assert!(stuck < 600);
    if let Some(before) = before {
        assert_eq!(stuck, before);
    }
    for n in 1..=head.number {
        let b = store.block_by_number(n).unwrap().expect("canonical block");
        assert_eq!(
            b.header.hash_slow(),
            chain[n as usize - 1].header.hash_slow()
        );
    }
    drop(store);

    // Space freed: the import goes on from where it stopped.
    remount(&dir, "64m");
    let store = Store::open(&dir, presets::ethtest().unwrap()).unwrap();
    let inserted = store.insert_blocks(&chain[stuck as usize..]).unwrap();
    assert_eq!(inserted.head_number, 600);
    assert_eq!(inserted.head_hash, head_hash);
}

#[test]
fn node_db_on_a_full_disk_fails_cleanly_and_resumes() {
    use discovery::db::{NodeDb, Update};
    use discovery::{Node, NodeId};
    let dir = support::tempdir("disk-full-nodes");
    if !mount_tmpfs(&dir, "256k") {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _guard = Unmount(&dir);
    let path = dir.join("nodes.redb");
    let node = |i: u32| {
        let mut id = [0u8; 64];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id[63] = 1;
        // LAN addresses: the DB's per-/24 cap does not apply to them.
        let [_, _, b, c] = i.to_be_bytes();
        Node {
            id: NodeId(id),
            ip: Ipv4Addr::new(10, 0, b, c.max(1)).into(),
            udp: 30303,
            tcp: 30303,
        }
    };
    let now = 1_700_000_000;
    let db = NodeDb::open(&path).expect("the empty DB fits");
    let mut written = 0u32;
    let err = loop {
        let batch: Vec<Update> = (written..written + 50)
            .map(|i| Update::Pong(node(i), now))
            .collect();
        match db.apply(&batch) {
            Ok(()) => written += 50,
            Err(e) => break e,
        }
        assert!(written < 4_000, "the disk never filled");
    };
    eprintln!("node DB full after {written} nodes: {err}");
    let stored = db.len().unwrap();
    assert!(stored > 0);
    drop(db);
    // Reopened as committed, then writable again once space is freed.
    let db = NodeDb::open(&path).expect("reopens on a full disk");
    assert_eq!(db.len().unwrap(), stored);
    drop(db);
    remount(&dir, "16m");
    let db = NodeDb::open(&path).unwrap();
    db.apply(&[Update::Pong(node(written + 1), now)]).unwrap();
    assert_eq!(db.len().unwrap(), stored + 1);
}
