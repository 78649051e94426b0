//! HTTPTrigger → networking.k8s.io/v1 Ingress.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kelp_api::HTTPTrigger;

use crate::config::Config;
use crate::error::PlanError;
use crate::function::first_port;
use crate::meta::{self, Labels};
use crate::{CREATED_BY_KUBELESS, CREATED_BY_LABEL};

/// The annotation naming the ingress class the old way; a trigger that sets it keeps it, and
/// then gets no `ingressClassName` (the API server refuses the two when they differ).
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The trigger annotations copied onto its Ingress (see [`http_trigger_ingress`]): what
/// Kubeless's HTTPTrigger set (class, rewrite, CORS, basic auth, ACME) and common settings of
/// nginx, Traefik, Kong and cert-manager that configure the route without injecting
/// configuration. nginx's `*-snippet` annotations, for instance, are not here: they put raw
/// configuration into the shared ingress controller.
pub const ALLOWED_INGRESS_ANNOTATIONS: &[&str] = &[
    CLASS_ANNOTATION,
    "kubernetes.io/tls-acme",
    "nginx.ingress.kubernetes.io/rewrite-target",
    "nginx.ingress.kubernetes.io/use-regex",
    "nginx.ingress.kubernetes.io/enable-cors",
    "nginx.ingress.kubernetes.io/cors-allow-origin",
    "nginx.ingress.kubernetes.io/cors-allow-methods",
    "nginx.ingress.kubernetes.io/cors-allow-headers",
    "nginx.ingress.kubernetes.io/cors-expose-headers",
    "nginx.ingress.kubernetes.io/cors-allow-credentials",
    "nginx.ingress.kubernetes.io/cors-max-age",
    "nginx.ingress.kubernetes.io/auth-type",
    "nginx.ingress.kubernetes.io/auth-secret",
    "nginx.ingress.kubernetes.io/auth-realm",
    "nginx.ingress.kubernetes.io/ssl-redirect",
    "nginx.ingress.kubernetes.io/force-ssl-redirect",
    "nginx.ingress.kubernetes.io/proxy-body-size",
    "nginx.ingress.kubernetes.io/proxy-connect-timeout",
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
    "nginx.ingress.kubernetes.io/limit-rps",
    "nginx.ingress.kubernetes.io/limit-rpm",
    "nginx.ingress.kubernetes.io/limit-connections",
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "ingress.kubernetes.io/enable-cors",
    "ingress.kubernetes.io/auth-type",
    "ingress.kubernetes.io/auth-secret",
    "ingress.kubernetes.io/auth-realm",
    "ingress.kubernetes.io/ssl-redirect",
    "traefik.ingress.kubernetes.io/router.entrypoints",
    "traefik.ingress.kubernetes.io/router.tls",
    "traefik.ingress.kubernetes.io/router.tls.certresolver",
    "traefik.ingress.kubernetes.io/router.priority",
    "konghq.com/strip-path",
    "konghq.com/protocols",
    "konghq.com/https-redirect-status-code",
    "cert-manager.io/cluster-issuer",
    "cert-manager.io/issuer",
    "cert-manager.io/issuer-kind",
    "cert-manager.io/issuer-group",
    "cert-manager.io/common-name",
    "cert-manager.io/duration",
    "cert-manager.io/renew-before",
];

/// The trigger's annotations that are not copied onto its Ingress (neither in
/// [`ALLOWED_INGRESS_ANNOTATIONS`] nor in the configuration's `ingress-annotations`), as
/// `metadata.annotations[<key>]`, for a Warning.
pub fn refused_ingress_annotations(trigger: &HTTPTrigger, config: &Config) -> Vec<String> {
    let (_, refused) = split_annotations(trigger, config);
    refused.into_iter().map(|key| format!("metadata.annotations[{key}]")).collect()
}

/// The trigger's annotations, allowed and refused.
fn split_annotations(trigger: &HTTPTrigger, config: &Config) -> (Labels, Vec<String>) {
    let (allowed, refused): (Labels, Labels) =
        meta::inherited_annotations(&trigger.metadata).into_iter().partition(|(key, _)| {
            ALLOWED_INGRESS_ANNOTATIONS.contains(&key.as_str()) || config.allows_ingress_annotation(key)
        });
    (allowed, refused.into_keys().collect())
}

