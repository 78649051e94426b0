//! The `kubeless.io/v1beta1` API that Kelp serves: the Rust types of the six Kubeless kinds,
//! their validation, and the CRDs generated from them. This crate does no I/O.
//!
//! - [`Function`] ([`FunctionSpec`], [`FunctionStatus`]) and the triggers [`HTTPTrigger`],
//!   [`CronJobTrigger`], [`KafkaTrigger`], [`NATSTrigger`], [`KinesisTrigger`] (all with
//!   [`TriggerStatus`]). JSON keys are exactly Kubeless's; every spec field is optional and
//!   absent fields are not written back, so objects stored by Kubeless round-trip unchanged.
//! - Embedded Kubernetes objects: `deployment` and `service` are typed k8s-openapi values
//!   wrapped in [`Embedded`] (which keeps their stored JSON shape); `horizontalPodAutoscaler`
//!   is kept verbatim as [`HpaTemplate`] and converted with [`HpaTemplate::to_v2`].
//! - [`Validate`]: every problem of an object as [`ValidationErrors`] (field path and reason).
//! - Parsers for the string-typed fields: [`Handler`], [`RuntimeName`], [`ContentType`],
//!   [`parse_checksum`], [`parse_timeout`].
//! - [`crd`]: the CRDs and their committed YAML in `deploy/crds/`.

mod autoscaler;
mod content_type;
pub mod crd;
mod embedded;
mod error_chain;
mod formats;
mod function;
mod status;
mod triggers;
mod validation;

pub use autoscaler::{HpaConversionError, HpaTemplate};
pub use content_type::{Archive, ContentType, Encoding};
pub use embedded::Embedded;
pub use error_chain::error_chain;
pub use formats::{
    DEFAULT_TIMEOUT_SECONDS, FormatError, Handler, MAX_MODULE_LEN, MAX_TIMEOUT_SECONDS, RuntimeName, is_module_name,
    parse_checksum, parse_timeout,
};
pub use function::{Function, FunctionSpec};
pub use status::{
    Conditions, FunctionStatus, READY_CONDITION, TopicTriggerStatus, TriggerStatus, merge_transition_times,
};
pub use triggers::{
    CronJobTrigger, CronJobTriggerSpec, GATEWAYS, HTTPTrigger, HTTPTriggerSpec, KafkaTrigger, KafkaTriggerSpec,
    KinesisTrigger, KinesisTriggerSpec, NATSTrigger, NATSTriggerSpec, check_schedule, label_query, parse_schedule,
    selector_matches,
};
pub use validation::{
    Validate, ValidationError, ValidationErrorKind, ValidationErrors, check_dns1035_label, check_dns1123_subdomain,
};

/// The API group of every kind.
pub const GROUP: &str = "kubeless.io";
/// The API version of every kind.
pub const VERSION: &str = "v1beta1";
