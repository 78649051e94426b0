//! What the engine needs from its host: a way to call a function. `kelp up` calls its engine
//! directly; a cluster consumer calls the function's Service.

use std::future::Future;

use bytes::Bytes;

/// A function's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Its HTTP status: only 2xx counts as delivered.
    pub status: http::StatusCode,
    /// Its body (the start of it is quoted in failure reasons).
    pub body: Bytes,
}

/// Calls functions.
pub trait Invoke: Send + Sync + 'static {
    /// Calls the function `namespace/function` with `request` (a `POST /` with the event
    /// headers), and returns its answer, or why there is none (the function is not there, the
    /// connection failed, ...): either way a failure is retried.
    fn invoke(
        &self,
        namespace: &str,
        function: &str,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<Answer, String>> + Send;
}
