//! The router and the verbs: get, list, watch, create, update, patch, delete (and
//! deletecollection) on stored kinds; get, list, watch, logs and proxy on workloads.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use kelp_store::{
    DeleteOutcome, ObjectList, Page, Preconditions, Selector, Store, StoreError, WatchEvent, resource_version_of,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::discovery;
use crate::kinds::{Backend, Kind, Kinds};
use crate::pages;
use crate::patch::{self, PatchType};
use crate::paths::{self, Route, Target};
use crate::schema;
use crate::status::ApiError;
use crate::table::{self, IncludeObject};
use crate::workloads::{LogOptions, NoWorkloads, WorkloadEvent, Workloads};

/// The largest request body accepted (Kubernetes: 3 MiB objects; bodies up to this size).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// How long a watch lasts when the client gives no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// How many times a patch is retried when the object changed under it.
const PATCH_ATTEMPTS: usize = 16;

/// What the API server serves from: the store, the supervisor's workloads, and an optional
/// bearer token every request must carry.
#[derive(Clone)]
pub struct ApiServerConfig {
    /// The objects (opened with [`crate::store_config`], see [`crate::open_store`]).
    pub store: Store,
    /// Pods, services, logs, proxy.
    pub workloads: Arc<dyn Workloads>,
    /// When set, every request needs `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// When set, checks every object written (but status) after its validation.
    pub admission: Option<Arc<dyn Admission>>,
}

impl std::fmt::Debug for ApiServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerConfig")
            .field("store", &self.store)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ApiServerConfig {
    /// Serves `store`, with no workloads ([`NoWorkloads`]) and no token.
    pub fn new(store: Store) -> Self {
        Self { store, workloads: Arc::new(NoWorkloads), token: None, admission: None }
    }

    /// Serves pods, services, logs and the proxy from `workloads`.
    pub fn with_workloads(mut self, workloads: Arc<dyn Workloads>) -> Self {
        self.workloads = workloads;
        self
    }

    /// Requires `Authorization: Bearer <token>` on every request (`None`: no authentication).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Checks every object written with `admission` (after its validation; not status writes).
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }
}

struct App {
    store: Store,
    workloads: Arc<dyn Workloads>,
    token: Option<String>,
    admission: Option<Arc<dyn Admission>>,
    kinds: Kinds,
}

/// The axum router serving the whole API (mount it at `/`).
///
/// Watches stay open until their `timeoutSeconds` (30 minutes when the client gives none), so
/// a graceful shutdown should bound how long it waits for open connections.
pub fn router(config: ApiServerConfig) -> Router {
    let app = Arc::new(App {
        store: config.store,
        workloads: config.workloads,
        token: config.token,
        admission: config.admission,
        kinds: Kinds::new(),
    });
    Router::new().fallback(handle).with_state(app)
}

/// A namespace object as created by the API server (for [`crate::bootstrap`]).
pub(crate) fn new_namespace(name: &str) -> Value {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    default_namespace(&mut ns);
    ns
}

fn default_namespace(ns: &mut Value) {
    let name = ns.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(meta) = ns.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
        }
    }
    ns["spec"] = json!({"finalizers": ["kubernetes"]});
    ns["status"] = json!({"phase": "Active"});
}

/// Constant-time comparison of the presented and expected tokens (the API's, and any other
/// secret an embedding server checks, such as `kelp dashboard`'s session).
pub fn same_token(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Whether `headers` carry `Authorization: Bearer <token>` (compared in constant time), for an
/// embedding server that guards its own paths (say `/metrics`) with the API's token.
pub fn bearer_token_matches(headers: &http::HeaderMap, token: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    presented.is_some_and(|p| same_token(p.as_bytes(), token.as_bytes()))
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    if let Some(token) = &app.token
        && !bearer_token_matches(request.headers(), token)
    {
        return ApiError::unauthorized().into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = match dispatch(&app, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// The query parameters.
#[derive(Debug, Default)]
struct Query(HashMap<String, String>);

impl Query {
    fn parse(query: Option<&str>) -> Self {
        Self(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn selector(&self) -> Result<Selector, ApiError> {
        Selector::parse(self.get("labelSelector"), self.get("fieldSelector"))
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    fn page(&self) -> Result<Page, ApiError> {
        pages::requested(self.get("limit"), self.get("continue"), self.get("resourceVersion"))
    }

    fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.get("resourceVersion") {
            None | Some("0") => Ok(None),
            Some(rv) => {
                rv.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
            }
        }
    }
}

/// How objects are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Table(IncludeObject),
    Metadata,
}

fn format_of(headers: &HeaderMap, query: &Query) -> Result<Format, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=Table") && has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1")) {
            let include = IncludeObject::parse(query.get("includeObject")).map_err(ApiError::bad_request)?;
            return Ok(Format::Table(include));
        }
        if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList")) && has("g=meta.k8s.io") {
            return Ok(Format::Metadata);
        }
        if params.first().is_some_and(|m| matches!(*m, "application/json" | "*/*" | "application/*" | "")) {
            return Ok(Format::Json);
        }
    }
    Ok(Format::Json)
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    serialized_response(code, body)
}

