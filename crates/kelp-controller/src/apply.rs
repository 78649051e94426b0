//! Server-side apply of one child, refusing to take over objects Kelp did not make, and skipping
//! the request when neither the desired object nor the child changed since the last apply.

use crate::context::{Applied, Context};
use crate::{Error, FIELD_MANAGER, Result};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::PoisonError;

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
fn observed<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    meta.generation.map_or_else(|| meta.resource_version.clone().unwrap_or_default(), |g| format!("g{g}"))
}

fn hash_of<K: Serialize>(object: &K) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(object).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// Applies `desired` (named and namespaced in its metadata) and returns the object as stored.
///
/// `store` caches the children the controller made (label `created-by: kubeless`). An object of
/// that name missing from it is looked up: if one exists that Kelp may not adopt
/// ([`kelp_plan::adoptable`]), the result is [`Error::Conflict`] and nothing is written.
pub async fn apply<K: Child>(ctx: &Context, store: &Store<K>, desired: &K) -> Result<Option<K>> {
    let namespace = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let key = (kind_name::<K>(), namespace.clone(), name.clone());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let cached = store.get(&ObjectRef::new(&name).within(&namespace));
    let desired_hash = hash_of(desired);
    if let Some(current) = &cached {
        let applied = ctx.applied.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if applied == Some(Applied { desired: desired_hash, observed: observed(current.as_ref()) }) {
            return Ok(None);
        }
    } else if let Some(existing) = api.get_opt(&name).await?
        && !kelp_plan::adoptable(existing.meta(), desired.meta())
    {
        return Err(Error::Conflict { kind: kind_name::<K>(), namespace, name });
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let stored = api.patch(&name, &params, &Patch::Apply(desired)).await?;
    ctx.applied
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Applied { desired: desired_hash, observed: observed(&stored) });
    Ok(Some(stored))
}

/// Deletes the child `namespace/name` if the controller made it (it is in `store`).
pub async fn remove<K: Child>(ctx: &Context, store: &Store<K>, namespace: &str, name: &str) -> Result<()> {
    if store.get(&ObjectRef::new(name).within(namespace)).is_none() {
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
