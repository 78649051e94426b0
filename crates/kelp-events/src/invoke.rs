//! What the engine needs from its host: a way to call a function. `kelp up` calls its engine
//! directly; a cluster consumer calls the function's Service.

use std::future::Future;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

/// Bytes of a function's answer an [`Answer`] keeps: more than the 200 characters (of up to 4
/// bytes each) quoted in a failure reason. The rest of the body is never read.
pub const ANSWER_KEPT: usize = 1024;

/// A function's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Its HTTP status: only 2xx counts as delivered.
    pub status: http::StatusCode,
    /// The start of its body, at most [`ANSWER_KEPT`] bytes (quoted in failure reasons).
    pub body: Bytes,
}

impl Answer {
    /// The answer with `status` whose body is `body` (a body's data frames): at most
    /// [`ANSWER_KEPT`] bytes of it are read, and the rest is dropped unread (with `body`, and so
    /// with its connection), so a function answering gigabytes costs nothing. An error while
    /// reading that start is an error of the call.
    pub async fn read<E: std::fmt::Display>(
        status: http::StatusCode,
        body: impl Stream<Item = Result<Bytes, E>>,
    ) -> Result<Answer, String> {
        let mut body = std::pin::pin!(body);
        let mut kept = Vec::new();
        while kept.len() < ANSWER_KEPT {
            match body.next().await {
                None => break,
                Some(Err(e)) => return Err(format!("reading the answer of the function: {e}")),
                Some(Ok(data)) => {
                    let room = ANSWER_KEPT - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
        Ok(Answer { status, body: Bytes::from(kept) })
    }
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
