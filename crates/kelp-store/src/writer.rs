//! The writer thread: group commit of every queued write in one redb transaction.
//!
//! One thread owns the database. It takes every request queued at that moment, applies them in
//! order (each sees the effects of the previous ones), writes the result in one transaction,
//! commits it with `Durability::Immediate` (one fsync for the whole batch), then publishes the
//! new state to the in-memory mirror and the watch history, and only then answers each request.
//!
//! A commit that fails (a full disk, an I/O error) fails its batch's requests, and the writer
//! closes the database: redb refuses everything after an I/O error (`PreviousIo`) until it is
//! opened again. The next batch reopens it first (redb recovers the file to its last commit), so
//! once the disk has room again writes work without a restart. If the reopened database holds
//! the failed batch after all (its commit reached the disk before the error), that batch is
//! published as committed; if it holds anything else, the writer refuses every write from then on
//! (the process must be restarted to read the database again).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::{oneshot, watch as notify};

use crate::meta::{self, non_empty};
use crate::store::{DeleteOutcome, HistoryEntry, Objects, Preconditions, RequestSender, Shared};
use crate::watch::EventType;
use crate::{Result, StoreError};

/// Objects by `"<resource>\0<namespace>\0<name>"`, as JSON.
const OBJECTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("objects");
/// Store-wide values: `rv`, the last resourceVersion given out.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The most writes committed in one transaction.
const MAX_BATCH: usize = 4096;

/// A write to perform.
#[derive(Debug)]
pub(crate) enum Op {
    Create { resource: String, object: Value },
    Update { resource: String, object: Value, status_only: bool },
    Delete { resource: String, namespace: String, name: String, preconditions: Preconditions },
}

/// What a write returns.
#[derive(Debug)]
pub(crate) enum Reply {
    Object(Arc<Value>),
    Delete(DeleteOutcome),
}

/// A queued write and where to send its result.
#[derive(Debug)]
pub(crate) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// Owns the writer thread; dropping the last one stops it after the queued writes and closes
/// the database.
#[derive(Debug)]
pub(crate) struct WriterHandle {
    tx: Mutex<Option<RequestSender>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn db_key(resource: &str, namespace: &str, name: &str) -> String {
    format!("{resource}\0{namespace}\0{name}")
}

/// Opens (or creates) the database with its tables.
fn open(path: &Path) -> Result<Database> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(OBJECTS)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(db)
}

/// The last resourceVersion committed to `db`.
fn committed_rv(db: &Database) -> Result<u64> {
    Ok(db.begin_read()?.open_table(META)?.get("rv")?.map(|v| v.value()).unwrap_or(0))
}

/// Opens the database and loads every object and the last resourceVersion.
pub(crate) fn open_database(path: &Path) -> Result<(Database, HashMap<String, Objects>, u64)> {
    let db = open(path)?;
    let mut objects: HashMap<String, Objects> = HashMap::new();
    let head = committed_rv(&db)?;
    let txn = db.begin_read()?;
    for entry in txn.open_table(OBJECTS)?.iter()? {
        let (key, value) = entry?;
        let mut parts = key.value().splitn(3, '\0');
        let (Some(resource), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(StoreError::Database(format!("malformed key {:?}", key.value())));
        };
        let object: Value = serde_json::from_slice(value.value())
            .map_err(|e| StoreError::Database(format!("object {resource} {namespace}/{name}: {e}")))?;
        objects
            .entry(resource.to_owned())
            .or_default()
            .insert((namespace.to_owned(), name.to_owned()), Arc::new(object));
    }
    drop(txn);
    Ok((db, objects, head))
}

