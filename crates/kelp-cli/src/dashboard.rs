//! `kelp dashboard`: the web dashboard, served on loopback and talking to the API server of the
//! kubeconfig's context with the user's own credentials, as `kubectl proxy` does. One entry for
//! both backends (`kelp up`'s API or a cluster's): nothing is installed in the cluster, and what
//! the page may do is what the user's RBAC allows.
//!
//! The page (`ui/`: hand-written ES modules, no build step) is carried in the binary and served at
//! `/ui/`; `/api`, `/apis`, `/version` and `/metrics` are forwarded to the API server. The browser
//! never gets an open API: every start makes a login token, printed in the login URL, which sets a
//! session cookie (`HttpOnly`, `SameSite=Strict`); a forwarded request needs that cookie, a `Host`
//! naming the loopback listener (no DNS rebinding) and, when it changes something, an `Origin` of
//! that same listener (no cross-site request). Answers forwarded from functions through the
//! service proxy are sandboxed (`Content-Security-Policy: sandbox`), so a function's HTML opened
//! in the browser runs no script with the dashboard's cookie.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::target::GlobalArgs;

/// The most bytes of a request body forwarded to the API server (a Function with its code
/// inline, or a call's body): the largest `kelp up`'s API takes. A larger one gets 413.
const MAX_REQUEST_BODY: usize = kelp_apiserver::MAX_BODY;

/// The session cookie's name.
const COOKIE: &str = "kelp-dashboard";

/// The policy of the page: nothing from elsewhere, no inline script, no framing.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                           connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `kelp dashboard` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct DashboardArgs {
    /// Loopback address to serve the dashboard on (port 0: any free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    listen: SocketAddr,
}

/// One asset of the page: its path under `/ui/`, content type and text.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    text: &'static str,
}

/// The `Content-Type` of the page's JavaScript modules.
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The asset of `ui/<file>` with this content type, carried in the binary.
macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset { path: $path, content_type: $content_type, text: include_str!(concat!("../ui/", $file)) }
    };
    ($file:literal) => {
        asset!($file, $file, JAVASCRIPT)
    };
}

/// The page, carried in the binary.
const ASSETS: &[Asset] = &[
    asset!("", "index.html", "text/html; charset=utf-8"),
    asset!("style.css", "style.css", "text/css; charset=utf-8"),
    asset!("app.js"),
    asset!("api.js"),
    asset!("dom.js"),
    asset!("functions.js"),
    asset!("function.js"),
    asset!("form.js"),
    asset!("editor.js"),
    asset!("metrics.js"),
    asset!("triggers.js"),
];

/// What every request is checked against.
struct Dashboard {
    /// The client of the kubeconfig's context, without a read timeout (watches and log follows
    /// stay open).
    client: kube::Client,
    /// The login token of this start.
    login: String,
    /// The session cookie's value of this start.
    session: String,
    /// The `Host` values that name this listener.
    hosts: Vec<String>,
    /// The namespace the page starts in (`-n`, else the context's).
    namespace: String,
    /// The context's name, shown on the page.
    context: String,
}

/// Serves the dashboard until Ctrl-C or SIGTERM.
pub(crate) async fn run(global: &GlobalArgs, args: DashboardArgs) -> anyhow::Result<()> {
    let socket = bind(args.listen, "--listen").await?;
    let target = crate::target::connect(global).await?;
    serve(socket, &target, "kelp dashboard").await
}

/// The dashboard's listener on `listen`, which must be a loopback address (`flag` names it).
pub(crate) async fn bind(listen: SocketAddr, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    if !listen.ip().is_loopback() {
        anyhow::bail!(
            "{flag} {listen}: the dashboard serves on a loopback address only (127.0.0.1 or ::1): it acts with your \
             kubeconfig's credentials"
        );
    }
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen} ({flag})"))
}

