//! Objects with Kubernetes semantics in an embedded, transactional, fsync'd database.
//!
//! A [`Store`] keeps JSON objects ([`serde_json::Value`]) keyed by a *resource key* (such as
//! `kubeless.io/functions` or `/namespaces`: any string naming a collection), a namespace (`""`
//! for cluster-scoped objects) and a name, and gives them what a Kubernetes API server gives its
//! objects:
//!
//! - system metadata: `metadata.uid` (UUID v4), `metadata.resourceVersion` (one global counter
//!   shared by every resource, persisted, a decimal string in JSON), `metadata.creationTimestamp`
//!   (RFC 3339, seconds, UTC) and `metadata.generation` (1 on create, bumped when anything outside
//!   `metadata` and `status` changes);
//! - optimistic concurrency: an update carrying a `metadata.resourceVersion` other than the stored
//!   one fails with [`StoreError::Conflict`];
//! - the status subresource ([`StoreConfig::status_subresource`]): [`Store::update_status`]
//!   changes only `status`, and main-resource writes keep the stored `status`;
//! - finalizers: deleting an object whose `metadata.finalizers` is not empty only sets
//!   `metadata.deletionTimestamp`; the update that empties the finalizers removes it;
//! - label and field selectors ([`Selector`]);
//! - paged lists ([`Store::list_page`]) whose pages all read the state of the first one, for as
//!   long as the history window reaches back to it;
//! - watches ([`Store::watch`]) resumable from any resourceVersion still in an in-memory history
//!   window, with [`StoreError::Gone`] for older ones.
//!
//! **Durability.** Every write that returns `Ok` has been committed by the database with an fsync
//! (redb, `Durability::Immediate`). Writes are funnelled to one writer thread that applies every
//! queued write in one transaction and commits once (*group commit*), so concurrent writers share
//! fsyncs. Writes are linearizable; reads are served from an in-memory mirror of committed state
//! that is updated before a write is acknowledged.

mod error;
mod meta;
mod selector;
mod store;
mod watch;
mod writer;

pub use error::StoreError;
pub use meta::{now_rfc3339, resource_version_of};
pub use selector::{FieldSelector, LabelSelector, Selector, SelectorError};
pub use store::{DeleteOutcome, ListCursor, ObjectList, Page, Preconditions, Store, StoreConfig};
pub use watch::{EventType, Watch, WatchEvent};

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
