//! What is done through the API: readiness, the kwok Node, the CRDs, namespaces, and a real
//! node's metrics API.

use std::path::Path;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{APIService, APIServiceSpec, ServiceReference};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

/// The fake Node's name.
pub(crate) const KWOK_NODE: &str = "kwok-node-0";

/// A client from the kubeconfig at `path`, for the calling runtime.
pub(crate) async fn client(path: &Path) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("kelp-testenv: reading {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: the kubeconfig {}: {e}", path.display()));
    Client::try_from(config).unwrap_or_else(|e| panic!("kelp-testenv: a client for {}: {e}", path.display()))
}

/// `Ok` once `/readyz` answers 200.
pub(crate) async fn readyz(client: &Client) -> Result<(), String> {
    let request = http::Request::get("/readyz").body(Vec::new()).expect("a GET request");
    client.request_text(request).await.map(drop).map_err(|e| e.to_string())
}

/// Creates the Node kwok manages (annotation `kwok.x-k8s.io/node: fake`, label `type: kwok`);
/// kwok fills its status (capacity included).
pub(crate) async fn create_node(client: &Client) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(KWOK_NODE.to_owned()),
            annotations: Some([("kwok.x-k8s.io/node".to_owned(), "fake".to_owned())].into()),
            labels: Some(
                [
                    ("type", "kwok"),
                    ("kubernetes.io/hostname", KWOK_NODE),
                    ("kubernetes.io/os", "linux"),
                    ("kubernetes.io/arch", "amd64"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: creating the Node {KWOK_NODE}: {e}"));
}

/// `Ok` once the Node `name` has the condition `Ready` `True`.
pub(crate) async fn node_ready(client: &Client, name: &str) -> Result<(), String> {
    let node = Api::<Node>::all(client.clone()).get(name).await.map_err(|e| e.to_string())?;
    let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Ready") {
        Some(ready) if ready.status == "True" => Ok(()),
        Some(ready) => Err(format!("Ready is {}: {}", ready.status, ready.message.clone().unwrap_or_default())),
        None => Err("no Ready condition yet".to_owned()),
    }
}

/// Applies every CRD of the repository's `deploy/crds/` (server-side, field manager
/// `kelp-testenv`); returns their names.
pub(crate) async fn apply_crds(client: &Client) -> Vec<String> {
    let dir = kelp_testkit::repo_root().join("deploy/crds");
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("kelp-testenv: {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    let mut names = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("kelp-testenv: {}: {e}", path.display()));
        let crd: CustomResourceDefinition =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("kelp-testenv: {}: {e}", path.display()));
        let name = crd.metadata.name.clone().unwrap_or_else(|| panic!("{} has no name", path.display()));
        api.patch(&name, &PatchParams::apply("kelp-testenv").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("kelp-testenv: applying {}: {e}", path.display()));
        names.push(name);
    }
    assert!(!names.is_empty(), "kelp-testenv: no CRDs in {}", dir.display());
    names
}

/// `Ok` once every CRD named has the condition `Established`.
pub(crate) async fn crds_established(client: &Client, names: &[String]) -> Result<(), String> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for name in names {
        let crd = api.get(name).await.map_err(|e| format!("{name}: {e}"))?;
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        if !conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
            return Err(format!("{name} is not Established yet"));
        }
    }
    Ok(())
}

/// Creates the namespace `name` and waits (30 s at most) for its `default` ServiceAccount.
pub(crate) async fn create_namespace(client: &Client, name: &str) {
    let namespace = Namespace {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: creating the namespace {name}: {e}"));
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match accounts.get_opt("default").await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => panic!("kelp-testenv: reading the default ServiceAccount of {name}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "kelp-testenv: namespace {name} has no default ServiceAccount after 30 s \
             (is kube-controller-manager running? see its log)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The group and version metrics-server serves.
const METRICS_API: &str = "v1beta1.metrics.k8s.io";

/// Registers metrics-server, listening on `address:port` (the node's), as the aggregated API
/// `v1beta1.metrics.k8s.io`: a Service without selector in `kube-system`, an EndpointSlice of
/// that address, and the APIService (metrics-server's certificate is self-signed: not
/// verified). Server-side applies, field manager `kelp-testenv`.
pub(crate) async fn register_metrics_api(client: &Client, address: &str, port: u16) {
    let name = "metrics-server";
    let port = i32::from(port);
    let meta = |labels: Option<BTreeMap<String, String>>| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("kube-system".to_owned()),
        labels,
        ..ObjectMeta::default()
    };
    let service = Service {
        metadata: meta(None),
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort {
                name: Some("https".to_owned()),
                port: 443,
                target_port: Some(IntOrString::Int(port)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let labels = [("kubernetes.io/service-name".to_owned(), name.to_owned())].into();
    let slice = EndpointSlice {
        metadata: meta(Some(labels)),
        address_type: "IPv4".to_owned(),
        endpoints: vec![Endpoint { addresses: vec![address.to_owned()], ..Endpoint::default() }],
        ports: Some(vec![EndpointPort { name: Some("https".to_owned()), port: Some(port), ..EndpointPort::default() }]),
    };
    let api_service = APIService {
        metadata: ObjectMeta { name: Some(METRICS_API.to_owned()), ..ObjectMeta::default() },
        spec: Some(APIServiceSpec {
            group: Some("metrics.k8s.io".to_owned()),
            version: Some("v1beta1".to_owned()),
            group_priority_minimum: 100,
            version_priority: 100,
            insecure_skip_tls_verify: Some(true),
            service: Some(ServiceReference {
                namespace: Some("kube-system".to_owned()),
                name: Some(name.to_owned()),
                port: Some(443),
            }),
            ..APIServiceSpec::default()
        }),
        ..APIService::default()
    };
    let params = PatchParams::apply("kelp-testenv").force();
    Api::<Service>::namespaced(client.clone(), "kube-system")
        .patch(name, &params, &Patch::Apply(&service))
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: applying metrics-server's Service: {e}"));
    Api::<EndpointSlice>::namespaced(client.clone(), "kube-system")
        .patch(name, &params, &Patch::Apply(&slice))
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: applying metrics-server's EndpointSlice: {e}"));
    Api::<APIService>::all(client.clone())
        .patch(METRICS_API, &params, &Patch::Apply(&api_service))
        .await
        .unwrap_or_else(|e| panic!("kelp-testenv: applying metrics-server's APIService: {e}"));
}

/// `Ok` once the APIService of [`register_metrics_api`] has the condition `Available` `True`
/// (the API server reached metrics-server).
pub(crate) async fn metrics_api_available(client: &Client) -> Result<(), String> {
    let service = Api::<APIService>::all(client.clone()).get(METRICS_API).await.map_err(|e| e.to_string())?;
    let conditions = service.status.and_then(|s| s.conditions).unwrap_or_default();
    match conditions.iter().find(|c| c.type_ == "Available") {
        Some(available) if available.status == "True" => Ok(()),
        Some(available) => {
            Err(format!("Available is {}: {}", available.status, available.message.clone().unwrap_or_default()))
        }
        None => Err("no Available condition yet".to_owned()),
    }
}
