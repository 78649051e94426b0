//! Metadata shared by every planned object: labels, annotations, ownerReferences, the function
//! hash, and the adoption rule.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kelp_api::Function;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::PlanError;
use crate::{CREATED_BY_KUBELESS, CREATED_BY_LABEL, FUNCTION_LABEL};

/// The annotation `kubectl apply` writes (the whole object as applied, code included); it is
/// not copied onto children.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A map of labels or annotations.
pub(crate) type Labels = BTreeMap<String, String>;

/// An object's name (empty when it has none).
pub(crate) fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// The controller ownerReference to a `kubeless.io/v1beta1` object of `kind`.
pub(crate) fn owner_reference(kind: &'static str, owner: &ObjectMeta) -> Result<OwnerReference, PlanError> {
    let uid = owner.uid.clone().filter(|uid| !uid.is_empty());
    let uid = uid.ok_or_else(|| PlanError::MissingUid { kind, name: name(owner).to_owned() })?;
    Ok(OwnerReference {
        api_version: format!("{}/{}", kelp_api::GROUP, kelp_api::VERSION),
        kind: kind.to_owned(),
        name: name(owner).to_owned(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The selector labels of a function's objects: `{created-by: kubeless, function: <name>}`.
pub(crate) fn selector(function: &str) -> Labels {
    Labels::from([
        (CREATED_BY_LABEL.to_owned(), CREATED_BY_KUBELESS.to_owned()),
        (FUNCTION_LABEL.to_owned(), function.to_owned()),
    ])
}

/// The labels of a function's objects: the Function's own, plus the [`selector`] labels (which
/// win, as Kubeless set them whatever the Function said).
pub(crate) fn function_labels(function: &Function) -> Labels {
    let mut labels = function.metadata.labels.clone().unwrap_or_default();
    labels.extend(selector(name(&function.metadata)));
    labels
}

/// The annotations an object passes on to its children (all but `kubectl apply`'s copy of it).
pub(crate) fn inherited_annotations(meta: &ObjectMeta) -> Labels {
    let mut annotations = meta.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    annotations
}

/// `Some(map)`, or `None` for an empty map (so empty maps are not written).
pub(crate) fn non_empty(map: Labels) -> Option<Labels> {
    (!map.is_empty()).then_some(map)
}

/// The SHA-256 (hex) of what shapes a function's pods: its labels, and its spec except
/// `service` and `horizontalPodAutoscaler`.
pub(crate) fn function_hash(function: &Function) -> String {
    let mut spec = function.spec.clone();
    spec.service = None;
    spec.horizontal_pod_autoscaler = None;
    let shape = json!({"labels": function.metadata.labels, "spec": spec});
    // A JSON value of plain data: rendering it has no failure mode.
    let bytes = serde_json::to_vec(&shape).expect("a Function spec serializes to JSON");
    sha256_hex(&bytes)
}

/// The SHA-256 of `bytes`, in lower-case hex: the digests the planned objects and the controller's
/// annotations carry.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` in lower-case hex (a digest or a signature).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an existing object may be taken over by the object planned as `desired`: it was made
/// by Kelp or Kubeless (label `created-by: kubeless`), or its controller is `desired`'s
/// controller (same owner uid). Otherwise the controller must report a conflict and leave it
/// alone, as Kubeless did (`Found a conflicting ... object`).
pub fn adoptable(existing: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let created_by_kubeless = existing
        .labels
        .as_ref()
        .and_then(|labels| labels.get(CREATED_BY_LABEL))
        .is_some_and(|value| value == CREATED_BY_KUBELESS);
    let controller_uid = |meta: &ObjectMeta| {
        meta.owner_references.iter().flatten().find(|r| r.controller == Some(true)).map(|r| r.uid.clone())
    };
    created_by_kubeless || controller_uid(existing).is_some_and(|uid| Some(uid) == controller_uid(desired))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)], owner_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: non_empty(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference { uid: uid.into(), controller: Some(true), ..OwnerReference::default() }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn adoption_needs_the_kubeless_label_or_the_same_controller() {
        let desired = meta(&[("created-by", "kubeless")], Some("u1"));
        assert!(adoptable(&meta(&[("created-by", "kubeless")], None), &desired));
        assert!(adoptable(&meta(&[], Some("u1")), &desired));
        assert!(!adoptable(&meta(&[], Some("u2")), &desired));
        assert!(!adoptable(&meta(&[("created-by", "helm")], None), &desired));
        assert!(!adoptable(&meta(&[], None), &desired));
    }

    #[test]
    fn owner_references_need_a_uid() {
        let owner = ObjectMeta { name: Some("f".into()), ..ObjectMeta::default() };
        let err = owner_reference("Function", &owner).unwrap_err();
        assert_eq!(err, PlanError::MissingUid { kind: "Function", name: "f".into() });
        let owner = ObjectMeta { uid: Some("u".into()), ..owner };
        let reference = owner_reference("Function", &owner).unwrap();
        assert_eq!(reference.api_version, "kubeless.io/v1beta1");
        assert_eq!((reference.controller, reference.block_owner_deletion), (Some(true), Some(true)));
    }
}
