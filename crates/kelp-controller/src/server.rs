//! `/healthz` and `/metrics` over HTTP.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;

/// The content type of the OpenMetrics text exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes: `/metrics` answers what `render` gives (an OpenMetrics text ending in `# EOF`).
pub fn router<F>(render: F) -> Router
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/metrics",
        get(move || {
            let text = render();
            async move { ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response() }
        }),
    )
}

/// Serves [`router`] on `addr` until the process ends.
pub async fn serve<F>(addr: SocketAddr, render: F) -> std::io::Result<()>
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    axum::serve(listener, router(render)).await
}
