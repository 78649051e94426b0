//! The Kubernetes semantics of the store: system metadata, generation, optimistic concurrency,
//! status subresource, finalizers, selectors, watches and their resumption.

use std::time::Duration;

use kelp_store::{
    DeleteOutcome, EventType, ListCursor, Page, Preconditions, Selector, Store, StoreConfig, StoreError, WatchEvent,
    resource_version_of,
};
use serde_json::{Value, json};

const FN: &str = "kubeless.io/functions";

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("kelp.redb"), StoreConfig::default().status_subresource(FN)).unwrap()
}

fn function(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"handler": "h.f", "runtime": "python3.8"},
    })
}

fn rv(o: &Value) -> u64 {
    resource_version_of(o).unwrap()
}

async fn next(watch: &mut kelp_store::Watch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("an event in time").unwrap().unwrap()
}

#[tokio::test]
async fn create_sets_system_metadata_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut f = function("a", json!({}));
    f["status"] = json!({"readyReplicas": 3});
    f["metadata"]["uid"] = json!("client-made");
    let created = store.create(FN, f.clone()).await.unwrap();
    let meta = &created["metadata"];
    assert_eq!(meta["generation"], 1);
    assert_ne!(meta["uid"], "client-made");
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(meta["resourceVersion"].is_string());
    assert!(created.get("status").is_none(), "status is dropped on create with a status subresource");
    assert!(matches!(store.create(FN, f).await, Err(StoreError::AlreadyExists { .. })));

    let second = store.create(FN, function("b", json!({}))).await.unwrap();
    assert!(rv(&second) > rv(&created), "one global, increasing resourceVersion");
    assert_eq!(store.resource_version(), rv(&second));

    let generated = store
        .create(FN, json!({"metadata": {"generateName": "gen-", "namespace": "default"}, "spec": {}}))
        .await
        .unwrap();
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    assert!(matches!(store.create(FN, json!({"metadata": {}})).await, Err(StoreError::Invalid(_))));
    assert!(matches!(store.get(FN, "default", "zz"), Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn generation_moves_only_with_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(FN, function("a", json!({}))).await.unwrap();

    let mut labelled = (*created).clone();
    labelled["metadata"]["labels"] = json!({"x": "y"});
    let labelled = store.update(FN, labelled).await.unwrap();
    assert_eq!(labelled["metadata"]["generation"], 1, "metadata changes keep the generation");
    assert!(rv(&labelled) > rv(&created));

    let mut changed = (*labelled).clone();
    changed["spec"]["runtime"] = json!("python3.9");
    let changed = store.update(FN, changed).await.unwrap();
    assert_eq!(changed["metadata"]["generation"], 2);
    assert_eq!(changed["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(changed["metadata"]["creationTimestamp"], created["metadata"]["creationTimestamp"]);

    let mut with_status = (*changed).clone();
    with_status["status"] = json!({"readyReplicas": 1});
    let with_status = store.update_status(FN, with_status).await.unwrap();
    assert_eq!(with_status["status"]["readyReplicas"], 1);
    assert_eq!(with_status["metadata"]["generation"], 2, "status changes keep the generation");

    let same = store.update(FN, (*with_status).clone()).await.unwrap();
    assert_eq!(rv(&same), rv(&with_status), "a no-op update writes nothing");
}

#[tokio::test]
async fn status_subresource_separates_status_from_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(FN, function("a", json!({}))).await.unwrap();

    let mut status_write = (*created).clone();
    status_write["status"] = json!({"readyReplicas": 2});
    status_write["spec"]["runtime"] = json!("ignored9.9");
    status_write["metadata"]["labels"] = json!({"ignored": "yes"});
    let after = store.update_status(FN, status_write).await.unwrap();
    assert_eq!(after["status"]["readyReplicas"], 2);
    assert_eq!(after["spec"]["runtime"], "python3.8", "a status update changes nothing but status");
    assert_eq!(after["metadata"]["labels"], json!({}));

    let mut main_write = (*after).clone();
    main_write["status"] = json!({"readyReplicas": 99});
    main_write["spec"]["runtime"] = json!("nodejs14");
    let after = store.update(FN, main_write).await.unwrap();
    assert_eq!(after["status"]["readyReplicas"], 2, "a main update keeps the stored status");
    assert_eq!(after["spec"]["runtime"], "nodejs14");

    // Without a status subresource, status is ordinary data.
    store
        .create("/configmaps", json!({"metadata": {"name": "c", "namespace": "default"}, "status": {"x": 1}}))
        .await
        .unwrap();
    let mut cm = (*store.get("/configmaps", "default", "c").unwrap()).clone();
    assert_eq!(cm["status"]["x"], 1);
    cm["status"]["x"] = json!(2);
    assert_eq!(store.update("/configmaps", cm).await.unwrap()["status"]["x"], 2);
}

#[tokio::test]
async fn stale_resource_versions_conflict_and_no_write_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(FN, function("a", json!({}))).await.unwrap();
    let mut first = (*created).clone();
    first["spec"]["timeout"] = json!("10");
    store.update(FN, first).await.unwrap();
    let mut stale = (*created).clone();
    stale["spec"]["timeout"] = json!("20");
    match store.update(FN, stale.clone()).await {
        Err(StoreError::Conflict { message, precondition: false, .. }) => {
            assert!(message.contains("has been modified"))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    match store.update_status(FN, stale).await {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Without a resourceVersion the write is unconditional.
    let mut blind = (*created).clone();
    blind["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    blind["spec"]["timeout"] = json!("30");
    assert_eq!(store.update(FN, blind).await.unwrap()["spec"]["timeout"], "30");

    // Concurrent read-modify-write loops with retries on conflict: every increment lands.
    store
        .create("/configmaps", json!({"metadata": {"name": "n", "namespace": "default"}, "data": {"n": "0"}}))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                loop {
                    let mut cm = (*store.get("/configmaps", "default", "n").unwrap()).clone();
                    let n: u64 = cm["data"]["n"].as_str().unwrap().parse().unwrap();
                    cm["data"]["n"] = json!((n + 1).to_string());
                    match store.update("/configmaps", cm).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.get("/configmaps", "default", "n").unwrap()["data"]["n"], "200");
    assert!(matches!(store.update(FN, function("missing", json!({}))).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn finalizers_delay_deletion_until_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut f = function("a", json!({}));
    f["metadata"]["finalizers"] = json!(["kubeless.io/function"]);
    let created = store.create(FN, f).await.unwrap();
    let pending = match store.delete(FN, "default", "a", Preconditions::default()).await.unwrap() {
        DeleteOutcome::Pending(o) => o,
        other => panic!("expected a pending deletion, got {other:?}"),
    };
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pending["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(rv(&pending) > rv(&created));
    assert!(store.get(FN, "default", "a").is_ok(), "still there while finalizers remain");
    // Deleting again changes nothing.
    let again = store.delete(FN, "default", "a", Preconditions::default()).await.unwrap();
    assert_eq!(rv(again.object()), rv(&pending));
    // An update cannot clear deletionTimestamp.
    let mut sneaky = (*pending).clone();
    sneaky["metadata"].as_object_mut().unwrap().remove("deletionTimestamp");
    sneaky["metadata"]["labels"] = json!({"l": "1"});
    let kept = store.update(FN, sneaky).await.unwrap();
    assert_eq!(kept["metadata"]["deletionTimestamp"], pending["metadata"]["deletionTimestamp"]);

    let mut watch = store.watch(FN, Some("default"), Selector::everything(), Some(rv(&kept))).unwrap();
    let mut released = (*kept).clone();
    released["metadata"]["finalizers"] = json!([]);
    store.update(FN, released).await.unwrap();
    assert!(matches!(store.get(FN, "default", "a"), Err(StoreError::NotFound { .. })));
    assert_eq!(next(&mut watch).await.event, EventType::Deleted);
}

#[tokio::test]
async fn delete_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let created = store.create(FN, function("a", json!({}))).await.unwrap();
    let wrong_uid = Preconditions { uid: Some("nope".into()), resource_version: None };
    assert!(matches!(
        store.delete(FN, "default", "a", wrong_uid).await,
        Err(StoreError::Conflict { precondition: true, .. })
    ));
    let wrong_rv = Preconditions { uid: None, resource_version: Some("999".into()) };
    assert!(matches!(store.delete(FN, "default", "a", wrong_rv).await, Err(StoreError::Conflict { .. })));
    let right = Preconditions {
        uid: created["metadata"]["uid"].as_str().map(str::to_owned),
        resource_version: created["metadata"]["resourceVersion"].as_str().map(str::to_owned),
    };
    let deleted = store.delete(FN, "default", "a", right).await.unwrap();
    assert!(matches!(deleted, DeleteOutcome::Deleted(_)));
    assert!(rv(deleted.object()) > rv(&created), "the deletion has its own resourceVersion");
    assert!(matches!(
        store.delete(FN, "default", "a", Preconditions::default()).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn lists_filter_by_namespace_and_selectors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for (ns, name, labels) in [
        ("default", "a", json!({"app": "x", "tier": "web"})),
        ("default", "b", json!({"app": "y"})),
        ("other", "c", json!({"app": "x"})),
        ("default-2", "d", json!({"app": "x"})),
    ] {
        let mut f = function(name, labels);
        f["metadata"]["namespace"] = json!(ns);
        store.create(FN, f).await.unwrap();
    }
    let names = |list: kelp_store::ObjectList| -> Vec<String> {
        list.items.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let all = Selector::everything();
    assert_eq!(names(store.list(FN, Some("default"), &all)), ["a", "b"]);
    assert_eq!(names(store.list(FN, None, &all)), ["a", "b", "d", "c"]);
    let sel = |l: &str, f: &str| Selector::parse(Some(l), Some(f)).unwrap();
    assert_eq!(names(store.list(FN, None, &sel("app=x", ""))), ["a", "d", "c"]);
    assert_eq!(names(store.list(FN, None, &sel("app in (y),!tier", ""))), ["b"]);
    assert_eq!(names(store.list(FN, None, &sel("app notin (x)", ""))), ["b"]);
    assert_eq!(names(store.list(FN, None, &sel("tier", ""))), ["a"]);
    assert_eq!(names(store.list(FN, None, &sel("", "metadata.namespace=other"))), ["c"]);
    assert_eq!(names(store.list(FN, None, &sel("app!=y", "metadata.name!=a"))), ["d", "c"]);
    let list = store.list(FN, None, &all);
    assert_eq!(list.resource_version, store.resource_version());
    assert!(store.list("kubeless.io/none", None, &all).items.is_empty());
    assert!(store.contains_namespace(FN, "other") && !store.contains_namespace(FN, "nope"));
}

#[tokio::test]
async fn pages_read_the_state_of_the_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelp.redb");
    let store = Store::open(&path, StoreConfig::default().history_size(8)).unwrap();
    for (ns, name, app) in [("a", "1", "x"), ("a", "2", "y"), ("a", "3", "x"), ("b", "4", "x"), ("b", "5", "x")] {
        let mut f = function(name, json!({"app": app}));
        f["metadata"]["namespace"] = json!(ns);
        store.create(FN, f).await.unwrap();
    }
    let names = |list: &kelp_store::ObjectList| -> Vec<String> {
        list.items.iter().map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()).collect()
    };
    let x = Selector::parse(Some("app=x"), None).unwrap();
    let page = |cursor: Option<ListCursor>| Page { limit: Some(2), cursor };

    // The selector applies before the limit; the cursor carries the state of the first page.
    let first = store.list_page(FN, None, &x, &page(None)).unwrap();
    assert_eq!((names(&first), first.remaining), (vec!["1".to_owned(), "3".to_owned()], 2));
    let cursor = first.next.clone().unwrap();
    assert_eq!(cursor, ListCursor { resource_version: Some(first.resource_version), after: ("a".into(), "3".into()) });

    // Changes after the first page do not show in the next ones: a deleted object is still
    // listed, a new one is not, a modified one is listed as it was.
    let mut changed = (*store.get(FN, "b", "4").unwrap()).clone();
    changed["spec"]["handler"] = json!("changed.f");
    store.update(FN, changed).await.unwrap();
    store.delete(FN, "b", "5", Preconditions::default()).await.unwrap();
    let mut late = function("6", json!({"app": "x"}));
    late["metadata"]["namespace"] = json!("b");
    store.create(FN, late).await.unwrap();
    let second = store.list_page(FN, None, &x, &page(Some(cursor.clone()))).unwrap();
    assert_eq!((names(&second), second.remaining, second.next), (vec!["4".to_owned(), "5".to_owned()], 0, None));
    assert_eq!(second.items[0]["spec"]["handler"], "h.f");
    assert_eq!(second.resource_version, first.resource_version);
    // The latest state instead (what Kubernetes offers after a 410): the changes show.
    let latest = ListCursor { resource_version: None, ..cursor.clone() };
    let now = store.list_page(FN, None, &x, &page(Some(latest))).unwrap();
    assert_eq!(names(&now), ["4", "6"]);
    assert_eq!(now.items[0]["spec"]["handler"], "changed.f");

    // One namespace; a limit larger than the list.
    let in_a = store.list_page(FN, Some("a"), &Selector::everything(), &Page { limit: Some(5), cursor: None }).unwrap();
    assert_eq!((names(&in_a), in_a.next), (vec!["1".to_owned(), "2".to_owned(), "3".to_owned()], None));

    // Once the history no longer reaches back to the first page, its cursor is gone.
    for name in ["7", "8", "9", "10", "11", "12", "13", "14"] {
        store.create(FN, function(name, json!({}))).await.unwrap();
    }
    let gone = store.list_page(FN, None, &x, &page(Some(cursor))).unwrap_err();
    assert!(matches!(gone, StoreError::Gone { .. }), "{gone:?}");
    let future = ListCursor { resource_version: Some(store.resource_version() + 1), after: ("a".into(), "1".into()) };
    assert!(matches!(store.list_page(FN, None, &x, &page(Some(future))), Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn watches_start_from_state_or_resume_from_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store.create(FN, function("a", json!({"app": "x"}))).await.unwrap();
    store.create(FN, function("b", json!({"app": "y"}))).await.unwrap();

    // From now: the current objects as ADDED, then live events.
    let mut from_now = store.watch(FN, Some("default"), Selector::parse(Some("app=x"), None).unwrap(), None).unwrap();
    let first = next(&mut from_now).await;
    assert_eq!((first.event, first.object["metadata"]["name"].as_str()), (EventType::Added, Some("a")));

    // Resume from a's resourceVersion: b's creation, then what follows.
    let mut resumed = store.watch(FN, None, Selector::everything(), Some(rv(&a))).unwrap();
    let e = next(&mut resumed).await;
    assert_eq!((e.event, e.object["metadata"]["name"].as_str()), (EventType::Added, Some("b")));

    let mut relabelled = (*store.get(FN, "default", "b").unwrap()).clone();
    relabelled["metadata"]["labels"] = json!({"app": "x"});
    store.update(FN, relabelled.clone()).await.unwrap();
    let e = next(&mut from_now).await;
    assert_eq!((e.event, e.object["metadata"]["name"].as_str()), (EventType::Added, Some("b")), "b starts matching");
    let e = next(&mut resumed).await;
    assert_eq!(e.event, EventType::Modified);

    let mut unlabelled = (*store.get(FN, "default", "a").unwrap()).clone();
    unlabelled["metadata"]["labels"] = json!({});
    store.update(FN, unlabelled).await.unwrap();
    let e = next(&mut from_now).await;
    assert_eq!((e.event, e.object["metadata"]["name"].as_str()), (EventType::Deleted, Some("a")), "a stops matching");

    store.delete(FN, "default", "b", Preconditions::default()).await.unwrap();
    let e = next(&mut from_now).await;
    assert_eq!((e.event, e.object["metadata"]["name"].as_str()), (EventType::Deleted, Some("b")));
    assert_eq!(rv(&e.object), store.resource_version());
    assert_eq!(from_now.progress(), Some(store.resource_version()));

    // Other resources and namespaces are not seen.
    store.create("/secrets", json!({"metadata": {"name": "s", "namespace": "default"}})).await.unwrap();
    let mut other_ns = function("c", json!({"app": "x"}));
    other_ns["metadata"]["namespace"] = json!("other");
    store.create(FN, other_ns).await.unwrap();
    store.create(FN, function("d", json!({"app": "x"}))).await.unwrap();
    let e = next(&mut from_now).await;
    assert_eq!(e.object["metadata"]["name"], "d");
}

#[tokio::test]
async fn resuming_outside_the_history_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelp.redb");
    let store = Store::open(&path, StoreConfig::default().history_size(3)).unwrap();
    let first = store.create(FN, function("a", json!({}))).await.unwrap();
    for name in ["b", "c", "d", "e"] {
        store.create(FN, function(name, json!({}))).await.unwrap();
    }
    assert!(matches!(store.watch(FN, None, Selector::everything(), Some(rv(&first))), Err(StoreError::Gone { .. })));
    let oldest = store.oldest_resource_version();
    let mut ok = store.watch(FN, None, Selector::everything(), Some(oldest)).unwrap();
    assert_eq!(next(&mut ok).await.event, EventType::Added);
    // A watch that falls behind the window ends with Gone.
    let mut slow = store.watch(FN, None, Selector::everything(), Some(store.resource_version())).unwrap();
    for name in ["f", "g", "h", "i", "j"] {
        store.create(FN, function(name, json!({}))).await.unwrap();
    }
    assert!(matches!(slow.next().await, Some(Err(StoreError::Gone { .. }))));
    assert!(slow.next().await.is_none());

    // After a restart nothing before the current resourceVersion can be resumed.
    let head = store.resource_version();
    drop((store, ok, slow));
    let store = Store::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(store.resource_version(), head, "the counter is persisted");
    assert!(matches!(store.watch(FN, None, Selector::everything(), Some(head - 1)), Err(StoreError::Gone { .. })));
    let mut from_head = store.watch(FN, None, Selector::everything(), Some(head)).unwrap();
    let created = store.create(FN, function("k", json!({}))).await.unwrap();
    assert!(rv(&created) > head);
    assert_eq!(next(&mut from_head).await.object["metadata"]["name"], "k");
    assert_eq!(store.list(FN, None, &Selector::everything()).items.len(), 11);
}

#[tokio::test]
async fn a_closing_store_ends_its_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut watch = store.watch(FN, None, Selector::everything(), None).unwrap();
    store.create(FN, function("a", json!({}))).await.unwrap();
    drop(store);
    assert_eq!(next(&mut watch).await.event, EventType::Added);
    assert!(watch.next().await.is_none());
}
