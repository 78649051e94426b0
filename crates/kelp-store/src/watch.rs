//! Watches: a stream of changes to one resource, read from the store's event history.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::watch as notify;

use crate::selector::Selector;
use crate::store::{HistoryEntry, Shared};
use crate::{Result, StoreError};

/// The type of a [`WatchEvent`], as in the Kubernetes watch protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The object was created (or, for a watch with a selector, started matching; or, at the
    /// start of a watch without a resourceVersion, exists).
    Added,
    /// The object changed.
    Modified,
    /// The object was deleted (or stopped matching the selector).
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change seen by a [`Watch`].
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub event: EventType,
    /// The object after the change; for [`EventType::Deleted`], its last state with the
    /// resourceVersion of the deletion.
    pub object: Arc<Value>,
}

/// A watch on one resource ([`crate::Store::watch`]). Read it with [`Watch::next`] or turn it
/// into a [`Stream`] with [`Watch::into_stream`]. It ends (`None`) when the store closes, and
/// yields [`StoreError::Gone`] (then ends) if it falls further behind than the history window.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    resource: String,
    namespace: Option<String>,
    selector: Selector,
    /// Every event up to this resourceVersion has been looked at.
    cursor: u64,
    pending: VecDeque<WatchEvent>,
    commits: notify::Receiver<u64>,
    done: bool,
}

impl Watch {
    pub(crate) fn start(
        shared: Arc<Shared>,
        resource: &str,
        namespace: Option<&str>,
        selector: Selector,
        from: Option<u64>,
    ) -> Result<Self> {
        let mut commits = shared.commits.clone();
        commits.borrow_and_update();
        let mut pending = VecDeque::new();
        let cursor = {
            let state = shared.read();
            match from {
                Some(rv) if rv < state.floor => return Err(StoreError::Gone { requested: rv, oldest: state.floor }),
                Some(rv) => rv,
                None => {
                    if let Some(objects) = state.objects.get(resource) {
                        let in_scope = |ns: &String| namespace.is_none_or(|want| want == ns);
                        for ((ns, _), object) in objects {
                            if in_scope(ns) && selector.matches(object) {
                                pending.push_back(WatchEvent { event: EventType::Added, object: object.clone() });
                            }
                        }
                    }
                    state.head
                }
            }
        };
        Ok(Self {
            shared,
            resource: resource.to_owned(),
            namespace: namespace.map(str::to_owned),
            selector,
            cursor,
            pending,
            commits,
            done: false,
        })
    }

    /// The resourceVersion up to which every change has been returned by [`Watch::next`] (a valid
    /// resourceVersion for a Kubernetes `BOOKMARK` event), or `None` while events already read
    /// from the history (or the initial `ADDED` events) are still waiting to be returned.
    pub fn progress(&self) -> Option<u64> {
        self.pending.is_empty().then_some(self.cursor)
    }

    fn convert(&self, entry: &HistoryEntry) -> Option<WatchEvent> {
        if *entry.resource != *self.resource || self.namespace.as_ref().is_some_and(|ns| *ns != entry.key.0) {
            return None;
        }
        let now = self.selector.matches(&entry.object);
        let before = entry.previous.as_ref().is_some_and(|p| self.selector.matches(p));
        let event = match entry.event {
            EventType::Added if now => EventType::Added,
            EventType::Deleted if before || now => EventType::Deleted,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            _ => return None,
        };
        Some(WatchEvent { event, object: entry.object.clone() })
    }

    /// Reads new history entries into `pending`.
    fn poll_history(&mut self) -> Result<()> {
        let state = self.shared.read();
        if self.cursor >= state.head {
            return Ok(());
        }
        if self.cursor < state.floor {
            return Err(StoreError::Gone { requested: self.cursor, oldest: state.floor });
        }
        let start = state.history.partition_point(|e| e.rv <= self.cursor);
        let converted: Vec<_> = state.history.range(start..).filter_map(|e| self.convert(e)).collect();
        self.pending.extend(converted);
        self.cursor = state.head;
        Ok(())
    }

    /// The next event; `None` when the store has closed (or after an error).
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            self.commits.borrow_and_update();
            if let Err(e) = self.poll_history() {
                self.done = true;
                return Some(Err(e));
            }
            if self.pending.is_empty() && self.commits.changed().await.is_err() {
                // The writer stopped: deliver what was committed last, then end.
                self.done = true;
                if let Err(e) = self.poll_history() {
                    return Some(Err(e));
                }
            }
        }
    }

    /// This watch as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Result<WatchEvent>> + Send + 'static {
        futures_util::stream::unfold(self, |mut watch| async move { watch.next().await.map(|e| (e, watch)) })
    }
}