/// Plans the Ingress of an HTTPTrigger, given its function's Service (the planned one of
/// [`function_children`](crate::function_children), or the live one) and the configuration.
///
/// The Ingress is named after the trigger, labelled with the trigger's labels plus
/// `created-by: kubeless`, and controlled by the trigger. One rule: `spec.host-name` (any host
/// when empty), path `/<spec.path>` of type `Prefix`, to the Service's first port, by number (an Ingress
/// backend's port name may have 15 characters, `http-function-port` has 18). Per `spec.gateway` (empty: nginx):
///
/// - `ingressClassName: <gateway>`; nginx also gets `rewrite-target: /` (the function sees `/`,
///   as with Kubeless);
/// - `cors-enable`: `nginx.ingress.kubernetes.io/enable-cors` (nginx) or
///   `ingress.kubernetes.io/enable-cors` (others);
/// - `basic-auth-secret`: `auth-type: basic` and `auth-secret` under the gateway's prefix (kong:
///   an error, as in Kubeless);
/// - `tls-secret`: TLS for the host with that Secret; `tls: true`: ACME (`kubernetes.io/tls-acme`,
///   `ssl-redirect`) into the Secret `<trigger>-tls`; both: an error.
///
/// The trigger's annotations are added last and win, those of [`ALLOWED_INGRESS_ANNOTATIONS`]
/// and of the configuration's `ingress-annotations` only: others are left out (see
/// [`refused_ingress_annotations`]), since some configure the shared ingress controller itself.
pub fn http_trigger_ingress(trigger: &HTTPTrigger, service: &Service, config: &Config) -> Result<Ingress, PlanError> {
    let spec = &trigger.spec;
    let name = meta::name(&trigger.metadata);
    let gateway = match spec.gateway.as_deref().unwrap_or_default() {
        "" | "nginx" => Gateway::Nginx,
        "traefik" => Gateway::Traefik,
        "kong" => Gateway::Kong,
        other => {
            return Err(PlanError::invalid("spec.gateway", format!("must be nginx, traefik or kong, not {other:?}")));
        }
    };
    let host = spec.host_name.clone().filter(|h| !h.is_empty());
    let mut annotations = Labels::new();
    let mut set = |key: &str, value: &str| annotations.insert(key.to_owned(), value.to_owned());
    if gateway == Gateway::Nginx {
        set("nginx.ingress.kubernetes.io/rewrite-target", "/");
    }
    if spec.cors_enable == Some(true) {
        set(&format!("{}enable-cors", gateway.prefix()), "true");
    }
    if let Some(secret) = spec.basic_auth_secret.as_deref().filter(|s| !s.is_empty()) {
        if gateway == Gateway::Kong {
            return Err(PlanError::invalid(
                "spec.basic-auth-secret",
                "Setting basic authentication with Kong is not yet supported",
            ));
        }
        set(&format!("{}auth-secret", gateway.prefix()), secret);
        set(&format!("{}auth-type", gateway.prefix()), "basic");
    }
    let tls_secret = spec.tls_secret.clone().filter(|s| !s.is_empty());
    let tls = match (spec.tls == Some(true), tls_secret) {
        (true, Some(_)) => {
            return Err(PlanError::invalid("spec.tls-secret", "must not be set together with spec.tls"));
        }
        (true, None) => {
            set("kubernetes.io/tls-acme", "true");
            set("nginx.ingress.kubernetes.io/ssl-redirect", "true");
            Some(format!("{name}-tls"))
        }
        (false, secret) => secret,
    }
    .map(|secret_name| vec![IngressTLS { hosts: host.clone().map(|h| vec![h]), secret_name: Some(secret_name) }]);
    let (trigger_annotations, _) = split_annotations(trigger, config);
    let class_annotated = trigger_annotations.contains_key(CLASS_ANNOTATION);
    annotations.extend(trigger_annotations);

    let port = service.spec.as_ref().and_then(first_port).ok_or_else(|| {
        PlanError::invalid("spec.function-name", format!("the Service {:?} has no port", meta::name(&service.metadata)))
    })?;
    // By number: an Ingress backend's port name is limited to 15 characters, and Kubeless's
    // `http-function-port` has 18.
    let backend_port = ServiceBackendPort { name: None, number: Some(port.port) };
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: meta::name(&service.metadata).to_owned(),
            port: Some(backend_port),
        }),
        ..IngressBackend::default()
    };
    let path = HTTPIngressPath {
        backend,
        path: Some(format!("/{}", spec.path.as_deref().unwrap_or_default())),
        path_type: "Prefix".into(),
    };
    let mut labels = trigger.metadata.labels.clone().unwrap_or_default();
    labels.insert(CREATED_BY_LABEL.to_owned(), CREATED_BY_KUBELESS.to_owned());
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: trigger.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta::non_empty(annotations),
            owner_references: Some(vec![meta::owner_reference("HTTPTrigger", &trigger.metadata)?]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: (!class_annotated).then(|| gateway.class().to_owned()),
            rules: Some(vec![IngressRule { host, http: Some(HTTPIngressRuleValue { paths: vec![path] }) }]),
            tls,
            ..IngressSpec::default()
        }),
        status: None,
    })
}

/// The ingress controllers Kubeless knew.
#[derive(Clone, Copy, PartialEq)]
enum Gateway {
    Nginx,
    Traefik,
    Kong,
}

impl Gateway {
    /// The ingress class.
    fn class(self) -> &'static str {
        match self {
            Gateway::Nginx => "nginx",
            Gateway::Traefik => "traefik",
            Gateway::Kong => "kong",
        }
    }

    /// The prefix of the controller's annotations.
    fn prefix(self) -> &'static str {
        match self {
            Gateway::Nginx => "nginx.ingress.kubernetes.io/",
            Gateway::Traefik | Gateway::Kong => "ingress.kubernetes.io/",
        }
    }
}
