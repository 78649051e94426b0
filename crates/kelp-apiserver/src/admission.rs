//! The extension point for checks only the embedding server can make, as admission webhooks
//! make them on a cluster.

use kelp_api::ValidationErrors;
use serde_json::Value;

use crate::kinds::Kind;

/// A check of objects being created or updated, beyond their kind's own validation: what only
/// the server embedding the API knows (for `kelp up`, which interpreters this machine has).
///
/// Called with the object as it will be stored (defaulted and validated), for creates, updates,
/// patches and server-side applies, dry runs included; never for writes to the status
/// subresource. Implementations must be cheap and must not block.
pub trait Admission: Send + Sync + 'static {
    /// `Err` refuses the write: 422 Invalid with the field errors, as for a validation failure.
    /// `Ok` admits it, with warnings for the client: `Warning` headers, which kubectl and the
    /// `kelp` CLI print.
    fn admit(&self, kind: &Kind, object: &Value) -> Result<Vec<String>, ValidationErrors>;
}