impl WriterHandle {
    pub(crate) fn start(
        path: &Path,
        db: Database,
        head: u64,
        shared: Arc<Shared>,
        commits: notify::Sender<u64>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let mut writer =
            Writer { path: path.to_owned(), db: Some(db), failed: None, wedged: None, head, shared, commits };
        let thread = std::thread::Builder::new()
            .name("kelp-store-writer".to_owned())
            .spawn(move || writer.run(&rx))
            .map_err(|e| StoreError::Database(format!("starting the writer thread: {e}")))?;
        Ok(Self { tx: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    pub(crate) fn send(&self, request: Request) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().ok_or(StoreError::Closed)?.send(request).map_err(|_| StoreError::Closed)
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // The thread only ends by its channel closing; a panic there was already reported.
            let _ = thread.join();
        }
    }
}

struct Writer {
    path: PathBuf,
    /// `None` after a failed commit, until the next batch reopens it.
    db: Option<Database>,
    /// The batch whose commit failed last, until the database is reopened.
    failed: Option<Committed>,
    /// Why no write can be accepted any more (the reopened database disagrees with the mirror).
    wedged: Option<String>,
    /// The last committed resourceVersion.
    head: u64,
    shared: Arc<Shared>,
    commits: notify::Sender<u64>,
}

/// The effects of a batch not yet committed: the latest state of every key it touched.
type Overlay = HashMap<(String, String, String), Option<Arc<Value>>>;

/// What a batch changes: its overlay, its events and the resourceVersion it ends at.
struct Committed {
    overlay: Overlay,
    events: Vec<HistoryEntry>,
    rv: u64,
}

struct Batch<'a> {
    shared: &'a Shared,
    overlay: Overlay,
    events: Vec<HistoryEntry>,
    rv: u64,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut requests = vec![first];
            while requests.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            self.process(requests);
        }
    }

    fn process(&mut self, requests: Vec<Request>) {
        if let Err(e) = self.reopen() {
            for request in requests {
                let _ = request.reply.send(Err(StoreError::Database(e.clone())));
            }
            return;
        }
        let mut batch = Batch { shared: &self.shared, overlay: HashMap::new(), events: Vec::new(), rv: self.head };
        let results: Vec<_> = requests.into_iter().map(|r| (batch.apply(r.op), r.reply)).collect();
        let Batch { overlay, events, rv, .. } = batch;
        if !overlay.is_empty() || rv != self.head {
            let batch = Committed { overlay, events, rv };
            if let Err(e) = self.commit(&batch) {
                tracing::error!(error = %e, "kelp-store commit failed; the database is reopened before the next write");
                // redb refuses every operation after an I/O error until it is opened again.
                self.db = None;
                self.failed = Some(batch);
                let message = e.to_string();
                for (result, reply) in results {
                    let outcome = result.and(Err(StoreError::Database(message.clone())));
                    let _ = reply.send(outcome);
                }
                return;
            }
            self.publish(batch);
        }
        for (result, reply) in results {
            // The caller may have gone away (a cancelled request); the write stands regardless.
            let _ = reply.send(result);
        }
    }

    /// Opens the database again after a failed commit; `Err` with the reason writes must fail.
    fn reopen(&mut self) -> Result<(), String> {
        if let Some(reason) = &self.wedged {
            return Err(reason.clone());
        }
        if self.db.is_some() {
            return Ok(());
        }
        let reopened = open(&self.path).and_then(|db| committed_rv(&db).map(|rv| (db, rv)));
        let (db, rv) = reopened.map_err(|e| format!("reopening the database after a failed commit: {e}"))?;
        let failed = self.failed.take();
        match failed {
            _ if rv == self.head => {}
            Some(batch) if batch.rv == rv => {
                tracing::warn!(rv, "kelp-store: the commit reported as failed reached the disk; publishing it");
                self.publish(batch);
            }
            _ => {
                let reason = format!(
                    "the reopened database is at resourceVersion {rv}, the store at {}; restart to read it again",
                    self.head
                );
                tracing::error!("kelp-store: {reason}");
                self.wedged = Some(reason.clone());
                return Err(reason);
            }
        }
        tracing::info!(rv, "kelp-store: database reopened after a failed commit");
        self.db = Some(db);
        Ok(())
    }

    fn commit(&self, batch: &Committed) -> Result<()> {
        let db = self.db.as_ref().ok_or(StoreError::Closed)?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(OBJECTS)?;
            for ((resource, namespace, name), object) in &batch.overlay {
                let key = db_key(resource, namespace, name);
                match object {
                    Some(object) => {
                        let bytes = serde_json::to_vec(object.as_ref())
                            .map_err(|e| StoreError::Database(format!("serializing: {e}")))?;
                        table.insert(key.as_str(), bytes.as_slice())?;
                    }
                    None => {
                        table.remove(key.as_str())?;
                    }
                }
            }
            txn.open_table(META)?.insert("rv", batch.rv)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn publish(&mut self, Committed { overlay, events, rv }: Committed) {
        {
            let mut state = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            for ((resource, namespace, name), object) in overlay {
                let objects = state.objects.entry(resource).or_default();
                match object {
                    Some(object) => {
                        objects.insert((namespace, name), object);
                    }
                    None => {
                        objects.remove(&(namespace, name));
                    }
                }
            }
            let capacity = self.shared.config.history_size;
            state.history.extend(events);
            while state.history.len() > capacity {
                if let Some(old) = state.history.pop_front() {
                    state.floor = old.rv;
                }
            }
            state.head = rv;
        }
        self.head = rv;
        self.commits.send_replace(rv);
    }
}

