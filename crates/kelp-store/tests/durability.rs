//! Every acknowledged write survives the process being killed with SIGKILL.
//!
//! The test runs its own binary again as a child (`child_writer`, which does nothing unless
//! `KELP_STORE_CHILD_DB` is set): 8 concurrent tasks create objects as fast as they can and print
//! each name once its create has returned. The parent kills the child with SIGKILL in the middle
//! of the burst, reopens the database and checks that every printed name is there.
//!
//! A store on a full disk fails its writes, and works again once the disk has room, without a
//! restart (`writes_work_again_once_a_full_disk_has_room`, on a small tmpfs mounted for the test:
//! it needs mount privileges, and is skipped with the reason printed where they are missing).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use kelp_store::{Selector, Store, StoreConfig};
use kelp_testkit::disk::{SmallDisk, fill};
use serde_json::json;

const CHILD_ENV: &str = "KELP_STORE_CHILD_DB";
const RESOURCE: &str = "kubeless.io/functions";

#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let store = Store::open(&path, StoreConfig::default()).unwrap();
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("w{writer}-{i}");
                    let object = json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"i": i}});
                    let created = store.create(RESOURCE, object).await.unwrap();
                    let line = format!("{name} {}\n", created["metadata"]["resourceVersion"].as_str().unwrap());
                    // Written straight to the process's stdout (not the test harness's capture).
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelp.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    // Kill it mid-burst: after 400 acknowledged creates (the libtest header lines are skipped).
    while acknowledged.len() < 400 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some((name, rv)) = line.split_once(' ')
            && name.starts_with('w')
        {
            acknowledged.push((name.to_owned(), rv.parse::<u64>().unwrap()));
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    // What the child printed before dying was acknowledged too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some((name, rv)) = line.split_once(' ')
            && name.starts_with('w')
            && let Ok(rv) = rv.parse::<u64>()
        {
            acknowledged.push((name.to_owned(), rv));
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished: {status:?}");

    let store = Store::open(&path, StoreConfig::default()).unwrap();
    let stored = store.list(RESOURCE, Some("default"), &Selector::everything());
    let names: std::collections::HashSet<_> =
        stored.items.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<_> = acknowledged.iter().filter(|(n, _)| !names.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let max_rv = acknowledged.iter().map(|(_, rv)| *rv).max().unwrap();
    assert!(store.resource_version() >= max_rv, "the resourceVersion counter went back");
    println!("{} acknowledged creates before SIGKILL, {} objects after reopening", acknowledged.len(), names.len());
}

/// The database holds Secrets: its file is created owner-only whatever the umask, its missing
/// directory too, and an existing file open to others is made owner-only when opened.
#[test]
fn the_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/objects.redb");
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path, StoreConfig::default()).unwrap());
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn writes_work_again_once_a_full_disk_has_room() {
    let disk = match SmallDisk::mount(16, "kelp-store-full-") {
        Ok(disk) => disk,
        Err(reason) => {
            println!("skipped: a full disk needs a small tmpfs, and {reason}");
            return;
        }
    };
    let path = disk.path().join("kelp.redb");
    let filler = disk.path().join("filler");
    let payload = "x".repeat(256 << 10);
    let object = |name: &str| json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"data": payload}});
    let store = Store::open(&path, StoreConfig::default()).unwrap();
    store.create(RESOURCE, object("before")).await.unwrap();

    fill(&filler).unwrap();
    let mut failures = 0;
    for i in 0..64 {
        if store.create(RESOURCE, object(&format!("full-{i}"))).await.is_err() {
            failures += 1;
            if failures == 3 {
                break;
            }
        }
    }
    assert_eq!(failures, 3, "writes fail while the disk is full");

    std::fs::remove_file(&filler).unwrap();
    store.create(RESOURCE, object("after")).await.expect("a write succeeds once the disk has room again");
    store.create(RESOURCE, object("after-2")).await.unwrap();
    let names = |store: &Store| -> Vec<String> {
        let list = store.list(RESOURCE, Some("default"), &Selector::everything());
        list.items.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let served = names(&store);
    drop(store);
    let reopened = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(names(&reopened), served, "what the store served is what the disk holds");
    assert!(served.contains(&"before".to_owned()) && served.contains(&"after-2".to_owned()), "{served:?}");
}
