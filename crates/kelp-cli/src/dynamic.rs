//! Objects of any kind, as JSON: the resource of a kind comes from API discovery (asked once per
//! kind), and objects are applied server-side or deleted. What `kelp install` and
//! `kelp uninstall` are made of.

use std::collections::HashMap;

use anyhow::anyhow;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, TypeMeta};
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;

use crate::cmd::describe;
use crate::target::Target;

/// What applying an object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and the apply changed nothing.
    Unchanged,
}

impl Outcome {
    /// `created`, `configured`, `unchanged`, as kubectl says.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One object, located: its API (namespaced or not) and names for messages.
pub(crate) struct Located {
    api: Api<DynamicObject>,
    /// `deployment.apps/kelp-controller`, as kubectl names objects.
    pub(crate) display: String,
    name: String,
}

/// The resources of the kinds met so far, from discovery.
pub(crate) struct Resources<'a> {
    target: &'a Target,
    known: HashMap<(String, String), Option<(ApiResource, Scope)>>,
}

impl<'a> Resources<'a> {
    /// Nothing discovered yet.
    pub(crate) fn new(target: &'a Target) -> Self {
        Resources { target, known: HashMap::new() }
    }

    /// Locates `object`: a namespaced one in `namespace` when it names none. `Ok(None)` when
    /// the API server does not serve its kind.
    pub(crate) async fn locate(&mut self, object: &Value, namespace: &str) -> anyhow::Result<Option<Located>> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (api_version, kind, name) = (text("/apiVersion"), text("/kind"), text("/metadata/name"));
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(anyhow!("an object without apiVersion, kind or metadata.name: {object}"));
        }
        let key = (api_version.clone(), kind.clone());
        if !self.known.contains_key(&key) {
            let found = self.discover(&api_version, &kind).await?;
            self.known.insert(key.clone(), found);
        }
        let Some((resource, scope)) = &self.known[&key] else {
            return Ok(None);
        };
        let client = self.target.client.clone();
        let api = match scope {
            Scope::Namespaced => {
                let own = text("/metadata/namespace");
                Api::namespaced_with(client, if own.is_empty() { namespace } else { &own }, resource)
            }
            Scope::Cluster => Api::all_with(client, resource),
        };
        let lower = resource.kind.to_lowercase();
        let noun = if resource.group.is_empty() { lower } else { format!("{lower}.{}", resource.group) };
        Ok(Some(Located { api, display: format!("{noun}/{name}"), name }))
    }

    async fn discover(&self, api_version: &str, kind: &str) -> anyhow::Result<Option<(ApiResource, Scope)>> {
        let meta = TypeMeta { api_version: api_version.to_owned(), kind: kind.to_owned() };
        let gvk = GroupVersionKind::try_from(&meta).map_err(|e| anyhow!("{kind} of {api_version}: {e}"))?;
        match kube::discovery::pinned_kind(&self.target.client, &gvk).await {
            Ok((resource, capabilities)) => Ok(Some((resource, capabilities.scope))),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(describe(e, self.target)),
        }
    }

    /// Applies `object` server-side as `manager` (taking over fields other managers own), and
    /// says whether that created, changed or left it (the status, which controllers update
    /// meanwhile, and the field ownership do not count).
    pub(crate) async fn apply(&self, located: &Located, object: &Value, manager: &str) -> anyhow::Result<Outcome> {
        let before = located.api.get_opt(&located.name).await.map_err(|e| describe(e, self.target))?;
        let params = PatchParams::apply(manager).force();
        let after = located
            .api
            .patch(&located.name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| anyhow!("{}: {}", located.display, describe(e, self.target)))?;
        Ok(match before {
            None => Outcome::Created,
            Some(before) if content(&before) == content(&after) => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        })
    }

    /// Deletes the object (its dependents are garbage-collected in the background); `Ok(false)`
    /// when it did not exist.
    pub(crate) async fn delete(&self, located: &Located) -> anyhow::Result<bool> {
        match located.api.delete(&located.name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(anyhow!("{}: {}", located.display, describe(e, self.target))),
        }
    }
}

/// An object without what changes on its own: `resourceVersion`, `managedFields`, `status`.
fn content(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    value
}
