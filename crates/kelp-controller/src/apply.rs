//! Server-side apply of one child, refusing to take over objects Kelp did not make, and skipping
//! the request when neither the desired object nor the child changed since the last apply; all
//! decided from the caches ([`Known`]), without reading the child first.

use crate::context::{Applied, Context, ObjectKey};
use crate::{Error, FIELD_MANAGER, Result};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::PoisonError;

#[cfg(doc)]
use crate::context::Known;

/// The annotation holding the digest of what the controller last applied to a child (SHA-256 of
/// the planned object, before this annotation): a controller that restarts, or a new leader,
/// knows from its cache that a child is up to date, and applies nothing.
pub const APPLIED_ANNOTATION: &str = "kelp.dev/applied";

/// A child kind the controller applies.
pub trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}
impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// What identifies a child's state for [`Applied::observed`]: its generation when it has one
/// (so status updates do not count), else its resourceVersion.
fn observed(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.generation.map_or_else(|| meta.resource_version.clone().unwrap_or_default(), |g| format!("g{g}"))
}

/// The SHA-256 (hex) of `object` as JSON.
fn digest_of<K: Serialize>(object: &K) -> String {
    // Plain data (a planned Kubernetes object): rendering it has no failure mode.
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    kelp_plan::sha256_hex(&bytes)
}

/// Applies `desired` (named and namespaced in its metadata), unless the child is known to be up
/// to date, and returns the object as stored (`None` when nothing was written).
///
/// `known` holds the metadata of every object of the kind. An existing object Kelp may not adopt
/// ([`kelp_plan::adoptable`]) is [`Error::Conflict`] and nothing is written. A child is up to
/// date when its [`APPLIED_ANNOTATION`] is the desired object's digest and, if this process
/// applied it, nobody changed it since (its generation, or resourceVersion, is the one the
/// apply left).
pub async fn apply<K: Child>(ctx: &Context, known: &Store<PartialObjectMeta<K>>, desired: &K) -> Result<Option<K>> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let key = (kind_name::<K>(), namespace.clone(), name.clone());
    let digest = digest_of(desired);
    let Some(current) = known.get(&ObjectRef::new(&name).within(&namespace)) else {
        // Absent from the cache: never applied, or applied so recently that the cache has not
        // seen it yet (a deletion seen would have cleared the memory, see `forget_child`).
        let applied = ctx.applied.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if applied.is_some_and(|last| last.desired == digest) {
            return Ok(None);
        }
        return write(ctx, key, digest, desired).await;
    };
    {
        if !kelp_plan::adoptable(&current.metadata, desired.meta()) {
            return Err(Error::Conflict { kind: kind_name::<K>(), namespace, name });
        }
        let annotated = current.metadata.annotations.as_ref().and_then(|a| a.get(APPLIED_ANNOTATION));
        let now = Applied { desired: digest.clone(), observed: observed(&current.metadata) };
        let mut applied = ctx.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let untouched = applied.get(&key).is_none_or(|last| *last == now);
        if annotated == Some(&digest) && untouched {
            applied.insert(key, now);
            return Ok(None);
        }
    }
    write(ctx, key, digest, desired).await
}

/// Applies `desired` with its digest in [`APPLIED_ANNOTATION`], and remembers it under `key`.
async fn write<K: Child>(ctx: &Context, key: ObjectKey, digest: String, desired: &K) -> Result<Option<K>> {
    let mut body = desired.clone();
    body.annotations_mut().insert(APPLIED_ANNOTATION.to_owned(), digest.clone());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.1);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = api.patch(&key.2, &params, &Patch::Apply(&body)).await?;
    ctx.applied
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Applied { desired: digest, observed: observed(stored.meta()) });
    Ok(Some(stored))
}

/// Forgets what was applied to the child `kind` `namespace/name` (deleted, as the cache saw),
/// or to every child of `kind` (`name` `None`: the cache listed them again, and may have missed
/// deletions), so that the next reconcile applies it again.
pub fn forget_child(ctx: &Context, kind: &'static str, namespace: &str, name: Option<&str>) {
    let mut applied = ctx.applied.lock().unwrap_or_else(PoisonError::into_inner);
    match name {
        Some(name) => {
            applied.remove(&(kind, namespace.to_owned(), name.to_owned()));
        }
        None => applied.retain(|(k, _, _), _| *k != kind),
    }
}

/// Deletes the child `namespace/name` if it exists and Kelp or Kubeless made it (label
/// `created-by: kubeless`).
pub async fn remove<K: Child>(
    ctx: &Context,
    known: &Store<PartialObjectMeta<K>>,
    namespace: &str,
    name: &str,
) -> Result<()> {
    let made_by_kelp = known.get(&ObjectRef::new(name).within(namespace)).is_some_and(|current| {
        current.labels().get(kelp_plan::CREATED_BY_LABEL).map(String::as_str) == Some(kelp_plan::CREATED_BY_KUBELESS)
    });
    if !made_by_kelp {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.applied.lock().unwrap_or_else(PoisonError::into_inner).remove(&(
        kind_name::<K>(),
        namespace.into(),
        name.into(),
    ));
    Ok(())
}

/// The kind's name as a static string.
pub fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()) {
        std::borrow::Cow::Borrowed(kind) => kind,
        std::borrow::Cow::Owned(_) => "object",
    }
}