/// Serves the dashboard on `socket` for `target` until Ctrl-C or SIGTERM, after printing its
/// login URL (prefixed with `who`).
pub(crate) async fn serve(
    socket: tokio::net::TcpListener,
    target: &crate::target::Target,
    who: &str,
) -> anyhow::Result<()> {
    let mut config = target.config.clone();
    config.read_timeout = None;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let addr = socket.local_addr().context("the listener's address")?;
    let dashboard = Arc::new(Dashboard::new(client, addr, target.namespace.clone(), target.context.clone()));
    eprintln!(
        "{who}: the dashboard of context {} ({}), namespace {}: open http://{addr}/ui/login?token={} (Ctrl-C stops)",
        target.context, target.server, target.namespace, dashboard.login
    );
    axum::serve(socket, router(dashboard))
        .with_graceful_shutdown(crate::up::stop_signal())
        .await
        .context("serving the dashboard")?;
    Ok(())
}

impl Dashboard {
    fn new(client: kube::Client, addr: SocketAddr, namespace: String, context: String) -> Dashboard {
        let hosts = vec![addr.to_string(), format!("localhost:{}", addr.port())];
        Dashboard {
            client,
            login: kelp_up::tls::new_token(),
            session: kelp_up::tls::new_token(),
            hosts,
            namespace,
            context,
        }
    }

    /// The `Host` of `headers` when it names this listener.
    fn host<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        let host = headers.get(header::HOST)?.to_str().ok()?;
        self.hosts.iter().any(|h| h == host).then_some(host)
    }

    /// Whether `headers` carry this start's session cookie.
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE && kelp_apiserver::same_token(value.as_bytes(), self.session.as_bytes())
            })
    }
}

fn router(dashboard: Arc<Dashboard>) -> axum::Router {
    axum::Router::new()
        .route("/", axum::routing::get(|| async { redirect("/ui/") }))
        .route("/ui", axum::routing::get(|| async { redirect("/ui/") }))
        .route("/ui/login", axum::routing::get(login))
        .route("/ui/", axum::routing::get(asset))
        .route("/ui/{name}", axum::routing::get(asset))
        .fallback(forward)
        .layer(axum::middleware::from_fn_with_state(dashboard.clone(), guard))
        .layer(axum::middleware::map_response(common_headers))
        .with_state(dashboard)
}

/// Refuses a request whose `Host` does not name this listener (DNS rebinding).
async fn guard(State(dashboard): State<Arc<Dashboard>>, request: Request, next: axum::middleware::Next) -> Response {
    if dashboard.host(request.headers()).is_none() {
        return status(StatusCode::FORBIDDEN, "Forbidden", "the Host header does not name this dashboard's listener");
    }
    next.run(request).await
}

/// Headers on every answer: no caching, no referrer (the login URL carries the token).
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// A Kubernetes `Status` answer, which the page handles like the API server's own.
fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

/// `/ui/login?token=`: the printed token sets the session cookie, then the page opens.
async fn login(State(dashboard): State<Arc<Dashboard>>, Query(query): Query<LoginQuery>) -> Response {
    let valid = query.token.is_some_and(|t| kelp_apiserver::same_token(t.as_bytes(), dashboard.login.as_bytes()));
    if !valid {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the login token is missing or not this start's: open the URL `kelp dashboard` printed",
        );
    }
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", dashboard.session);
    let mut response = redirect("/ui/");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The page's files; `index.html` names the start's namespace and context.
async fn asset(State(dashboard): State<Arc<Dashboard>>, request: Request) -> Response {
    let name = request.uri().path().strip_prefix("/ui/").unwrap_or_default();
    let Some(asset) = ASSETS.iter().find(|a| a.path == name) else {
        return status(StatusCode::NOT_FOUND, "NotFound", "no such file in the dashboard");
    };
    let text = if asset.path.is_empty() {
        asset
            .text
            .replace("{{namespace}}", &escape_html(&dashboard.namespace))
            .replace("{{context}}", &escape_html(&dashboard.context))
    } else {
        asset.text.to_owned()
    };
    ([(header::CONTENT_TYPE, asset.content_type), (header::CONTENT_SECURITY_POLICY, PAGE_POLICY)], text).into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The paths forwarded to the API server.
fn is_forwarded(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    under("/api") || under("/apis") || path == "/version" || path == "/metrics"
}

/// Request headers never forwarded: the browser's credentials and origin, hop-by-hop headers,
/// and impersonation (the page acts as the user, no one else).
fn forwarded_request_header(name: &header::HeaderName) -> bool {
    let name = name.as_str();
    !matches!(
        name,
        "host"
            | "cookie"
            | "authorization"
            | "origin"
            | "referer"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "accept-encoding"
            | "proxy-authorization"
    ) && !name.starts_with("sec-")
        && !name.starts_with("impersonate-")
}

/// Response headers never passed back: cookies of the API server or a function, hop-by-hop
/// headers, and the length (the body is streamed).
fn forwarded_response_header(name: &header::HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "set-cookie" | "connection" | "keep-alive" | "transfer-encoding" | "trailer" | "upgrade" | "content-length"
    )
}

