//! [`PlanError`]: why an object cannot be planned.

/// Why the desired objects cannot be built. `Display` is a sentence a controller can put in a
/// status condition as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A key of the `kubeless-config` ConfigMap has a value Kelp cannot use.
    #[error("kubeless-config key {key:?}: {reason}")]
    Config {
        /// The ConfigMap key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A field of the object being planned has a value Kelp cannot use.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field path, e.g. `spec.handler`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Function's runtime is not among the `runtime-images` of `kubeless-config`.
    #[error("unknown runtime {runtime:?}; the runtimes of kubeless-config are: {}", available.join(", "))]
    UnknownRuntime {
        /// The runtime asked for (`spec.runtime`).
        runtime: String,
        /// Every `<ID><version>` the configuration offers.
        available: Vec<String>,
    },
    /// The owner has no `metadata.uid`, which its children's ownerReferences need (objects read
    /// from the API server always have one).
    #[error("{kind} {name:?} has no metadata.uid, which the ownerReferences of its objects need")]
    MissingUid {
        /// The owner's kind.
        kind: &'static str,
        /// The owner's name.
        name: String,
    },
}

impl PlanError {
    /// An [`PlanError::Invalid`] error.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl ToString) -> Self {
        Self::Invalid { field: field.into(), reason: reason.to_string() }
    }

    /// A [`PlanError::Config`] error.
    pub(crate) fn config(key: impl Into<String>, reason: impl ToString) -> Self {
        Self::Config { key: key.into(), reason: reason.to_string() }
    }
}