fn serialized_response(code: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// What kube-apiserver answers for a group or group version it does not serve: its mux's plain
/// `404 page not found` (Go's `http.NotFound`), not a `Status`. Clients tell the two apart: the
/// Serverless Framework's kubeless plugin takes this one for "no such object" (its `http` events'
/// `extensions/v1beta1` Ingress, which current Kubernetes no longer serves).
fn page_not_found() -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    (StatusCode::NOT_FOUND, headers, "404 page not found\n").into_response()
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

async fn dispatch(app: &Arc<App>, request: Request) -> Result<Response, ApiError> {
    let query = Query::parse(request.uri().query());
    let Some(route) = paths::parse(&app.kinds, request.uri().path()) else {
        return if paths::is_unserved_group(&app.kinds, request.uri().path()) {
            Ok(page_not_found())
        } else {
            Err(ApiError::no_route())
        };
    };
    let method = request.method().clone();
    let read_only = |body: Value| {
        if method == Method::GET {
            Ok(json_response(StatusCode::OK, &body))
        } else {
            Err(ApiError::method_not_allowed())
        }
    };
    match route {
        Route::Version => read_only(discovery::version()),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions => {
            let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            read_only(discovery::core_versions(host))
        }
        Route::CoreResources => read_only(discovery::resource_list(&app.kinds, "", "v1")),
        Route::Groups => read_only(discovery::group_list(&app.kinds)),
        Route::Group(group) => read_only(discovery::group(&app.kinds, &group)),
        Route::GroupResources(group, version) => read_only(discovery::resource_list(&app.kinds, &group, &version)),
        Route::OpenApiV3Root => read_only(discovery::openapi_v3_root(&app.kinds)),
        Route::OpenApiV3(key) => {
            let (group, version) = discovery::parse_openapi_key(&app.kinds, &key).ok_or_else(ApiError::no_route)?;
            read_only(discovery::openapi_v3_document(&app.kinds, &group, &version))
        }
        // Only OpenAPI v3 is served; kubectl falls back to it (or does without v2).
        Route::OpenApiV2 => Err(ApiError::no_route()),
        Route::ServiceProxy { namespace, service, port, rest } => {
            proxy(app, request, &namespace, &service, port.as_deref(), &rest).await
        }
        Route::Resource(target) => match target.kind.backend {
            Backend::Store => stored(app, request, target, query).await,
            Backend::Pods | Backend::Services | Backend::Deployments | Backend::Definitions | Backend::Autoscalers => {
                workload(app, request, target, query).await
            }
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Stored kinds
// ---------------------------------------------------------------------------------------------

async fn stored(app: &Arc<App>, request: Request, target: Target, query: Query) -> Result<Response, ApiError> {
    let kind = target.kind.clone();
    let method = request.method().clone();
    let format = format_of(request.headers(), &query)?;
    let sub = target.subresource.as_deref();
    if let Some(sub) = sub
        && !(sub == "status" && kind.status_subresource)
    {
        return Err(ApiError::no_route());
    }
    // A namespaced kind addressed without a namespace only lists and watches.
    if kind.namespaced && target.namespace.is_none() && method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    match (&method, target.name.as_deref()) {
        (&Method::GET, None) if query.flag("watch") => {
            watch_stored(app, &kind, target.namespace.as_deref(), &query, format)
        }
        (&Method::GET, None) => list_stored(app, &kind, target.namespace.as_deref(), &query, format),
        (&Method::GET, Some(name)) => {
            let object =
                app.store.get(&kind.store_key(), &namespace, name).map_err(|e| ApiError::from_store(&kind, e))?;
            Ok(json_response(StatusCode::OK, &render_one(&kind, &object, format)))
        }
        (&Method::POST, None) => create(app, &kind, &namespace, request, &query).await,
        (&Method::PUT, Some(name)) => replace(app, &kind, &namespace, name, sub.is_some(), request, &query).await,
        (&Method::PATCH, Some(name)) => {
            patch_object(app, &kind, &namespace, name, sub.is_some(), request, &query).await
        }
        (&Method::DELETE, Some(name)) if sub.is_none() => delete(app, &kind, &namespace, name, request).await,
        (&Method::DELETE, None) => delete_collection(app, &kind, &namespace, &query).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// One object in the requested format.
fn render_one(kind: &Kind, object: &Value, format: Format) -> Value {
    match format {
        Format::Json => object.clone(),
        Format::Table(include) => table::table(kind, [object], object_metadata(object), include, true),
        Format::Metadata => partial_metadata(object),
    }
}

/// The `metadata` of a Table of one object: its resourceVersion.
fn object_metadata(object: &Value) -> Value {
    match object.pointer("/metadata/resourceVersion") {
        Some(rv) => json!({"resourceVersion": rv}),
        None => json!({}),
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list response. JSON lists serialize their items where they are stored: a list of a thousand
/// objects is written out, not copied first.
enum ListBody<'a> {
    /// A Table or metadata-only list, built as a value.
    Built(Value),
    /// `{apiVersion, kind: <Kind>List, metadata, items}`.
    Items { api_version: String, kind: String, metadata: Value, items: Vec<&'a Value> },
}

impl serde::Serialize for ListBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ListBody::Built(value) => value.serialize(serializer),
            ListBody::Items { api_version, kind, metadata, items } => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("apiVersion", api_version)?;
                map.serialize_entry("kind", kind)?;
                map.serialize_entry("metadata", metadata)?;
                map.serialize_entry("items", items)?;
                map.end()
            }
        }
    }
}

/// A list of `items` with `metadata` ([`pages::list_metadata`]) in `format`.
fn render_list<'a>(
    kind: &Kind,
    items: impl IntoIterator<Item = &'a Value>,
    metadata: Value,
    format: Format,
) -> ListBody<'a> {
    match format {
        Format::Table(include) => ListBody::Built(table::table(kind, items, metadata, include, true)),
        Format::Metadata => ListBody::Built(json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.into_iter().map(partial_metadata).collect::<Vec<_>>(),
        })),
        Format::Json => ListBody::Items {
            api_version: kind.api_version(),
            kind: format!("{}List", kind.kind),
            metadata,
            items: items.into_iter().collect(),
        },
    }
}

