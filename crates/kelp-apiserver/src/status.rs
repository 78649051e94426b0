//! Kubernetes `Status` errors, shaped as a kube-apiserver sends them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use kelp_store::StoreError;
use serde_json::{Map, Value, json};

use crate::kinds::Kind;
use crate::workloads::WorkloadError;

/// An error answered as a Kubernetes `Status` object with the matching HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status (and `Status.code`).
    pub code: StatusCode,
    /// The `Status` object.
    pub status: Value,
}

/// `details` of a Status: `{name, group, kind}`, each only when non-empty.
fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            d.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(d)
}

impl ApiError {
    /// A failure Status with `reason`, `message` and optional `details`.
    pub fn new(code: StatusCode, reason: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if let Some(details) = details.filter(|d| d.as_object().is_some_and(|m| !m.is_empty())) {
            status["details"] = details;
        }
        Self { code, status }
    }

    /// 404 `functions.kubeless.io "x" not found`.
    pub fn not_found(kind: &Kind, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", kind.group_resource()),
            Some(details(name, &kind.group, &kind.plural)),
        )
    }

    /// 404 `namespaces "x" not found`.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
            Some(details(namespace, "", "namespaces")),
        )
    }

    /// 404 for a path that addresses nothing.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource", None)
    }

    /// 409 `functions.kubeless.io "x" already exists`.
    pub fn already_exists(kind: &Kind, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.group_resource()),
            Some(details(name, &kind.group, &kind.plural)),
        )
    }

    /// 409 `Operation cannot be fulfilled on functions.kubeless.io "x": <why>`.
    pub fn conflict(kind: &Kind, name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", kind.group_resource()),
            Some(details(name, &kind.group, &kind.plural)),
        )
    }

    /// 422 Invalid with every problem in `details.causes`.
    pub fn invalid(kind: &Kind, name: &str, errors: &kelp_api::ValidationErrors) -> Self {
        let causes: Vec<Value> = errors
            .errors()
            .iter()
            .map(|e| {
                json!({
                    "reason": e.kind.cause_reason(),
                    "message": format!("{}: {}", invalid_prefix(e.kind), e.reason),
                    "field": e.field,
                })
            })
            .collect();
        let summary: Vec<String> = errors
            .errors()
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.reason.clone()
                } else {
                    format!("{}: {}: {}", e.field, invalid_prefix(e.kind), e.reason)
                }
            })
            .collect();
        let message = if summary.len() == 1 {
            format!("{} \"{name}\" is invalid: {}", kind.group_kind(), summary[0])
        } else {
            format!("{} \"{name}\" is invalid: [{}]", kind.group_kind(), summary.join(", "))
        };
        let mut d = details(name, &kind.group, &kind.kind);
        d["causes"] = Value::Array(causes);
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message, Some(d))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message, None)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", message, None)
    }

    /// 410 Expired: a resourceVersion older than the watch history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message, None)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized", None)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message, None)
    }

    /// The Status of a store error on an object of `kind`.
    pub fn from_store(kind: &Kind, error: StoreError) -> Self {
        match error {
            StoreError::NotFound { name, .. } => Self::not_found(kind, &name),
            StoreError::AlreadyExists { name, .. } => Self::already_exists(kind, &name),
            StoreError::Conflict { name, message, .. } => Self::conflict(kind, &name, &message),
            StoreError::Invalid(message) => Self::bad_request(message),
            StoreError::Gone { requested, oldest } => {
                Self::gone(format!("too old resource version: {requested} ({oldest})"))
            }
            other @ (StoreError::Database(_) | StoreError::Closed) => Self::internal(other.to_string()),
        }
    }

    /// The Status of a [`WorkloadError`].
    pub fn from_workloads(error: WorkloadError) -> Self {
        match error {
            WorkloadError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "NotFound", m, None),
            WorkloadError::BadRequest(m) => Self::bad_request(m),
            WorkloadError::Unavailable(m) => Self::unavailable(m),
            WorkloadError::Internal(m) => Self::internal(m),
        }
    }
}

fn invalid_prefix(kind: kelp_api::ValidationErrorKind) -> &'static str {
    match kind {
        kelp_api::ValidationErrorKind::Required => "Required value",
        kelp_api::ValidationErrorKind::Invalid => "Invalid value",
        kelp_api::ValidationErrorKind::NotSupported => "Unsupported value",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status).unwrap_or_default();
        (self.code, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Kinds;

    #[test]
    fn shapes_match_kubernetes() {
        let kinds = Kinds::new();
        let function = kinds.find("kubeless.io", "v1beta1", "functions").unwrap();
        let e = ApiError::not_found(function, "x");
        assert_eq!(
            e.status,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "functions.kubeless.io \"x\" not found", "reason": "NotFound",
                "details": {"name": "x", "group": "kubeless.io", "kind": "functions"}, "code": 404
            })
        );
        let e = ApiError::conflict(
            function,
            "x",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
        assert_eq!(e.code, StatusCode::CONFLICT);
        assert_eq!(
            e.status["message"],
            "Operation cannot be fulfilled on functions.kubeless.io \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let secret = kinds.find("", "v1", "secrets").unwrap();
        assert_eq!(ApiError::already_exists(secret, "s").status["details"], json!({"name": "s", "kind": "secrets"}));
        assert_eq!(ApiError::namespace_not_found("x").status["message"], "namespaces \"x\" not found");
        let mut errors = kelp_api::ValidationErrors::default();
        errors.required("spec.handler", "must not be empty");
        let e = ApiError::invalid(function, "f", &errors);
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.status["reason"], "Invalid");
        assert_eq!(e.status["details"]["kind"], "Function");
        assert_eq!(e.status["details"]["causes"][0]["field"], "spec.handler");
        assert_eq!(e.status["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(
            e.status["message"],
            "Function.kubeless.io \"f\" is invalid: spec.handler: Required value: must not be empty"
        );
        assert_eq!(ApiError::gone("too old").status["code"], 410);
        assert_eq!(ApiError::unauthorized().status["reason"], "Unauthorized");
        assert!(ApiError::no_route().status.get("details").is_none());
    }
}
