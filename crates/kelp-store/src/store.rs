//! The [`Store`]: the public operations, the in-memory mirror of committed state and the
//! history of events that watches read.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, mpsc};

use serde_json::Value;
use tokio::sync::{oneshot, watch as notify};

use crate::selector::Selector;
use crate::watch::{EventType, Watch};
use crate::writer::{Op, Reply, Request, WriterHandle};
use crate::{Result, StoreError};

/// Settings of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// How many events the in-memory history keeps for watches to resume from (default 10,000).
    pub history_size: usize,
    /// The resource keys that have a status subresource.
    pub status_subresources: BTreeSet<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { history_size: 10_000, status_subresources: BTreeSet::new() }
    }
}

impl StoreConfig {
    /// Declares that `resource` has a status subresource: [`Store::update_status`] changes only
    /// its `status`, creates drop `status`, and [`Store::update`] keeps the stored `status`.
    pub fn status_subresource(mut self, resource: impl Into<String>) -> Self {
        self.status_subresources.insert(resource.into());
        self
    }

    /// Sets [`StoreConfig::history_size`] (at least 1).
    pub fn history_size(mut self, events: usize) -> Self {
        self.history_size = events.max(1);
        self
    }
}

/// Preconditions of a delete (Kubernetes `DeleteOptions.preconditions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's `metadata.uid` must be this.
    pub uid: Option<String>,
    /// The object's `metadata.resourceVersion` must be this.
    pub resource_version: Option<String>,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome {
    /// The object is gone; this is its last state (with the resourceVersion of the deletion).
    Deleted(Arc<Value>),
    /// The object has finalizers: it is only marked (`metadata.deletionTimestamp`) and stays
    /// until an update empties its finalizers. This is its new state.
    Pending(Arc<Value>),
}

impl DeleteOutcome {
    /// The object, deleted or marked.
    pub fn object(&self) -> &Arc<Value> {
        match self {
            Self::Deleted(o) | Self::Pending(o) => o,
        }
    }
}

/// The result of a list: the matching objects, sorted by namespace then name, and the
/// resourceVersion of the state they were read from.
#[derive(Clone, Debug, Default)]
pub struct ObjectList {
    /// The objects.
    pub items: Vec<Arc<Value>>,
    /// The store's resourceVersion when listed (a watch from it misses nothing).
    pub resource_version: u64,
}

/// Objects of one resource, by (namespace, name).
pub(crate) type Objects = BTreeMap<(String, String), Arc<Value>>;

/// One committed change, kept for watches.
#[derive(Clone, Debug)]
pub(crate) struct HistoryEntry {
    /// The resourceVersion the change got.
    pub rv: u64,
    /// The resource key.
    pub resource: Arc<str>,
    /// The object's namespace.
    pub namespace: String,
    /// What happened.
    pub event: EventType,
    /// The object after the change (for a deletion: its last state).
    pub object: Arc<Value>,
    /// The object before the change (`None` for a creation).
    pub previous: Option<Arc<Value>>,
}

/// Committed state, as readers see it.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Every object, by resource key.
    pub objects: HashMap<String, Objects>,
    /// The latest events, oldest first, in resourceVersion order.
    pub history: VecDeque<HistoryEntry>,
    /// Every event with a resourceVersion above this is in `history`.
    pub floor: u64,
    /// The resourceVersion of the last committed write.
    pub head: u64,
}

/// What both the store handles and the writer thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: RwLock<State>,
    pub config: StoreConfig,
    /// Receives the head resourceVersion after every commit; closed when the writer stops.
    pub commits: notify::Receiver<u64>,
}