fn list_stored(
    app: &App,
    kind: &Kind,
    namespace: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let selector = query.selector()?;
    let page = query.page()?;
    let list =
        app.store.list_page(&kind.store_key(), namespace, &selector, &page).map_err(|e| match (e, &page.cursor) {
            (StoreError::Gone { .. }, Some(cursor)) => pages::expired(cursor),
            (e, _) => ApiError::from_store(kind, e),
        })?;
    let body = render_list(kind, list.items.iter().map(|o| o.as_ref()), pages::list_metadata(&list), format);
    Ok(serialized_response(StatusCode::OK, &body))
}

async fn read_body(request: Request) -> Result<Value, ApiError> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    parse_body(&content_type, &bytes)
}

pub(crate) fn parse_body(content_type: &str, bytes: &Bytes) -> Result<Value, ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.contains("protobuf") {
        return crate::protobuf::decode(bytes).map_err(ApiError::unsupported_media_type);
    }
    if media.contains("cbor") {
        return Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {media})"
        )));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    if media.contains("yaml") && serde_json::from_slice::<Value>(bytes).is_err() {
        let text =
            std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

/// The `fieldValidation` directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    fn from_query(query: &Query) -> Result<Self, ApiError> {
        match query.get("fieldValidation") {
            None | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Puts `object` in shape for a write of `kind` in `namespace` (named `name` by the URL, for
/// updates): checks apiVersion, kind, namespace and name against the request, prunes and
/// reports unknown fields, checks types, applies defaults and validates (not for writes to the
/// status subresource, which ignore everything but `status`).
pub(crate) fn prepare(
    kind: &Kind,
    namespace: &str,
    name: Option<&str>,
    mut object: Value,
    (validation, status_write): (FieldValidation, bool),
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    };
    let api_version = kind.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != kind.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
        _ => {}
    }
    map.insert("apiVersion".into(), Value::String(api_version));
    map.insert("kind".into(), Value::String(kind.kind.clone()));
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if kind.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                meta.insert("name".into(), Value::String(url_name.to_owned()));
            }
        }
    }
    meta.remove("selfLink");
    let display_name =
        meta.get("name").or_else(|| meta.get("generateName")).and_then(Value::as_str).unwrap_or_default().to_owned();

    if let Some(schema) = &kind.schema {
        let report = schema::check_object(schema, &mut object);
        if !report.unknown.is_empty() {
            let fields: Vec<String> = report.unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{kind_name} in version \"{version}\" cannot be handled as a {kind_name}: strict decoding error: {fields}",
                        kind_name = kind.kind,
                        version = kind.version,
                        fields = fields.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(fields),
                FieldValidation::Ignore => {}
            }
        }
        if !report.invalid.is_empty() {
            let mut errors = kelp_api::ValidationErrors::default();
            for (field, reason) in report.invalid {
                errors.invalid(field, reason);
            }
            return Err(ApiError::invalid(kind, &display_name, &errors));
        }
    }
    apply_defaults(kind, &mut object);
    if let Some(validator) = kind.validator.filter(|_| !status_write)
        && let Err(errors) = validator(&object)
    {
        return Err(ApiError::invalid(kind, &display_name, &errors));
    }
    Ok(object)
}