/// Characters Kubernetes uses for `generateName` suffixes (no vowels, no look-alikes).
const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| NAME_CHARS[usize::from(*b) % NAME_CHARS.len()] as char).collect()
}

impl Batch<'_> {
    fn current(&self, resource: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
        if let Some(object) = self.overlay.get(&key) {
            return object.clone();
        }
        let state = self.shared.read();
        state.objects.get(resource)?.get(&(key.1, key.2)).cloned()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, resource: &str, event: EventType, object: Arc<Value>, previous: Option<Arc<Value>>) {
        let namespace = non_empty(&object, "namespace").unwrap_or_default().to_owned();
        let name = non_empty(&object, "name").unwrap_or_default().to_owned();
        let stored = if event == EventType::Deleted { None } else { Some(object.clone()) };
        self.overlay.insert((resource.to_owned(), namespace.clone(), name.clone()), stored);
        self.events.push(HistoryEntry {
            rv: self.rv,
            resource: Arc::from(resource),
            key: (namespace, name),
            event,
            object,
            previous,
        });
    }

    fn apply(&mut self, op: Op) -> Result<Reply> {
        match op {
            Op::Create { resource, object } => self.create(&resource, object).map(Reply::Object),
            Op::Update { resource, object, status_only } => self.update(&resource, object, status_only),
            Op::Delete { resource, namespace, name, preconditions } => {
                self.delete(&resource, &namespace, &name, &preconditions).map(Reply::Delete)
            }
        }
    }

    fn create(&mut self, resource: &str, mut object: Value) -> Result<Arc<Value>> {
        if !object.is_object() {
            return Err(StoreError::Invalid("the object is not a JSON object".to_owned()));
        }
        let namespace = non_empty(&object, "namespace").unwrap_or_default().to_owned();
        let name = match non_empty(&object, "name") {
            Some(name) => name.to_owned(),
            None => {
                let prefix = non_empty(&object, "generateName")
                    .ok_or_else(|| {
                        StoreError::Invalid("metadata.name or metadata.generateName is required".to_owned())
                    })?
                    .to_owned();
                let mut name = format!("{prefix}{}", random_suffix());
                while self.current(resource, &namespace, &name).is_some() {
                    name = format!("{prefix}{}", random_suffix());
                }
                name
            }
        };
        if self.current(resource, &namespace, &name).is_some() {
            return Err(StoreError::AlreadyExists { resource: resource.to_owned(), namespace, name });
        }
        let rv = self.next_rv();
        let keep_status = !self.shared.config.status_subresources.contains(resource);
        if let Some(map) = object.as_object_mut()
            && !keep_status
        {
            map.remove("status");
        }
        let meta = meta::metadata_mut(&mut object).ok_or_else(|| StoreError::Invalid("not an object".to_owned()))?;
        meta.insert("name".to_owned(), Value::String(name));
        if namespace.is_empty() {
            meta.remove("namespace");
        }
        meta.insert("uid".to_owned(), Value::String(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
        meta.insert("creationTimestamp".to_owned(), Value::String(meta::now_rfc3339()));
        meta.insert("generation".to_owned(), Value::from(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        let object = Arc::new(object);
        self.record(resource, EventType::Added, object.clone(), None);
        Ok(object)
    }

    fn conflict(resource: &str, namespace: &str, name: &str, message: String, precondition: bool) -> StoreError {
        StoreError::Conflict {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message,
            precondition,
        }
    }

    fn update(&mut self, resource: &str, mut object: Value, status_only: bool) -> Result<Reply> {
        if !object.is_object() {
            return Err(StoreError::Invalid("the object is not a JSON object".to_owned()));
        }
        let namespace = non_empty(&object, "namespace").unwrap_or_default().to_owned();
        let name = non_empty(&object, "name")
            .ok_or_else(|| StoreError::Invalid("metadata.name is required".to_owned()))?
            .to_owned();
        let current = self
            .current(resource, &namespace, &name)
            .ok_or_else(|| StoreError::not_found(resource, &namespace, &name))?;
        if let Some(rv) = non_empty(&object, "resourceVersion")
            && Some(rv) != non_empty(&current, "resourceVersion")
        {
            let message = "the object has been modified; please apply your changes to the latest version and try again";
            return Err(Self::conflict(resource, &namespace, &name, message.to_owned(), false));
        }
        if let Some(uid) = non_empty(&object, "uid")
            && Some(uid) != non_empty(&current, "uid")
        {
            let message = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                non_empty(&current, "uid").unwrap_or_default()
            );
            return Err(Self::conflict(resource, &namespace, &name, message, true));
        }

        let mut next = if status_only {
            let mut next = (*current).clone();
            let status = object.as_object_mut().and_then(|m| m.remove("status"));
            if let Some(map) = next.as_object_mut() {
                match status {
                    Some(status) => map.insert("status".to_owned(), status),
                    None => map.remove("status"),
                };
            }
            next
        } else {
            if self.shared.config.status_subresources.contains(resource)
                && let Some(map) = object.as_object_mut()
            {
                match current.get("status") {
                    Some(status) => map.insert("status".to_owned(), status.clone()),
                    None => map.remove("status"),
                };
            }
            let meta =
                meta::metadata_mut(&mut object).ok_or_else(|| StoreError::Invalid("not an object".to_owned()))?;
            let current_meta = current.get("metadata").and_then(Value::as_object);
            for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                match current_meta.and_then(|m| m.get(field)) {
                    Some(v) => meta.insert(field.to_owned(), v.clone()),
                    None => meta.remove(field),
                };
            }
            if namespace.is_empty() {
                meta.remove("namespace");
            }
            if meta::spec_changed(&current, &object) {
                let generation = meta::generation(&current) + 1;
                if let Some(meta) = meta::metadata_mut(&mut object) {
                    meta.insert("generation".to_owned(), Value::from(generation));
                }
            }
            object
        };
        meta::set_resource_version(&mut next, meta::resource_version_of(&current).unwrap_or(0));
        if meta::is_deleting(&next) && !meta::has_finalizers(&next) {
            let rv = self.next_rv();
            meta::set_resource_version(&mut next, rv);
            let object = Arc::new(next);
            self.record(resource, EventType::Deleted, object.clone(), Some(current));
            return Ok(Reply::Delete(DeleteOutcome::Deleted(object)));
        }
        if meta::same_ignoring_rv(&next, &current) {
            return Ok(Reply::Object(current));
        }
        let rv = self.next_rv();
        meta::set_resource_version(&mut next, rv);
        let object = Arc::new(next);
        self.record(resource, EventType::Modified, object.clone(), Some(current));
        Ok(Reply::Object(object))
    }

    fn delete(&mut self, resource: &str, namespace: &str, name: &str, pre: &Preconditions) -> Result<DeleteOutcome> {
        let current =
            self.current(resource, namespace, name).ok_or_else(|| StoreError::not_found(resource, namespace, name))?;
        if let Some(uid) = pre.uid.as_deref().filter(|u| !u.is_empty())
            && Some(uid) != non_empty(&current, "uid")
        {
            let message = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                non_empty(&current, "uid").unwrap_or_default()
            );
            return Err(Self::conflict(resource, namespace, name, message, true));
        }
        if let Some(rv) = pre.resource_version.as_deref().filter(|r| !r.is_empty())
            && Some(rv) != non_empty(&current, "resourceVersion")
        {
            let message = format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                non_empty(&current, "resourceVersion").unwrap_or_default()
            );
            return Err(Self::conflict(resource, namespace, name, message, true));
        }
        if meta::has_finalizers(&current) {
            if meta::is_deleting(&current) {
                return Ok(DeleteOutcome::Pending(current));
            }
            let mut next = (*current).clone();
            let generation = meta::generation(&current) + 1;
            let rv = self.next_rv();
            if let Some(meta) = meta::metadata_mut(&mut next) {
                meta.insert("deletionTimestamp".to_owned(), Value::String(meta::now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".to_owned(), Value::from(0));
                meta.insert("generation".to_owned(), Value::from(generation));
                meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
            }
            let object = Arc::new(next);
            self.record(resource, EventType::Modified, object.clone(), Some(current));
            return Ok(DeleteOutcome::Pending(object));
        }
        let mut last = (*current).clone();
        let rv = self.next_rv();
        meta::set_resource_version(&mut last, rv);
        let object = Arc::new(last);
        self.record(resource, EventType::Deleted, object.clone(), Some(current));
        Ok(DeleteOutcome::Deleted(object))
    }
}
