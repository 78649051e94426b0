//! The [`Store`]: the public operations, the in-memory mirror of committed state and the
//! history of events that watches read.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::{Bound, RangeBounds};
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
    /// The resourceVersion of the state listed (a watch from it misses nothing).
    pub resource_version: u64,
    /// When the page was cut short by its limit: where the next page starts.
    pub next: Option<ListCursor>,
    /// How many matching objects come after this page.
    pub remaining: usize,
}

/// Where a paged list goes on: after the object `after` ((namespace, name)), in the state at
/// `resource_version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// The state to read: the one the first page was read from, so that the pages of one list
    /// are consistent; `None` reads the latest state (after [`StoreError::Gone`], knowingly
    /// inconsistent).
    pub resource_version: Option<u64>,
    /// The key of the last object already returned.
    pub after: (String, String),
}

/// Which part of a list to read ([`Store::list_page`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// At most this many objects (`None` or 0: all).
    pub limit: Option<usize>,
    /// Where the previous page ended (`None`: from the start, in the latest state).
    pub cursor: Option<ListCursor>,
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
    /// The object's (namespace, name).
    pub key: (String, String),
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

/// Creates the database file owner-only (0600) before redb opens it, or makes an existing one so:
/// it holds every object, Secrets among them. redb fills an empty file with a new database.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in the database file `path` (owner-only, 0600; its missing
    /// parent directories are created 0700), loads every object into memory and starts the writer thread.
    ///
    /// Watches cannot resume from before this point: the history starts empty, and a watch from
    /// an older resourceVersion gets [`StoreError::Gone`].
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
                .create(parent)
                .map_err(|e| StoreError::Database(format!("creating {}: {e}", parent.display())))?;
        }
        private_file(path).map_err(|e| StoreError::Database(format!("creating {}: {e}", path.display())))?;
        let (db, objects, head) = crate::writer::open_database(path)?;
        let state = State { objects, history: VecDeque::new(), floor: head, head };
        let (commits_tx, commits) = notify::channel(head);
        let shared = Arc::new(Shared { state: RwLock::new(state), config, commits });
        let writer = WriterHandle::start(path, db, head, shared.clone(), commits_tx)?;
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
        let objects = state.objects.get(resource);
        let view = objects.into_iter().flat_map(|o| o.range(start_of(namespace, None)));
        select(view, namespace, selector, None, state.head)
    }

    /// One page of [`Store::list`]: at most `page.limit` matching objects after `page.cursor`,
    /// with the cursor of the next page and how many objects remain. Every page of a list reads
    /// the state of its first page (as Kubernetes lists from etcd do), rebuilt from the current
    /// objects and the history of changes since.
    ///
    /// Errors: [`StoreError::Gone`] when the cursor's state is older than the history window
    /// (the list must start again, or go on from the latest state); [`StoreError::Invalid`] for a
    /// cursor from a resourceVersion the store never had.
    pub fn list_page(
        &self,
        resource: &str,
        namespace: Option<&str>,
        selector: &Selector,
        page: &Page,
    ) -> Result<ObjectList> {
        let state = self.shared.read();
        let after = page.cursor.as_ref().map(|c| &c.after);
        let start = start_of(namespace, after);
        let objects = state.objects.get(resource);
        let current = objects.into_iter().flat_map(|o| o.range(start.clone()));
        let Some(rv) = page.cursor.as_ref().and_then(|c| c.resource_version) else {
            return Ok(select(current, namespace, selector, page.limit, state.head));
        };
        if rv < state.floor {
            return Err(StoreError::Gone { requested: rv, oldest: state.floor });
        }
        if rv > state.head {
            return Err(StoreError::Invalid(format!("resource version {rv} is newer than the store ({})", state.head)));
        }
        // The state at `rv`: the current objects with every later change undone (the oldest
        // change of a key after `rv` knows its state at `rv`).
        let mut past: BTreeMap<&(String, String), &Arc<Value>> = current.collect();
        let first_after = state.history.partition_point(|e| e.rv <= rv);
        let mut undone = BTreeSet::new();
        for entry in state.history.range(first_after..).filter(|e| *e.resource == *resource) {
            if !undone.insert(&entry.key) || !start.contains(&entry.key) {
                continue;
            }
            match &entry.previous {
                Some(previous) => past.insert(&entry.key, previous),
                None => past.remove(&entry.key),
            };
        }
        Ok(select(past.into_iter(), namespace, selector, page.limit, rv))
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

/// A range of (namespace, name) keys.
type KeyRange = (Bound<(String, String)>, Bound<(String, String)>);

/// The keys a list reads: those of `namespace` (all when `None`), after `after` when given.
fn start_of(namespace: Option<&str>, after: Option<&(String, String)>) -> KeyRange {
    let first = namespace.map(|ns| (ns.to_owned(), String::new()));
    let lower = match (after, first) {
        (Some(after), Some(first)) if *after < first => Bound::Included(first),
        (Some(after), _) => Bound::Excluded(after.clone()),
        (None, Some(first)) => Bound::Included(first),
        (None, None) => Bound::Unbounded,
    };
    (lower, Bound::Unbounded)
}

/// The objects of `view` (in key order, from the start of the list) in `namespace` that
/// `selector` matches: the first `limit`, and where the rest starts.
fn select<'a>(
    view: impl Iterator<Item = (&'a (String, String), &'a Arc<Value>)>,
    namespace: Option<&str>,
    selector: &Selector,
    limit: Option<usize>,
    resource_version: u64,
) -> ObjectList {
    let mut matching =
        view.take_while(|((ns, _), _)| namespace.is_none_or(|n| n == ns)).filter(|(_, o)| selector.matches(o));
    let items: Vec<(&(String, String), &Arc<Value>)> =
        matching.by_ref().take(limit.filter(|l| *l > 0).unwrap_or(usize::MAX)).collect();
    let remaining = matching.count();
    let next = (remaining > 0).then(|| ListCursor {
        resource_version: Some(resource_version),
        after: items.last().map(|(k, _)| (*k).clone()).unwrap_or_default(),
    });
    ObjectList { items: items.into_iter().map(|(_, o)| o.clone()).collect(), resource_version, next, remaining }
}

/// The sender side, for [`WriterHandle`].
pub(crate) type RequestSender = mpsc::Sender<Request>;