/// [`prepare`], then the server's [`Admission`] (not for status writes), whose warnings join
/// `warnings`.
fn prepare_admitted(
    app: &App,
    kind: &Kind,
    namespace: &str,
    name: Option<&str>,
    object: Value,
    (validation, status_write): (FieldValidation, bool),
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let object = prepare(kind, namespace, name, object, (validation, status_write), warnings)?;
    if let Some(admission) = app.admission.as_ref().filter(|_| !status_write) {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        warnings.extend(admission.admit(kind, &object).map_err(|errors| ApiError::invalid(kind, name, &errors))?);
    }
    Ok(object)
}

/// Server-side defaults of core kinds.
fn apply_defaults(kind: &Kind, object: &mut Value) {
    if !kind.group.is_empty() {
        return;
    }
    match kind.plural.as_str() {
        "namespaces" => default_namespace(object),
        "secrets" => {
            if let Some(Value::Object(string_data)) = object.as_object_mut().and_then(|m| m.remove("stringData")) {
                let data = object
                    .as_object_mut()
                    .map(|m| m.entry("data").or_insert_with(|| json!({})))
                    .and_then(Value::as_object_mut);
                if let Some(data) = data {
                    for (key, value) in string_data {
                        let text = value.as_str().unwrap_or_default().to_owned();
                        data.insert(key, Value::String(STANDARD.encode(text)));
                    }
                }
            }
            if object.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                object["type"] = json!("Opaque");
            }
        }
        _ => {}
    }
}

fn ensure_namespace(app: &App, kind: &Kind, namespace: &str) -> Result<(), ApiError> {
    if !kind.namespaced {
        return Ok(());
    }
    match app.store.get("/namespaces", "", namespace) {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(ApiError::namespace_not_found(namespace)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

fn dry_run(query: &Query) -> bool {
    query.get("dryRun").is_some()
}

async fn create(
    app: &App,
    kind: &Kind,
    namespace: &str,
    request: Request,
    query: &Query,
) -> Result<Response, ApiError> {
    let validation = FieldValidation::from_query(query)?;
    let body = read_body(request).await?;
    let mut warnings = Vec::new();
    let object = prepare_admitted(app, kind, namespace, None, body, (validation, false), &mut warnings)?;
    ensure_namespace(app, kind, namespace)?;
    if dry_run(query) {
        return Ok(with_warnings(json_response(StatusCode::CREATED, &object), &warnings));
    }
    let created = app.store.create(&kind.store_key(), object).await.map_err(|e| ApiError::from_store(kind, e))?;
    Ok(with_warnings(json_response(StatusCode::CREATED, &created), &warnings))
}

async fn write_existing(app: &App, kind: &Kind, object: Value, status: bool) -> Result<Arc<Value>, StoreError> {
    if status {
        app.store.update_status(&kind.store_key(), object).await
    } else {
        app.store.update(&kind.store_key(), object).await
    }
}

async fn replace(
    app: &App,
    kind: &Kind,
    namespace: &str,
    name: &str,
    status: bool,
    request: Request,
    query: &Query,
) -> Result<Response, ApiError> {
    let validation = FieldValidation::from_query(query)?;
    let body = read_body(request).await?;
    let mut warnings = Vec::new();
    let object = prepare_admitted(app, kind, namespace, Some(name), body, (validation, status), &mut warnings)?;
    if dry_run(query) {
        app.store.get(&kind.store_key(), namespace, name).map_err(|e| ApiError::from_store(kind, e))?;
        return Ok(with_warnings(json_response(StatusCode::OK, &object), &warnings));
    }
    let updated = write_existing(app, kind, object, status).await.map_err(|e| ApiError::from_store(kind, e))?;
    Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
}

async fn patch_object(
    app: &App,
    kind: &Kind,
    namespace: &str,
    name: &str,
    status: bool,
    request: Request,
    query: &Query,
) -> Result<Response, ApiError> {
    let validation = FieldValidation::from_query(query)?;
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let patch_type = PatchType::from_content_type(&content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, \
             application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
        ))
    })?;
    if patch_type == PatchType::Apply && query.get("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    let patch_body =
        parse_body(if patch_type == PatchType::Apply { "application/yaml" } else { "application/json" }, &bytes)?;
    let key = kind.store_key();
    let mut warnings = Vec::new();
    for _ in 0..PATCH_ATTEMPTS {
        let current = match app.store.get(&key, namespace, name) {
            Ok(current) => current,
            Err(StoreError::NotFound { .. }) if patch_type == PatchType::Apply && !status => {
                // Server-side apply of a new object creates it.
                let object = prepare_admitted(
                    app,
                    kind,
                    namespace,
                    Some(name),
                    patch_body.clone(),
                    (validation, false),
                    &mut warnings,
                )?;
                ensure_namespace(app, kind, namespace)?;
                if dry_run(query) {
                    return Ok(with_warnings(json_response(StatusCode::CREATED, &object), &warnings));
                }
                match app.store.create(&key, object).await {
                    Ok(created) => return Ok(with_warnings(json_response(StatusCode::CREATED, &created), &warnings)),
                    Err(StoreError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(kind, e)),
                }
            }
            Err(e) => return Err(ApiError::from_store(kind, e)),
        };
        let mut object = (*current).clone();
        patch::apply(patch_type, &mut object, &patch_body)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e, None))?;
        // A resourceVersion in the patch is a precondition; otherwise the object read is.
        let explicit_rv =
            patch_body.pointer("/metadata/resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !explicit_rv && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), current["metadata"]["resourceVersion"].clone());
        }
        let object = prepare_admitted(app, kind, namespace, Some(name), object, (validation, status), &mut warnings)?;
        if dry_run(query) {
            return Ok(with_warnings(json_response(StatusCode::OK, &object), &warnings));
        }
        match write_existing(app, kind, object, status).await {
            Ok(updated) => return Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings)),
            Err(StoreError::Conflict { .. }) if !explicit_rv => continue,
            Err(e) => return Err(ApiError::from_store(kind, e)),
        }
    }
    Err(ApiError::conflict(kind, name, "the object kept changing; please try again"))
}

