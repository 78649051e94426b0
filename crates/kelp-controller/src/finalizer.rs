//! Kubeless's finalizers on objects being deleted. Kelp adds none (the garbage collector deletes
//! children and triggers through their owner references), but objects Kubeless made, or an
//! older Kelp, carry them: their deletion waits until the controller has cleaned up and taken
//! its finalizer off.

use crate::Result;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;

/// For `object`, being deleted: when it carries `finalizer`, runs `cleanup`, then takes the
/// finalizer off (a merge patch conditional on the object's resourceVersion, so a finalizer
/// another controller added meanwhile is not lost: the next event retries). Nothing otherwise.
pub async fn release<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
    cleanup: impl Future<Output = Result<()>>,
) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if !object.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    cleanup.await?;
    let kept: Vec<&String> = object.finalizers().iter().filter(|f| *f != finalizer).collect();
    let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": object.resource_version()}});
    match api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        // Gone already: nothing to release.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
