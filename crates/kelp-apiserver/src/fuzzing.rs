//! The request parsers of the API server, public for the fuzz targets in `fuzz/` (feature
//! `fuzzing`, which nothing else enables). Each function runs exactly what the server runs on
//! that part of a request; none of them is an API for other crates.

use bytes::Bytes;
use kelp_store::{ListCursor, Page};
use serde_json::Value;

use crate::patch::{self, PatchType};
use crate::server::{self, FieldValidation};
use crate::{ApiError, Kind};

/// A request body with this `Content-Type` (JSON, YAML or the Kubernetes protobuf encoding),
/// parsed as a create or update reads it.
pub fn request_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    server::parse_body(content_type, &Bytes::copy_from_slice(body))
}

/// A PATCH with this `Content-Type` applied to `target`: the body parsed (YAML for an apply
/// patch, JSON otherwise), then applied as a merge, JSON or strategic merge patch or an apply.
pub fn patch(content_type: &str, target: &mut Value, body: &[u8]) -> Result<(), String> {
    let kind = PatchType::from_content_type(content_type).ok_or("unknown patch type")?;
    let media = if kind == PatchType::Apply { "application/yaml" } else { "application/json" };
    let body = server::parse_body(media, &Bytes::copy_from_slice(body)).map_err(|e| e.status["message"].to_string())?;
    patch::apply(kind, target, &body)
}

/// An object of `kind` checked as a create in `namespace` checks it (namespace and name, the
/// structural schema with unknown fields pruned, defaults, the kind's validation): the object
/// as it would be stored, or the error the client would get.
pub fn admit(kind: &Kind, namespace: &str, object: Value) -> Result<Value, ApiError> {
    server::prepare(kind, namespace, None, object, (FieldValidation::Warn, false), &mut Vec::new())
}

/// The page a list request asks for with these `limit`, `continue` and `resourceVersion`
/// parameters.
pub fn page(limit: Option<&str>, token: Option<&str>, resource_version: Option<&str>) -> Result<Page, ApiError> {
    crate::pages::requested(limit, token, resource_version)
}

/// The `continue` token a list response carries for `cursor`.
pub fn continue_token(cursor: &ListCursor) -> String {
    crate::pages::encode(cursor)
}

/// A body in the Kubernetes protobuf encoding, decoded into its JSON form.
pub fn protobuf(body: &[u8]) -> Result<Value, String> {
    crate::protobuf::decode(body)
}