fn delete_options(content_type: &str, bytes: &Bytes) -> Result<(Preconditions, bool), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((Preconditions::default(), false));
    }
    let options = parse_body(content_type, bytes)?;
    let pre =
        |field: &str| options.pointer(&format!("/preconditions/{field}")).and_then(Value::as_str).map(str::to_owned);
    let dry_run = options.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    Ok((Preconditions { uid: pre("uid"), resource_version: pre("resourceVersion") }, dry_run))
}

async fn delete(app: &App, kind: &Kind, namespace: &str, name: &str, request: Request) -> Result<Response, ApiError> {
    let query = Query::parse(request.uri().query());
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    let (preconditions, dry) = delete_options(&content_type, &bytes)?;
    let key = kind.store_key();
    if dry || dry_run(&query) {
        let object = app.store.get(&key, namespace, name).map_err(|e| ApiError::from_store(kind, e))?;
        return Ok(json_response(StatusCode::OK, &object));
    }
    if kind.plural == "namespaces" && kind.group.is_empty() {
        if name == "default" {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
                Some(json!({"name": name, "kind": "namespaces"})),
            ));
        }
        app.store.get(&key, "", name).map_err(|e| ApiError::from_store(kind, e))?;
        // Everything in the namespace goes first (objects with finalizers are only marked).
        for resource in app.kinds.namespaced_store_keys() {
            for object in app.store.list(&resource, Some(name), &Selector::everything()).items {
                let object_name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                match app.store.delete(&resource, name, object_name, Preconditions::default()).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(ApiError::internal(e.to_string())),
                }
            }
        }
    }
    // As Kubernetes: an object still waiting for its finalizers comes back as it is now; one
    // that is gone comes back as a Success Status (namespaces: the object).
    match app.store.delete(&key, namespace, name, preconditions).await {
        Ok(DeleteOutcome::Deleted(object)) if kind.plural != "namespaces" => {
            Ok(json_response(StatusCode::OK, &deleted_status(kind, &object)))
        }
        Ok(outcome) => Ok(json_response(StatusCode::OK, outcome.object())),
        Err(e) => Err(ApiError::from_store(kind, e)),
    }
}

