//! Owner references as a cluster keeps them. There, `kelp-controller` makes each HTTPTrigger and
//! CronJobTrigger an owned object of the Function it names (an owner reference without
//! `controller`), and Kubernetes's garbage collector deletes an object once none of its owners
//! exists any more: deleting a Function deletes its HTTP and cron triggers. `kelp up` does both
//! here, in each round of the local controller.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kelp_store::{Preconditions, Selector, Store, StoreError};
use serde_json::{Value, json};

/// The triggers the controller makes owned objects of the Function they name.
const OWNED: [&str; 2] = ["kubeless.io/httptriggers", "kubeless.io/cronjobtriggers"];

/// The stored kinds whose objects may name a Function as owner, and so go with it: the
/// controller's, and any other one a user gave an owner reference to a Function.
const DEPENDENTS: [&str; 7] = [
    "kubeless.io/httptriggers",
    "kubeless.io/cronjobtriggers",
    "kubeless.io/kafkatriggers",
    "kubeless.io/natstriggers",
    "kubeless.io/kinesistriggers",
    "/configmaps",
    "/secrets",
];

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// Whether an owner reference names a Function (any version of `kubeless.io`).
fn names_a_function(reference: &Value) -> bool {
    text(reference, "/kind") == "Function" && text(reference, "/apiVersion").starts_with("kubeless.io/")
}

/// One pass over `functions` (every stored Function, those being deleted included) and the
/// objects of [`DEPENDENTS`]: an object whose every owner is a Function that no longer exists
/// is deleted; a live HTTP or cron trigger whose Function exists gets it as owner, in place of
/// any other Function (a trigger pointed at another function changes owner).
pub(crate) async fn sync(store: &Store, functions: &[Arc<Value>]) {
    let uids: BTreeSet<(&str, &str)> =
        functions.iter().map(|f| (text(f, "/metadata/namespace"), text(f, "/metadata/uid"))).collect();
    let by_name: BTreeMap<(&str, &str), &Value> = functions
        .iter()
        .filter(|f| f.pointer("/metadata/deletionTimestamp").is_none())
        .map(|f| ((text(f, "/metadata/namespace"), text(f, "/metadata/name")), f.as_ref()))
        .collect();
    for resource in DEPENDENTS {
        for object in store.list(resource, None, &Selector::everything()).items {
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let namespace = text(&object, "/metadata/namespace");
            let owners = object.pointer("/metadata/ownerReferences").and_then(Value::as_array);
            let owners = owners.map(Vec::as_slice).unwrap_or_default();
            let orphaned = !owners.is_empty()
                && owners.iter().all(|r| names_a_function(r) && !uids.contains(&(namespace, text(r, "/uid"))));
            if orphaned {
                collect(store, resource, &object).await;
                continue;
            }
            let function = by_name.get(&(namespace, text(&object, "/spec/function-name")));
            if let Some(function) = function.filter(|_| OWNED.contains(&resource)) {
                own(store, resource, &object, owners, function).await;
            }
        }
    }
}

/// Deletes `object`, unless it changed meanwhile (the next round looks again).
async fn collect(store: &Store, resource: &str, object: &Value) {
    let preconditions = Preconditions {
        uid: Some(text(object, "/metadata/uid").to_owned()),
        resource_version: Some(text(object, "/metadata/resourceVersion").to_owned()),
    };
    let (namespace, name) = (text(object, "/metadata/namespace"), text(object, "/metadata/name"));
    match store.delete(resource, namespace, name, preconditions).await {
        Ok(_) => tracing::info!(resource, namespace, name, "deleted with its function"),
        Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
        Err(e) => tracing::warn!(error = %e, resource, namespace, name, "deleting an object whose function is gone"),
    }
}

/// Makes `function` the one Function owner of `object`, when it is not already.
async fn own(store: &Store, resource: &str, object: &Value, owners: &[Value], function: &Value) {
    let uid = text(function, "/metadata/uid");
    if owners.iter().any(|r| names_a_function(r) && text(r, "/uid") == uid) {
        return;
    }
    let mut references: Vec<Value> = owners.iter().filter(|r| !names_a_function(r)).cloned().collect();
    references.push(json!({
        "apiVersion": text(function, "/apiVersion"),
        "kind": "Function",
        "name": text(function, "/metadata/name"),
        "uid": uid,
    }));
    let mut updated = object.clone();
    updated["metadata"]["ownerReferences"] = Value::Array(references);
    if let Err(e) = store.update(resource, updated).await
        && !matches!(e, StoreError::Conflict { .. } | StoreError::NotFound { .. })
    {
        tracing::warn!(error = %e, resource, "adding a trigger's owner reference");
    }
}
