//! How `kelp-triggers` calls a function: a `POST` to its Service (`http://<fn>.<ns>.svc:<port>`
//! unless `--function-url` says otherwise), bounded by the function's own timeout.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kelp_api::Function;
use kelp_events::{Answer, Invoke};

/// How long connecting to a function's Service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to a function's timeout for the whole call (the runtime answers 408 at its timeout).
const CALL_MARGIN: Duration = Duration::from_secs(10);
/// The call timeout of a function whose `spec.timeout` cannot be read (Kubeless's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// Where a function is called, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    url: String,
    timeout: Duration,
}

/// Calls functions at their Services' URLs, known from the Functions watched.
#[derive(Clone, Debug)]
pub struct ServiceInvoker {
    client: Client<HttpConnector, Full<Bytes>>,
    template: String,
    endpoints: Arc<RwLock<HashMap<(String, String), Endpoint>>>,
}

impl ServiceInvoker {
    /// An invoker of the URLs made from `template` (`{name}`, `{namespace}`, `{port}`; see
    /// `kelp_plan::FUNCTION_URL`).
    pub fn new(template: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        ServiceInvoker {
            client: Client::builder(TokioExecutor::new()).build(connector),
            template: template.to_owned(),
            endpoints: Arc::default(),
        }
    }

    /// Learns where `functions` are (and forgets the others).
    pub fn set_functions<'a>(&self, functions: impl IntoIterator<Item = &'a Function>) {
        let endpoints = functions
            .into_iter()
            .map(|function| {
                let key = (
                    function.metadata.namespace.clone().unwrap_or_default(),
                    function.metadata.name.clone().unwrap_or_default(),
                );
                let timeout = function.spec.timeout_seconds().map_or(DEFAULT_TIMEOUT, Duration::from_secs);
                let url = kelp_plan::function_url(&self.template, function);
                (key, Endpoint { url, timeout: timeout.saturating_add(CALL_MARGIN) })
            })
            .collect();
        *self.endpoints.write().unwrap_or_else(PoisonError::into_inner) = endpoints;
    }

    fn endpoint(&self, namespace: &str, function: &str) -> Option<Endpoint> {
        let endpoints = self.endpoints.read().unwrap_or_else(PoisonError::into_inner);
        endpoints.get(&(namespace.to_owned(), function.to_owned())).cloned()
    }
}

impl Invoke for ServiceInvoker {
    fn invoke(
        &self,
        namespace: &str,
        function: &str,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<Answer, String>> + Send {
        let endpoint = self.endpoint(namespace, function);
        let client = self.client.clone();
        let name = format!("{namespace}/{function}");
        async move {
            let endpoint = endpoint.ok_or_else(|| format!("function {name} not found"))?;
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let url = format!("{}{}", endpoint.url.trim_end_matches('/'), path);
            parts.uri = url.parse().map_err(|e| format!("function {name}: bad URL {url}: {e}"))?;
            let call = async {
                let response = client
                    .request(http::Request::from_parts(parts, Full::new(body)))
                    .await
                    // `{:#}`: the error and its sources (hyper's own message alone says little).
                    .map_err(|e| format!("calling {url}: {:#}", anyhow::Error::new(e)))?;
                let status = response.status();
                Answer::read(status, response.into_body().into_data_stream()).await
            };
            tokio::time::timeout(endpoint.timeout, call)
                .await
                .map_err(|_| format!("calling {url}: no answer in {} s", endpoint.timeout.as_secs()))?
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A hostile function: it answers 500 with a body that never ends. The invoker keeps the
    /// start of it and returns at once, without reading (or buffering) the rest.
    #[tokio::test]
    async fn an_endless_answer_is_cut_to_its_start() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n").await;
            let chunk = format!("10000\r\n{}\r\n", "y".repeat(0x10000));
            while socket.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let invoker = ServiceInvoker::new(&format!("http://{address}"));
        let function: Function = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "endless", "namespace": "default"},
            "spec": {"runtime": "python3.8", "handler": "f.f", "function": "", "timeout": "1"},
        }))
        .unwrap();
        invoker.set_functions([&function]);
        let request = http::Request::post("/").body(Bytes::from_static(b"{}")).unwrap();
        let answer = invoker.invoke("default", "endless", request).await.expect("an answer, not a timeout");
        assert_eq!(answer.status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.body.len(), kelp_events::ANSWER_KEPT);
        assert!(answer.body.iter().all(|b| *b == b'y'));
    }

    fn function(timeout: &str) -> Function {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "f", "namespace": "ns"},
            "spec": {"handler": "h.f", "runtime": "python3.8", "timeout": timeout},
        }))
        .unwrap()
    }

    #[test]
    fn a_timeout_stored_before_its_bound_falls_back_to_the_default() {
        let invoker = ServiceInvoker::new(kelp_plan::FUNCTION_URL);
        // Stored before validation bounded it (or written straight to etcd): this once
        // overflowed `Duration` on the task that learns the functions.
        invoker.set_functions([&function("18446744073709551615")]);
        assert_eq!(invoker.endpoint("ns", "f").unwrap().timeout, DEFAULT_TIMEOUT + CALL_MARGIN);
        invoker.set_functions([&function("60")]);
        assert_eq!(invoker.endpoint("ns", "f").unwrap().timeout, Duration::from_secs(70));
    }
}