impl Shared {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A handle to an open store; cheap to clone. The database closes when the last handle is
/// dropped (after the writes already queued are committed).
#[derive(Clone, Debug)]
pub struct Store {
    shared: Arc<Shared>,
    writer: Arc<WriterHandle>,
}

impl Store {
    /// Opens (or creates) the store in the database file `path` (its parent directories are
    /// created), loads every object into memory and starts the writer thread.
    ///
    /// Watches cannot resume from before this point: the history starts empty, and a watch from
    /// an older resourceVersion gets [`StoreError::Gone`].
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", parent.display())))?;
        }
        let (db, objects, head) = crate::writer::open_database(path)?;
        let state = State { objects, history: VecDeque::new(), floor: head, head };
        let (commits_tx, commits) = notify::channel(head);
        let shared = Arc::new(Shared { state: RwLock::new(state), config, commits });
        let writer = WriterHandle::start(db, head, shared.clone(), commits_tx)?;
        Ok(Self { shared, writer: Arc::new(writer) })
    }

    async fn submit(&self, op: Op) -> Result<Reply> {
        let (reply, rx) = oneshot::channel();
        self.writer.send(Request { op, reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates an object. Its `metadata.namespace` (absent: `""`) and `metadata.name` are its key;
    /// with no name, a name is made from `metadata.generateName` plus 5 random characters. The
    /// store sets `uid`, `resourceVersion`, `creationTimestamp` and `generation` (1), and drops
    /// `deletionTimestamp` (and `status` for resources with a status subresource).
    ///
    /// Errors: [`StoreError::AlreadyExists`], [`StoreError::Invalid`] (not an object, no name).
    pub async fn create(&self, resource: &str, object: Value) -> Result<Arc<Value>> {
        match self.submit(Op::Create { resource: resource.to_owned(), object }).await? {
            Reply::Object(o) => Ok(o),
            Reply::Delete(d) => Ok(d.object().clone()),
        }
    }

    /// Replaces an object (the main resource). A non-empty `metadata.resourceVersion` must equal
    /// the stored one ([`StoreError::Conflict`] otherwise), and so must a non-empty `metadata.uid`.
    /// System metadata (`uid`, `creationTimestamp`, `deletionTimestamp`, `generation`) is kept
    /// from the stored object; `generation` is bumped when anything outside `metadata` and
    /// `status` changes; for resources with a status subresource the stored `status` is kept.
    /// An update that changes nothing writes nothing and returns the stored object. An update
    /// that empties the finalizers of an object being deleted removes it (and returns its last
    /// state).
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Conflict`], [`StoreError::Invalid`].
    pub async fn update(&self, resource: &str, object: Value) -> Result<Arc<Value>> {
        match self.submit(Op::Update { resource: resource.to_owned(), object, status_only: false }).await? {
            Reply::Object(o) => Ok(o),
            Reply::Delete(d) => Ok(d.object().clone()),
        }
    }

    /// Replaces only the `status` of an object (the status subresource); everything else is kept
    /// from the stored object. Same preconditions as [`Store::update`]; `generation` is not
    /// bumped.
    pub async fn update_status(&self, resource: &str, object: Value) -> Result<Arc<Value>> {
        match self.submit(Op::Update { resource: resource.to_owned(), object, status_only: true }).await? {
            Reply::Object(o) => Ok(o),
            Reply::Delete(d) => Ok(d.object().clone()),
        }
    }

    /// Deletes an object, or only marks it ([`DeleteOutcome::Pending`]) when it has finalizers:
    /// `metadata.deletionTimestamp` is set (with `deletionGracePeriodSeconds: 0`) once, and the
    /// object goes away when an update empties `metadata.finalizers`.
    ///
    /// Errors: [`StoreError::NotFound`], [`StoreError::Conflict`] (a precondition failed).
    pub async fn delete(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        preconditions: Preconditions,
    ) -> Result<DeleteOutcome> {
        let op = Op::Delete {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            preconditions,
        };
        match self.submit(op).await? {
            Reply::Delete(d) => Ok(d),
            Reply::Object(o) => Ok(DeleteOutcome::Deleted(o)),
        }
    }

    /// One object.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Arc<Value>> {
        let state = self.shared.read();
        state
            .objects
            .get(resource)
            .and_then(|objects| objects.get(&(namespace.to_owned(), name.to_owned())))
            .cloned()
            .ok_or_else(|| StoreError::not_found(resource, namespace, name))
    }

    /// The objects of `resource` in `namespace` (every namespace when `None`) that `selector`
    /// matches, sorted by namespace then name.
    pub fn list(&self, resource: &str, namespace: Option<&str>, selector: &Selector) -> ObjectList {
        let state = self.shared.read();
        let items = match state.objects.get(resource) {
            None => Vec::new(),
            Some(objects) => {
                let matching = |o: &&Arc<Value>| selector.matches(o);
                match namespace {
                    Some(ns) => {
                        let start = (ns.to_owned(), String::new());
                        objects
                            .range(start..)
                            .take_while(|((n, _), _)| n == ns)
                            .map(|(_, o)| o)
                            .filter(matching)
                            .cloned()
                            .collect()
                    }
                    None => objects.values().filter(matching).cloned().collect(),
                }
            }
        };
        ObjectList { items, resource_version: state.head }
    }

    /// Whether any object of `resource` exists in `namespace`.
    pub fn contains_namespace(&self, resource: &str, namespace: &str) -> bool {
        let state = self.shared.read();
        state.objects.get(resource).is_some_and(|objects| {
            objects.range((namespace.to_owned(), String::new())..).next().is_some_and(|((n, _), _)| n == namespace)
        })
    }

    /// Watches `resource` (in `namespace`, or everywhere when `None`) for changes matching
    /// `selector`.
    ///
    /// - `from` absent or 0: first a synthetic [`EventType::Added`] for every matching object,
    ///   then every change after that state.
    /// - `from` = N: every change with a resourceVersion above N. N must still be in the
    ///   history window ([`StoreConfig::history_size`] events, kept since the store was opened);
    ///   otherwise [`StoreError::Gone`].
    ///
    /// As with Kubernetes, a modification that makes an object stop (start) matching the
    /// selector is delivered as [`EventType::Deleted`] ([`EventType::Added`]).
    pub fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        selector: Selector,
        from: Option<u64>,
    ) -> Result<Watch> {
        Watch::start(self.shared.clone(), resource, namespace, selector, from.filter(|rv| *rv > 0))
    }

    /// The resourceVersion of the last committed write.
    pub fn resource_version(&self) -> u64 {
        self.shared.read().head
    }

    /// The oldest resourceVersion a watch can start from now.
    pub fn oldest_resource_version(&self) -> u64 {
        self.shared.read().floor
    }

    /// Whether `resource` has a status subresource (see [`StoreConfig::status_subresource`]).
    pub fn has_status_subresource(&self, resource: &str) -> bool {
        self.shared.config.status_subresources.contains(resource)
    }
}

/// The sender side, for [`WriterHandle`].
pub(crate) type RequestSender = mpsc::Sender<Request>;
