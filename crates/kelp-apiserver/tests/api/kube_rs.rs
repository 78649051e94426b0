//! kube-rs against the API server: typed CRUD, optimistic concurrency, patches, status,
//! server-side apply, deletion with finalizers and a `kube::runtime::watcher`.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kelp_api::{Function, FunctionStatus, HTTPTrigger};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::{Server, load};

fn api_status(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_with_conflicts_patches_and_status() {
    let server = Server::start(Some("t0ken")).await;
    let client = server.client().await;
    let functions: Api<Function> = Api::namespaced(client.clone(), "default");

    let mut hello: Function = load("function-minimal-text.yaml");
    hello.metadata.labels.get_or_insert_default().insert("foo".into(), "bar".into());
    let created = functions.create(&PostParams::default(), &hello).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert_eq!(created.spec.handler.as_deref(), Some("test.foo"));

    let duplicate = functions.create(&PostParams::default(), &hello).await.unwrap_err();
    let status = api_status(duplicate);
    assert_eq!((status.code, status.reason.as_str()), (409, "AlreadyExists"));

    let mut other: Function = load("function-minimal-text.yaml");
    other.metadata.name = Some("other".into());
    functions.create(&PostParams::default(), &other).await.unwrap();

    let got = functions.get("hello").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let missing = api_status(functions.get("nope").await.unwrap_err());
    assert_eq!((missing.code, missing.message.as_str()), (404, "functions.kubeless.io \"nope\" not found"));

    let selected = functions.list(&ListParams::default().labels("foo=bar")).await.unwrap();
    let names: Vec<_> = selected.items.iter().map(|f| f.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["hello"]);
    assert!(selected.metadata.resource_version.is_some());
    assert_eq!(functions.list(&ListParams::default().labels("foo!=bar")).await.unwrap().items.len(), 1);
    let everywhere: Api<Function> = Api::all(client.clone());
    assert_eq!(everywhere.list(&ListParams::default()).await.unwrap().items.len(), 2);

    // Replace: the current resourceVersion works (and bumps the generation), a stale one is a 409.
    let mut next = got.clone();
    next.spec.timeout = Some("30".into());
    let replaced = functions.replace("hello", &PostParams::default(), &next).await.unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_ne!(replaced.metadata.resource_version.as_deref(), Some(rv1.as_str()));
    let mut stale = got.clone();
    stale.spec.timeout = Some("40".into());
    let conflict = api_status(functions.replace("hello", &PostParams::default(), &stale).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains("the object has been modified"), "{}", conflict.message);

    // Merge patch and JSON patch.
    let patched = functions
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"patched": "yes"}}, "spec": {"runtime": "python3.9"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.runtime.as_deref(), Some("python3.9"));
    assert_eq!(patched.metadata.labels.as_ref().unwrap()["patched"], "yes");
    let json_patch: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/timeout", "value": "5"}])).unwrap();
    let patched = functions.patch("hello", &PatchParams::default(), &Patch::Json::<()>(json_patch)).await.unwrap();
    assert_eq!(patched.spec.timeout.as_deref(), Some("5"));

    // Invalid objects are refused with the field path.
    let invalid = functions
        .patch("hello", &PatchParams::default(), &Patch::Merge(json!({"spec": {"handler": "no-dot"}})))
        .await
        .unwrap_err();
    let invalid = api_status(invalid);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    let causes = invalid.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.handler");

    // The status subresource: only status changes, and main writes keep it.
    let generation = patched.metadata.generation;
    let with_status = functions
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 2}, "spec": {"runtime": "ignored1.0"}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.as_ref().unwrap().ready_replicas, Some(2));
    assert_eq!(with_status.spec.runtime.as_deref(), Some("python3.9"));
    assert_eq!(with_status.metadata.generation, generation);
    let main = functions
        .patch("hello", &PatchParams::default(), &Patch::Merge(json!({"status": {"readyReplicas": 9}})))
        .await
        .unwrap();
    assert_eq!(main.status.as_ref().unwrap().ready_replicas, Some(2));
    let status: FunctionStatus = functions.get_status("hello").await.unwrap().status.unwrap();
    assert_eq!(status.ready_replicas, Some(2));

    // Server-side apply creates, then merges.
    let applied: Function = serde_json::from_value(json!({
        "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
        "metadata": {"name": "applied", "labels": {"a": "1"}},
        "spec": {"handler": "m.f", "runtime": "nodejs14"},
    }))
    .unwrap();
    let ssa = PatchParams::apply("kelp-test").force();
    let first = functions.patch("applied", &ssa, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(first.metadata.generation, Some(1));
    let mut second = applied.clone();
    second.spec.timeout = Some("60".into());
    let second = functions.patch("applied", &ssa, &Patch::Apply(&second)).await.unwrap();
    assert_eq!((second.spec.timeout.as_deref(), second.metadata.generation), (Some("60"), Some(2)));

    // Delete: immediately without finalizers; only marked with them, gone once they are removed.
    let done = functions.delete("other", &DeleteParams::default()).await.unwrap();
    let done = done.right().expect("a completed deletion answers with a Status");
    assert_eq!(done.status, Some(kube::core::response::StatusSummary::Success));
    assert_eq!(done.details.unwrap().kind, "functions");
    assert_eq!(api_status(functions.get("other").await.unwrap_err()).code, 404);
    functions
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["kubeless.io/function"]}})),
        )
        .await
        .unwrap();
    let marked = functions.delete("hello", &DeleteParams::default()).await.unwrap();
    let marked = marked.left().expect("the object is returned while finalizers remain");
    assert!(marked.metadata.deletion_timestamp.is_some());
    functions
        .patch("hello", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert_eq!(api_status(functions.get("hello").await.unwrap_err()).code, 404);
    let precondition = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("wrong".into()), resource_version: None }),
        ..DeleteParams::default()
    };
    let failed = api_status(functions.delete("applied", &precondition).await.unwrap_err());
    assert_eq!(failed.code, 409);

    // Missing namespaces are refused as Kubernetes does.
    let elsewhere: Api<Function> = Api::namespaced(client.clone(), "nope");
    hello.metadata.namespace = None;
    let refused = api_status(elsewhere.create(&PostParams::default(), &hello).await.unwrap_err());
    assert_eq!((refused.code, refused.message.as_str()), (404, "namespaces \"nope\" not found"));

    // Other kinds.
    let triggers: Api<HTTPTrigger> = Api::namespaced(client.clone(), "default");
    let trigger: HTTPTrigger = load("httptrigger-all-keys.yaml");
    triggers.create(&PostParams::default(), &trigger).await.unwrap();
    assert_eq!(triggers.list(&ListParams::default()).await.unwrap().items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_secrets_and_configmaps() {
    let server = Server::start(None).await;
    let client = server.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<_> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["default", "kubeless"]);
    let team: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let team = namespaces.create(&PostParams::default(), &team).await.unwrap();
    assert_eq!(team.status.unwrap().phase.as_deref(), Some("Active"));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"token": "abc"}})).unwrap();
    let secret = secrets.create(&PostParams::default(), &secret).await.unwrap();
    assert_eq!(secret.data.unwrap()["token"].0, b"abc");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"k": "v"}})).unwrap();
    configmaps.create(&PostParams::default(), &cm).await.unwrap();
    let functions: Api<Function> = Api::namespaced(client.clone(), "team");
    functions.create(&PostParams::default(), &load::<Function>("function-minimal-text.yaml")).await.unwrap_err();
    let mut f: Function = load("function-minimal-text.yaml");
    f.metadata.namespace = None;
    functions.create(&PostParams::default(), &f).await.unwrap();

    // Deleting the namespace deletes what is in it.
    namespaces.delete("team", &DeleteParams::default()).await.unwrap();
    assert!(server.store.list("/secrets", Some("team"), &kelp_store::Selector::everything()).items.is_empty());
    assert!(
        server.store.list("kubeless.io/functions", Some("team"), &kelp_store::Selector::everything()).items.is_empty()
    );
    assert_eq!(api_status(configmaps.get("cfg").await.unwrap_err()).code, 404);
    let forbidden = api_status(namespaces.delete("default", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(forbidden.code, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_watcher_sees_changes() {
    let server = Server::start(Some("t")).await;
    let client = server.client().await;
    let functions: Api<Function> = Api::namespaced(client.clone(), "default");
    functions.create(&PostParams::default(), &load::<Function>("function-minimal-text.yaml")).await.unwrap();

    let stream = watcher(functions.clone(), watcher::Config::default().labels("function=hello"))
        .map_ok(|event| match event {
            watcher::Event::Apply(f) | watcher::Event::InitApply(f) => {
                Some((f.metadata.name.unwrap(), f.spec.timeout.unwrap_or_default()))
            }
            _ => None,
        })
        .try_filter_map(|x| async move { Ok(x) });
    let mut stream = Box::pin(stream);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first, ("hello".to_owned(), "180".to_owned()));

    functions.patch("hello", &PatchParams::default(), &Patch::Merge(json!({"spec": {"timeout": "7"}}))).await.unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(changed, ("hello".to_owned(), "7".to_owned()));
}

/// `limit` and `continue`: pages of a consistent list, selectors applied before the limit, for a
/// Kelp kind and a core kind; a token that is not ours is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages() {
    let server = Server::start(None).await;
    let client = server.client().await;
    let functions: Api<Function> = Api::namespaced(client.clone(), "default");
    for (i, name) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let mut f: Function = load("function-minimal-text.yaml");
        f.metadata.name = Some(name.into());
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        f.metadata.labels = Some([("parity".to_owned(), parity.to_owned())].into());
        functions.create(&PostParams::default(), &f).await.unwrap();
    }
    let names = |list: &kube::core::ObjectList<Function>| -> Vec<String> {
        list.items.iter().map(|f| f.metadata.name.clone().unwrap()).collect()
    };

    let first = functions.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Created after the first page: not part of this list.
    let mut late: Function = load("function-minimal-text.yaml");
    late.metadata.name = Some("bb".into());
    functions.create(&PostParams::default(), &late).await.unwrap();
    let second = functions.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(second.metadata.resource_version, first.metadata.resource_version, "one consistent list");
    let token = second.metadata.continue_.clone().expect("a continue token");
    let last = functions.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(names(&last), ["e"]);
    assert!(last.metadata.continue_.is_none() && last.metadata.remaining_item_count.is_none());

    // The selector applies before the limit.
    let even = functions.list(&ListParams::default().labels("parity=even").limit(2)).await.unwrap();
    assert_eq!((names(&even), even.metadata.remaining_item_count), (vec!["a".to_owned(), "c".to_owned()], Some(1)));
    let token = even.metadata.continue_.unwrap();
    let rest = functions.list(&ListParams::default().labels("parity=even").limit(2).continue_token(&token)).await;
    assert_eq!(names(&rest.unwrap()), ["e"]);

    // A core kind, across namespaces.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for name in ["s1", "s2", "s3"] {
        let secret: Secret = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
    let all: Api<Secret> = Api::all(client.clone());
    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(1);
    loop {
        let page = all.list(&params).await.unwrap();
        assert!(page.items.len() <= 1);
        seen.extend(page.items.iter().map(|s| s.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) => params = ListParams::default().limit(1).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["s1", "s2", "s3"]);

    let bad = api_status(functions.list(&ListParams::default().continue_token("not-a-token")).await.unwrap_err());
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    assert!(bad.message.starts_with("invalid continue token"), "{}", bad.message);
}