/// `/api`, `/apis`, `/version`, `/metrics`: forwarded with the user's credentials once the
/// session, host and origin are checked; everything else is 404.
async fn forward(State(dashboard): State<Arc<Dashboard>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !is_forwarded(parts.uri.path()) {
        return status(StatusCode::NOT_FOUND, "NotFound", "the dashboard is at /ui/");
    }
    if !dashboard.signed_in(&parts.headers) {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "not signed in: open the login URL `kelp dashboard` printed",
        );
    }
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = dashboard.host(&parts.headers).unwrap_or_default();
    let same_origin = origin.is_some_and(|o| o.strip_prefix("http://") == Some(host));
    let fetch_site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if (!safe && !same_origin) || fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return status(StatusCode::FORBIDDEN, "Forbidden", "a request from another origin than the dashboard's");
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("the request body is over {MAX_REQUEST_BODY} bytes"),
            );
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = http::Request::builder().method(parts.method.clone()).uri(path);
    for (name, value) in parts.headers.iter().filter(|(name, _)| forwarded_request_header(name)) {
        outgoing = outgoing.header(name, value);
    }
    let outgoing = match outgoing.body(kube::client::Body::from(body.to_vec())) {
        Ok(request) => request,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &format!("cannot forward the request: {e}")),
    };
    let answer = match dashboard.client.send(outgoing).await {
        Ok(answer) => answer,
        Err(e) => {
            return status(
                StatusCode::BAD_GATEWAY,
                "ServiceUnavailable",
                &format!(
                    "the API server of context {} did not answer: {}",
                    dashboard.context,
                    crate::cmd::error_chain(&e)
                ),
            );
        }
    };
    let (answer, answer_body) = answer.into_parts();
    let mut response = Response::new(Body::new(answer_body));
    *response.status_mut() = answer.status;
    for (name, value) in answer.headers.iter().filter(|(name, _)| forwarded_response_header(name)) {
        response.headers_mut().append(name, value.clone());
    }
    // A function's answer (service proxy) opened in the browser runs in an opaque origin.
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_the_api_only() {
        for path in ["/api", "/api/v1/pods", "/apis/kubeless.io/v1beta1/functions", "/version", "/metrics"] {
            assert!(is_forwarded(path), "{path}");
        }
        for path in ["/apix", "/ui/", "/metrics/x", "/", "/default/hello"] {
            assert!(!is_forwarded(path), "{path}");
        }
    }

    #[test]
    fn credentials_and_impersonation_are_not_forwarded() {
        for name in ["cookie", "authorization", "impersonate-user", "impersonate-group", "sec-fetch-site", "host"] {
            assert!(!forwarded_request_header(&header::HeaderName::from_static(name)), "{name}");
        }
        for name in ["content-type", "accept", "x-custom"] {
            assert!(forwarded_request_header(&header::HeaderName::from_static(name)), "{name}");
        }
        assert!(!forwarded_response_header(&header::SET_COOKIE));
    }

    #[test]
    fn every_asset_is_served_once() {
        let mut paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        assert!(escape_html("<a \"b\">&").eq("&lt;a &quot;b&quot;&gt;&amp;"));
    }

    /// Every file the page names (`import ... from './x.js'`, `src=`/`href=` in index.html) is
    /// carried in the binary.
    #[test]
    fn every_file_the_page_names_is_carried() {
        for asset in ASSETS {
            for marker in ["from './", "src=\"", "href=\""] {
                for rest in asset.text.split(marker).skip(1) {
                    let name = rest.split(['\'', '"']).next().unwrap_or_default();
                    if name.starts_with('#') || name.starts_with("data:") || name.contains("${") {
                        continue;
                    }
                    assert!(ASSETS.iter().any(|a| a.path == name), "{} names {name}, which is not carried", asset.path);
                }
            }
        }
    }
}