/// The `Status` of a completed deletion.
fn deleted_status(kind: &Kind, object: &Value) -> Value {
    let mut details = json!({"name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null)});
    if !kind.group.is_empty() {
        details["group"] = json!(kind.group);
    }
    details["kind"] = json!(kind.plural);
    details["uid"] = object.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

async fn delete_collection(app: &App, kind: &Kind, namespace: &str, query: &Query) -> Result<Response, ApiError> {
    if kind.plural == "namespaces" && kind.group.is_empty() {
        return Err(ApiError::method_not_allowed());
    }
    let selector = query.selector()?;
    let key = kind.store_key();
    let namespace = kind.namespaced.then_some(namespace);
    let mut deleted = Vec::new();
    for object in app.store.list(&key, namespace, &selector).items {
        let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        match app.store.delete(&key, ns, name, Preconditions::default()).await {
            Ok(outcome) => deleted.push(outcome.object().as_ref().clone()),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(ApiError::from_store(kind, e)),
        }
    }
    let metadata =
        pages::list_metadata(&ObjectList { resource_version: app.store.resource_version(), ..ObjectList::default() });
    Ok(serialized_response(StatusCode::OK, &render_list(kind, deleted.iter(), metadata, Format::Json)))
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

/// Turns watch events into the lines of a Kubernetes watch response.
struct Encoder {
    kind: Arc<Kind>,
    format: Format,
    headers_sent: bool,
}

impl Encoder {
    fn event(&mut self, type_: &str, object: &Value) -> Bytes {
        let object = match self.format {
            Format::Json => object.clone(),
            Format::Metadata => partial_metadata(object),
            Format::Table(include) => {
                let headers = !std::mem::replace(&mut self.headers_sent, true);
                table::table(&self.kind, [object], object_metadata(object), include, headers)
            }
        };
        line(&json!({"type": type_, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": metadata});
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn error_line(error: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": error.status}))
}

fn watch_timeout(query: &Query) -> Duration {
    query.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs)
}

fn streaming_response(stream: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = Body::from_stream(stream.map(Ok::<_, std::io::Error>));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    response
}

struct StoreWatch {
    watch: kelp_store::Watch,
    encoder: Encoder,
    deadline: Instant,
    bookmarks: bool,
    initial_end_pending: bool,
    next_bookmark: Instant,
    done: bool,
}

impl StoreWatch {
    async fn next_line(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if self.initial_end_pending
            && let Some(rv) = self.watch.progress()
        {
            self.initial_end_pending = false;
            return Some(self.encoder.bookmark(rv, true));
        }
        loop {
            tokio::select! {
                event = self.watch.next() => return match event {
                    Some(Ok(WatchEvent { event, object })) => Some(self.encoder.event(event.as_str(), &object)),
                    Some(Err(e)) => {
                        self.done = true;
                        Some(error_line(&ApiError::from_store(&self.encoder.kind, e)))
                    }
                    None => None,
                },
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => {
                    self.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    if let Some(rv) = self.watch.progress() {
                        return Some(self.encoder.bookmark(rv, false));
                    }
                }
            }
        }
    }
}

fn watch_stored(
    app: &App,
    kind: &Arc<Kind>,
    namespace: Option<&str>,
    query: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let selector = query.selector()?;
    let send_initial = query.flag("sendInitialEvents");
    let from = if send_initial { None } else { query.resource_version()? };
    let bookmarks = query.flag("allowWatchBookmarks");
    let encoder = Encoder { kind: kind.clone(), format, headers_sent: false };
    let watch = match app.store.watch(&kind.store_key(), namespace, selector, from) {
        Ok(watch) => watch,
        Err(e @ StoreError::Gone { .. }) => {
            // As Kubernetes: a 200 whose only event is an ERROR with the 410 Status.
            let error = error_line(&ApiError::from_store(kind, e));
            return Ok(streaming_response(futures_util::stream::iter([error])));
        }
        Err(e) => return Err(ApiError::from_store(kind, e)),
    };
    let state = StoreWatch {
        watch,
        encoder,
        deadline: Instant::now() + watch_timeout(query),
        bookmarks,
        initial_end_pending: send_initial && bookmarks,
        next_bookmark: Instant::now() + BOOKMARK_INTERVAL,
        done: false,
    };
    let stream =
        futures_util::stream::unfold(state, |mut state| async move { state.next_line().await.map(|l| (l, state)) });
    Ok(streaming_response(stream))
}

// ---------------------------------------------------------------------------------------------
// Workloads: pods and services
// ---------------------------------------------------------------------------------------------

async fn workload_objects(app: &App, kind: &Kind, namespace: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let values = match kind.backend {
        Backend::Pods => app
            .workloads
            .list_pods(namespace)
            .await
            .map_err(ApiError::from_workloads)?
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>(),
        Backend::Services => app
            .workloads
            .list_services(namespace)
            .await
            .map_err(ApiError::from_workloads)?
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>(),
        Backend::Deployments => app
            .workloads
            .list_deployments(namespace)
            .await
            .map_err(ApiError::from_workloads)?
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>(),
        Backend::Definitions => Ok(app.kinds.definitions(&kind.version)),
        Backend::Autoscalers => Ok(autoscalers(&app.store, namespace)),
        Backend::Store => Ok(Vec::new()),
    };
    let mut values = values.map_err(|e| ApiError::internal(e.to_string()))?;
    values.retain(|o| in_namespace(o, namespace));
    values.sort_by_key(sort_key);
    Ok(values)
}

/// The HorizontalPodAutoscalers Kubeless's controller made of Functions: each live Function's
/// `spec.horizontalPodAutoscaler` (an `autoscaling/v2beta1` object, as `autoscale create` of the
/// kubeless CLI and of `kelp` write it), in the Function's namespace, named after it by default.
fn autoscalers(store: &Store, namespace: Option<&str>) -> Vec<Value> {
    let functions = store.list("kubeless.io/functions", namespace, &Selector::everything()).items;
    functions
        .iter()
        .filter(|f| f.pointer("/metadata/deletionTimestamp").is_none())
        .filter_map(|f| {
            let mut hpa = f.pointer("/spec/horizontalPodAutoscaler").filter(|h| h.get("spec").is_some())?.clone();
            let meta = f.get("metadata")?;
            hpa["apiVersion"] = json!("autoscaling/v2beta1");
            hpa["kind"] = json!("HorizontalPodAutoscaler");
            if !hpa["metadata"].is_object() {
                hpa["metadata"] = json!({});
            }
            hpa["metadata"]["namespace"] = meta["namespace"].clone();
            if hpa.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty) {
                hpa["metadata"]["name"] = meta["name"].clone();
            }
            hpa["metadata"]["creationTimestamp"] = meta["creationTimestamp"].clone();
            Some(hpa)
        })
        .collect()
}

fn sort_key(o: &Value) -> (String, String) {
    let field = |f: &str| o.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or_default().to_owned();
    (field("namespace"), field("name"))
}

fn in_namespace(object: &Value, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default() == ns)
}

fn workload_events(app: &App, kind: &Kind) -> crate::workloads::BoxStream<(&'static str, Value)> {
    fn convert<T: serde::Serialize>(event: WorkloadEvent<T>) -> Option<(&'static str, Value)> {
        let (type_, object) = match event {
            WorkloadEvent::Added(o) => ("ADDED", o),
            WorkloadEvent::Modified(o) => ("MODIFIED", o),
            WorkloadEvent::Deleted(o) => ("DELETED", o),
        };
        serde_json::to_value(object).ok().map(|v| (type_, v))
    }
    match kind.backend {
        Backend::Pods => Box::pin(app.workloads.watch_pods().filter_map(|e| async move { convert(e) })),
        Backend::Services => Box::pin(app.workloads.watch_services().filter_map(|e| async move { convert(e) })),
        Backend::Deployments => Box::pin(app.workloads.watch_deployments().filter_map(|e| async move { convert(e) })),
        // The CRDs are fixed for the life of the process; autoscalers are listed, not watched
        // (a watch gives the current ones, then nothing).
        Backend::Definitions | Backend::Autoscalers => Box::pin(futures_util::stream::pending()),
        Backend::Store => Box::pin(futures_util::stream::empty()),
    }
}

async fn workload(app: &Arc<App>, request: Request, target: Target, query: Query) -> Result<Response, ApiError> {
    let kind = target.kind.clone();
    if request.method() != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let format = format_of(request.headers(), &query)?;
    let selector = query.selector()?;
    let namespace = target.namespace.as_deref();
    match (target.name.as_deref(), target.subresource.as_deref()) {
        (None, _) if query.flag("watch") => watch_workloads(app, &kind, namespace, selector, &query, format).await,
        (None, _) => {
            let objects = workload_objects(app, &kind, namespace).await?;
            let matching: Vec<&Value> = objects.iter().filter(|o| selector.matches(o)).collect();
            let resource_version = objects.iter().filter_map(resource_version_of).max().unwrap_or(0);
            let metadata = pages::list_metadata(&ObjectList { resource_version, ..ObjectList::default() });
            Ok(serialized_response(StatusCode::OK, &render_list(&kind, matching, metadata, format)))
        }
        (Some(name), None) => {
            let objects = workload_objects(app, &kind, namespace).await?;
            let object = objects
                .iter()
                .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
                .ok_or_else(|| ApiError::not_found(&kind, name))?;
            Ok(json_response(StatusCode::OK, &render_one(&kind, object, format)))
        }
        (Some(name), Some("log")) if kind.backend == Backend::Pods => {
            let options = LogOptions {
                container: query.get("container").map(str::to_owned),
                follow: query.flag("follow"),
                tail_lines: query.get("tailLines").and_then(|v| v.parse().ok()),
                previous: query.flag("previous"),
                timestamps: query.flag("timestamps"),
                since_seconds: query.get("sinceSeconds").and_then(|v| v.parse().ok()),
                limit_bytes: query.get("limitBytes").and_then(|v| v.parse().ok()),
            };
            let stream = app
                .workloads
                .pod_logs(namespace.unwrap_or_default(), name, options)
                .await
                .map_err(ApiError::from_workloads)?;
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(response)
        }
        _ => Err(ApiError::no_route()),
    }
}

async fn watch_workloads(
    app: &Arc<App>,
    kind: &Arc<Kind>,
    namespace: Option<&str>,
    selector: Selector,
    query: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let from = query.resource_version()?;
    // Subscribe before listing, so that nothing falls in between.
    let events = workload_events(app, kind);
    let objects = workload_objects(app, kind, namespace).await?;
    let mut encoder = Encoder { kind: kind.clone(), format, headers_sent: false };
    let initial: VecDeque<Bytes> = objects
        .iter()
        .filter(|o| selector.matches(o))
        .filter(|o| from.is_none_or(|rv| resource_version_of(o).is_none_or(|orv| orv > rv)))
        .map(|o| encoder.event("ADDED", o))
        .collect();
    let namespace = namespace.map(str::to_owned);
    let deadline = Instant::now() + watch_timeout(query);
    let live = events.filter_map(move |(type_, object)| {
        let keep = in_namespace(&object, namespace.as_deref()) && selector.matches(&object);
        let line = keep.then(|| encoder.event(type_, &object));
        async move { line }
    });
    let stream = futures_util::stream::iter(initial).chain(live).take_until(tokio::time::sleep_until(deadline));
    Ok(streaming_response(stream))
}

async fn proxy(
    app: &Arc<App>,
    request: Request,
    namespace: &str,
    service: &str,
    port: Option<&str>,
    rest: &str,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    parts.uri = path_and_query.parse().map_err(|e| ApiError::bad_request(format!("invalid proxy path: {e}")))?;
    // The API server's credentials are not the function's business.
    parts.headers.remove(header::AUTHORIZATION);
    let request = http::Request::from_parts(parts, body);
    app.workloads.proxy(namespace, service, port, request).await.map_err(ApiError::from_workloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token(b"abc", b"abc"));
        assert!(!same_token(b"abc", b"abd") && !same_token(b"ab", b"abc"));
    }

    #[test]
    fn accept_headers() {
        let q = Query::default();
        let mut h = HeaderMap::new();
        assert_eq!(format_of(&h, &q).unwrap(), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"),
        );
        assert_eq!(format_of(&h, &q).unwrap(), Format::Table(IncludeObject::Metadata));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json, */*"));
        assert_eq!(format_of(&h, &q).unwrap(), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
        );
        assert_eq!(format_of(&h, &q).unwrap(), Format::Metadata);
    }

    #[test]
    fn bodies() {
        let yaml = Bytes::from_static(b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n");
        assert_eq!(parse_body("application/yaml", &yaml).unwrap()["metadata"]["name"], "s");
        assert_eq!(parse_body("application/json", &Bytes::from_static(b"{\"a\":1}")).unwrap()["a"], 1);
        assert_eq!(
            parse_body("application/vnd.kubernetes.protobuf", &yaml).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(parse_body("application/cbor", &yaml).unwrap_err().code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            parse_body("application/json", &Bytes::from_static(b"{")).unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn prepare_checks_and_defaults() {
        let kinds = Kinds::new();
        let function = kinds.find("kubeless.io", "v1beta1", "functions").unwrap();
        let mut warnings = Vec::new();
        let good = json!({"metadata": {"name": "f"}, "spec": {"handler": "h.f", "runtime": "python3.8", "extra": 1}});
        let out =
            prepare(function, "default", None, good.clone(), (FieldValidation::Warn, false), &mut warnings).unwrap();
        assert_eq!(out["apiVersion"], "kubeless.io/v1beta1");
        assert_eq!(out["metadata"]["namespace"], "default");
        assert!(out["spec"].get("extra").is_none());
        assert_eq!(warnings, ["unknown field \"spec.extra\""]);
        let strict = prepare(function, "default", None, good.clone(), (FieldValidation::Strict, false), &mut warnings)
            .unwrap_err();
        assert_eq!(strict.code, StatusCode::BAD_REQUEST);
        assert!(
            strict.status["message"].as_str().unwrap().contains("strict decoding error: unknown field \"spec.extra\"")
        );
        let wrong_ns = json!({"metadata": {"name": "f", "namespace": "other"}, "spec": {}});
        assert_eq!(
            prepare(function, "default", None, wrong_ns, (FieldValidation::Warn, false), &mut warnings)
                .unwrap_err()
                .code,
            StatusCode::BAD_REQUEST
        );
        let bad = json!({"metadata": {"name": "f"}, "spec": {"handler": "nodot", "runtime": "python3.8"}});
        let invalid =
            prepare(function, "default", None, bad, (FieldValidation::Warn, false), &mut warnings).unwrap_err();
        assert_eq!(invalid.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(invalid.status["details"]["causes"][0]["field"], "spec.handler");
        let renamed =
            prepare(function, "default", Some("g"), good, (FieldValidation::Warn, false), &mut warnings).unwrap_err();
        assert!(renamed.status["message"].as_str().unwrap().contains("does not match the name on the URL"));

        let secret = kinds.find("", "v1", "secrets").unwrap();
        let s = json!({"metadata": {"name": "s"}, "stringData": {"a": "hello world"}});
        let s = prepare(secret, "default", None, s, (FieldValidation::Warn, false), &mut warnings).unwrap();
        assert_eq!(s["data"]["a"], "aGVsbG8gd29ybGQ=");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        let ns = kinds.find("", "v1", "namespaces").unwrap();
        let n = prepare(
            ns,
            "",
            None,
            json!({"metadata": {"name": "x", "namespace": "y"}}),
            (FieldValidation::Warn, false),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(n["status"]["phase"], "Active");
        assert!(n["metadata"].get("namespace").is_none());
    }
}
