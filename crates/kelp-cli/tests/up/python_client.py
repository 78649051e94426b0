"""The official Python kubernetes client against `kelp up`, as a user would write it.

Run by `the_python_kubernetes_client_drives_kelp_up` (tests/up.rs) with the kubeconfig of the
platform as its argument; prints one line per step, and fails (exit 1, a traceback) at the first
answer that is not Kubernetes's.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def step(name):
    print(name, flush=True)


def expect_error(status, call):
    try:
        call()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        return e
    raise AssertionError(f"no {status}")


def until(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ApiException as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
custom = client.CustomObjectsApi()
ns = "default"

# CRUD of a core kind.
body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm", labels={"app": "py"}), data={"a": "1"})
created = core.create_namespaced_config_map(ns, body)
assert created.metadata.uid and created.metadata.resource_version
assert core.read_namespaced_config_map("cm", ns).data == {"a": "1"}
core.patch_namespaced_config_map("cm", ns, {"data": {"b": "2"}})
current = core.read_namespaced_config_map("cm", ns)
current.data["c"] = "3"
replaced = core.replace_namespaced_config_map("cm", ns, current)
assert replaced.data == {"a": "1", "b": "2", "c": "3"}, replaced.data
assert [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="app=py").items] == ["cm"]
step("crud")

# 409: an existing name, and a stale resourceVersion.
e = expect_error(409, lambda: core.create_namespaced_config_map(ns, body))
assert '"reason":"AlreadyExists"' in e.body.replace(" ", ""), e.body
current.data["d"] = "4"
expect_error(409, lambda: core.replace_namespaced_config_map("cm", ns, current))
step("409")

# 422 with causes naming the fields.
bad = {
    "apiVersion": "kubeless.io/v1beta1",
    "kind": "Function",
    "metadata": {"name": "bad"},
    "spec": {"runtime": "python3.11", "handler": "nodot", "function": "", "timeout": "soon"},
}
e = expect_error(422, lambda: custom.create_namespaced_custom_object("kubeless.io", "v1beta1", ns, "functions", bad))
import json

status = json.loads(e.body)
fields = [c.get("field") for c in status["details"]["causes"]]
assert status["reason"] == "Invalid" and "spec.handler" in fields, status
step("422 " + ",".join(sorted(f for f in fields if f)))

# watch: from the list's resourceVersion, a ConfigMap created after it is ADDED.
listed = core.list_namespaced_config_map(ns)
core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm2")))
seen = None
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, ns, resource_version=listed.metadata.resource_version, timeout_seconds=10):
    if event["object"].metadata.name == "cm2":
        seen = event["type"]
        w.stop()
assert seen == "ADDED", seen
core.delete_namespaced_config_map("cm", ns)
expect_error(404, lambda: core.read_namespaced_config_map("cm", ns))
step("watch")

# A Function, its pod, its logs and the service proxy.
code = "def hello(event, context):\n    print('py-client-saw', event['extensions']['request'].path, flush=True)\n    return 'hello from kelp'\n"
function = {
    "apiVersion": "kubeless.io/v1beta1",
    "kind": "Function",
    "metadata": {"name": "pyhello"},
    "spec": {"runtime": "python3.11", "handler": "hello.hello", "function": code, "function-content-type": "text"},
}
custom.create_namespaced_custom_object("kubeless.io", "v1beta1", ns, "functions", function)
pods = until(
    "a ready pod",
    lambda: [
        p
        for p in core.list_namespaced_pod(ns, label_selector="function=pyhello").items
        if p.status.container_statuses and all(c.ready for c in p.status.container_statuses)
    ],
)
step("pods")
# The client sends `pyhello:http-function-port` as `pyhello%3Ahttp-function-port`.
answer = core.connect_get_namespaced_service_proxy_with_path("pyhello:http-function-port", ns, "greet")
assert answer == "hello from kelp", answer
step("proxy")
logs = until(
    "the call in the log",
    lambda: (lambda text: text if "py-client-saw /greet" in text else None)(
        core.read_namespaced_pod_log(pods[0].metadata.name, ns, container="pyhello")
    ),
)
step("logs")
custom.delete_namespaced_custom_object("kubeless.io", "v1beta1", ns, "functions", "pyhello")
until("the function's pods to go", lambda: not core.list_namespaced_pod(ns, label_selector="function=pyhello").items)
step("done")
