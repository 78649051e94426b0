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
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Answer { status, body })
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
