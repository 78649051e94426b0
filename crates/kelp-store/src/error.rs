//! The errors of store operations.

/// Why a store operation failed.
///
/// The variants map one to one onto Kubernetes API errors: `NotFound` → 404, `AlreadyExists` and
/// `Conflict` → 409, `Invalid` → 422 (or 400), `Gone` → 410, the rest → 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object of that resource, namespace and name.
    #[error("{resource} {namespace}/{name} not found")]
    NotFound {
        /// The resource key.
        resource: String,
        /// The namespace (`""` when cluster-scoped).
        namespace: String,
        /// The name.
        name: String,
    },
    /// A create found an object with the same key.
    #[error("{resource} {namespace}/{name} already exists")]
    AlreadyExists {
        /// The resource key.
        resource: String,
        /// The namespace (`""` when cluster-scoped).
        namespace: String,
        /// The name.
        name: String,
    },
    /// A precondition failed: the `resourceVersion` (or `uid`) given is not the stored one.
    #[error("conflict on {resource} {namespace}/{name}: {message}")]
    Conflict {
        /// The resource key.
        resource: String,
        /// The namespace (`""` when cluster-scoped).
        namespace: String,
        /// The name.
        name: String,
        /// What differed, e.g. `the object has been modified`.
        message: String,
        /// Whether the precondition was an explicit one (a delete's `preconditions`, or a `uid`),
        /// rather than the object's own `metadata.resourceVersion`.
        precondition: bool,
    },
    /// The object cannot be stored as given (no `metadata.name`, not a JSON object, ...).
    #[error("invalid object: {0}")]
    Invalid(String),
    /// A watch asked for a resourceVersion older than the history kept in memory (or from
    /// before the last restart): the client must list again.
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// The resourceVersion asked for.
        requested: u64,
        /// The oldest resourceVersion a watch can start from now.
        oldest: u64,
    },
    /// The database failed; the write was not acknowledged (and is not visible, unless the
    /// database, reopened after the failure, shows that its commit reached the disk after all).
    #[error("database error: {0}")]
    Database(String),
    /// The store's writer has stopped (the store is shutting down or a previous commit failed
    /// fatally).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    pub(crate) fn not_found(resource: &str, namespace: &str, name: &str) -> Self {
        Self::NotFound { resource: resource.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        Self::Database(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Database(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
