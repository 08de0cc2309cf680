"""The Kubernetes stage renders offline, validates, and agrees with Bicep and compose."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from aca_jobs import JOBS
from aca_jobs import k8s as gen
from aca_jobs.kustomize import KustomizeError, merge_patch, render
from tests.infra.infra_helpers import (
    BICEP_DIR,
    ROOT,
    bicep,
    component_files,
    compose,
    compose_env,
    load_yaml,
    resources,
    settings_env_names,
)

K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("local", "cluster")
# The Kubernetes version the core resources are validated against (kubernetes-validate schemas).
KUBERNETES_VERSION = "1.34.0"
CRDS = Path(__file__).parent / "crds"
CRD_FILES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("dapr.io/v1alpha1", "Component"): "dapr.io_components.yaml",
    ("dapr.io/v2alpha1", "Subscription"): "dapr.io_subscriptions.yaml",
}
PER_PROCESS = set(gen.PER_PROCESS)


@cache
def _rendered(overlay: str) -> list[dict[str, Any]]:
    return render(K8S / "overlays" / overlay)


def _one(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = (
        r for r in _rendered(overlay) if r["kind"] == kind and r["metadata"]["name"] == name
    )
    return found


def _all(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in _rendered(overlay) if r["kind"] == kind]


def _pod(resource: dict[str, Any]) -> dict[str, Any]:
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def _app() -> dict[str, Any]:
    container: dict[str, Any] = _pod(_one("local", "Deployment", "functions"))["containers"][0]
    return container


def _configmap() -> dict[str, str]:
    data: dict[str, str] = _one("local", "ConfigMap", gen.SETTINGS_CONFIGMAP)["data"]
    return data


def _env_names(container: dict[str, Any]) -> list[str]:
    names = [e["name"] for e in container["env"]]
    for source in container["envFrom"]:
        assert source["configMapRef"]["name"] == gen.SETTINGS_CONFIGMAP
        names.extend(_configmap())
    return names


def _crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    crd = load_yaml(CRDS / CRD_FILES[(api_version, kind)])
    version = api_version.split("/")[1]
    (entry,) = (v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
    return schema


def _ids(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}-{resource['metadata']['name']}"


def _custom(overlay: str) -> list[dict[str, Any]]:
    return [r for r in _rendered(overlay) if (r["apiVersion"], r["kind"]) in CRD_FILES]


def _core(overlay: str) -> list[dict[str, Any]]:
    return [r for r in _rendered(overlay) if (r["apiVersion"], r["kind"]) not in CRD_FILES]


def test_generated_files_are_current() -> None:
    """Every generated manifest is exactly what `python -m aca_jobs.k8s` writes."""
    for path, wanted in gen.generated().items():
        assert path.read_text() == wanted, f"{path} is stale: run python -m aca_jobs.k8s"


def test_generator_check_passes() -> None:
    """`python -m aca_jobs.k8s --check` exits 0 on the committed tree."""
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_unique_resources(overlay: str) -> None:
    """Each overlay renders, and no kind/name pair appears twice."""
    keys = [(r["kind"], r["metadata"]["name"]) for r in _rendered(overlay)]
    assert keys and len(keys) == len(set(keys))


@pytest.mark.parametrize("resource", [*_core("local"), *_core("cluster")], ids=lambda r: _ids(r))
def test_core_resources_validate_against_kubernetes(resource: dict[str, Any]) -> None:
    """Core resources validate (strictly: no unknown fields) against the pinned Kubernetes."""
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "resource", [*_custom("local"), *_custom("cluster")], ids=lambda r: _ids(r)
)
def test_custom_resources_validate_against_their_crds(resource: dict[str, Any]) -> None:
    """ScaledObject and the Dapr resources validate against the CRD schemas in tests/infra/crds."""
    jsonschema.validate(resource, _crd_schema(resource["apiVersion"], resource["kind"]))


def test_crd_schemas_reject_a_broken_resource() -> None:
    """The CRD check has teeth: a ScaledObject without scaleTargetRef fails it."""
    broken = {"spec": {"scaleTargetRef": None}}
    scaled = merge_patch(_one("local", "ScaledObject", "functions"), broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, _crd_schema("keda.sh/v1alpha1", "ScaledObject"))


def test_one_cronjob_per_registry_job() -> None:
    """The CronJobs are the registry's jobs, one each, in registry order."""
    jobs = _all("local", "CronJob")
    assert [j["metadata"]["labels"]["ascent.dev/job"] for j in jobs] == list(JOBS)


@pytest.mark.parametrize("name", list(JOBS))
def test_cronjobs_match_the_aca_jobs(name: str) -> None:
    """Each CronJob has its ACA job's cron, command and timeout, in UTC, never overlapping."""
    defs = json.loads((BICEP_DIR / "app" / "jobs.json").read_text())
    (aca,) = (d for d in defs if d["name"] == name)
    (cron,) = (
        j for j in _all("local", "CronJob") if j["metadata"]["labels"]["ascent.dev/job"] == name
    )
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "Etc/UTC"
    if aca["schedule"] is None:
        assert spec["suspend"] is True  # manual, like the ACA job: `kubectl create job --from`
    else:
        assert spec["schedule"] == aca["schedule"] and not spec.get("suspend")
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == aca["replicaTimeout"]
    (container,) = _pod(cron)["containers"]
    assert container["command"] == aca["command"] == JOBS[name].command


def test_app_sets_every_setting_once_plus_host_storage() -> None:
    """The app gets each setting the code reads once, plus the host's storage and HOME only."""
    names = _env_names(_app())
    assert len(names) == len(set(names))
    assert set(names) == settings_env_names() | {gen.STORAGE_ENV, "HOME"}


def test_the_host_home_is_the_writable_tmp_volume() -> None:
    """A non-root host writes its data under HOME, which is the pod's emptyDir at /tmp."""
    home = next(e["value"] for e in _app()["env"] if e["name"] == "HOME")
    mounts = {m["mountPath"]: m["name"] for m in _app()["volumeMounts"]}
    volumes = _pod(_one("local", "Deployment", "functions"))["volumes"]
    assert {"name": mounts[home], "emptyDir": {}} in volumes


@pytest.mark.parametrize("name", list(JOBS))
def test_jobs_set_exactly_the_settings(name: str) -> None:
    """Each CronJob container, like compose's jobs, sets exactly the settings the code reads."""
    cron = next(
        j for j in _all("local", "CronJob") if j["metadata"]["labels"]["ascent.dev/job"] == name
    )
    names = _env_names(_pod(cron)["containers"][0])
    assert len(names) == len(set(names))
    assert set(names) == settings_env_names()


def test_configmap_tunables_are_bicep_settings_json() -> None:
    """Every tunable in infra/bicep/app/settings.json is in the ConfigMap with the same value."""
    tunables = json.loads((BICEP_DIR / "app" / "settings.json").read_text())
    assert {k: _configmap()[k] for k in tunables} == tunables


def test_configmap_values_are_compose_values() -> None:
    """Every ConfigMap value is the value (or the default) compose gives the app."""
    env = compose_env("functions")
    for name, value in _configmap().items():
        assert gen.compose_value(env[name]) == value, name


def test_configmap_holds_no_secret() -> None:
    """Secret settings and DATABASE_URL come from the Secret, never from the ConfigMap."""
    assert not set(_configmap()) & set(gen.secret_names())
    for entry in _app()["env"]:
        if entry["name"] in gen.secret_names():
            assert entry["valueFrom"]["secretKeyRef"]["name"] == gen.SECRETS


def test_per_process_values_match_compose() -> None:
    """The app's sidecar settings are compose's app values; the jobs' are compose's migrate's."""
    app = {e["name"]: e.get("value") for e in _app()["env"] if e["name"] in PER_PROCESS}
    assert app == {n: gen.compose_value(compose_env("functions")[n]) for n in PER_PROCESS}
    migrate = _pod(_one("local", "Deployment", "functions"))["initContainers"][0]
    jobs = {e["name"]: e.get("value") for e in migrate["env"] if e["name"] in PER_PROCESS}
    assert jobs == {n: compose_env("migrate")[n] for n in PER_PROCESS}


def test_local_dapr_resources_are_local_components() -> None:
    """The base's Dapr components and subscription are local/components, unchanged."""
    files = [load_yaml(p) for p in component_files()]
    rendered = [r for r in _rendered("local") if r["apiVersion"].startswith("dapr.io/")]
    assert rendered == files


def test_cluster_moves_pubsub_to_kafka_and_keeps_identity() -> None:
    """The cluster overlay's pub/sub is Kafka with the same name, version and scopes."""
    local, cluster = _one("local", "Component", "pubsub"), _one("cluster", "Component", "pubsub")
    assert cluster["spec"]["type"] == "pubsub.kafka"
    assert cluster["spec"]["version"] == local["spec"]["version"]
    assert cluster["scopes"] == local["scopes"]
    names = {m["name"] for m in cluster["spec"]["metadata"]}
    assert {"brokers", "consumerGroup", "authType"} <= names


def test_cluster_keeps_every_component_and_subscription() -> None:
    """Both overlays carry the same Dapr resources by kind, name and scopes."""

    def identity(overlay: str) -> list[tuple[str, str, list[str]]]:
        return [
            (r["kind"], r["metadata"]["name"], r["scopes"])
            for r in _rendered(overlay)
            if r["apiVersion"].startswith("dapr.io/")
        ]

    assert identity("local") == identity("cluster")


def test_dapr_annotations_match_bicep_and_compose() -> None:
    """The sidecar's app ID and port are Bicep's daprAppId and ACA's app port (compose's too)."""
    annotations = _one("local", "Deployment", "functions")["spec"]["template"]["metadata"][
        "annotations"
    ]
    aca = resources("app/functions.bicep")["app"]["body"]["properties"]["configuration"]["dapr"]
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/app-id"] == bicep("main.bicep")["variables"]["daprAppId"]["value"]
    assert annotations["dapr.io/app-port"] == str(aca["appPort"]) == gen.dapr_app()[1]


def test_probes_hit_the_health_route_on_the_app_port() -> None:
    """Startup, readiness and liveness probes call /api/health on the app's port."""
    port = int(gen.dapr_app()[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _app()[probe]["httpGet"] == {"path": "/api/health", "port": port}, probe


def test_pods_run_as_non_root_without_privileges() -> None:
    """Every Ascent pod runs as a non-root uid; its containers drop all capabilities."""
    ascent = [_one("local", "Deployment", "functions"), *_all("local", "CronJob")]
    for resource in ascent:
        pod = _pod(resource)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_resources_match_the_aca_containers() -> None:
    """CPU and memory requests are the ACA app's and jobs' defaults (functions/jobs.bicep)."""
    for file in ("app/functions.bicep", "app/jobs.bicep"):
        params = bicep(file)["parameters"]
        cpu = f"{int(float(params['cpu']['default']) * 1000)}m"
        memory = params["memory"]["default"]
        assert _app()["resources"]["requests"] == {"cpu": cpu, "memory": memory}


def test_scaledobject_scales_the_app_on_the_runs_queue() -> None:
    """KEDA scales the Deployment on the agent-runs queue, up to Bicep's max replicas."""
    from shared.platform.queues import RUNS_QUEUE

    spec = _one("local", "ScaledObject", "functions")["spec"]
    assert spec["scaleTargetRef"]["name"] == "functions"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "azure-queue"
    assert trigger["metadata"]["queueName"] == RUNS_QUEUE
    assert trigger["metadata"]["connectionFromEnv"] in _env_names(_app())
    max_default = bicep("main.bicep")["parameters"]["functionsMaxReplicas"]["default"]
    assert spec["maxReplicaCount"] == max_default


def test_local_stores_use_compose_images() -> None:
    """The local overlay's Postgres, Redis and Azurite run compose's pinned images."""
    for name in gen.LOCAL_STORES:
        container = _pod(_one("local", "Deployment", name))["containers"][0]
        assert container["image"] == compose()["services"][name]["image"], name


def test_ascent_containers_run_the_one_compose_image() -> None:
    """The app, its migrate step and every job run compose's app image (the one build)."""
    image = compose()["services"]["functions"]["image"]
    for resource in [_one("local", "Deployment", "functions"), *_all("local", "CronJob")]:
        pod = _pod(resource)
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["image"] == image


def test_cluster_runs_the_published_image() -> None:
    """The cluster overlay swaps the local image name for the published one, everywhere."""
    for resource in [_one("cluster", "Deployment", "functions"), *_all("cluster", "CronJob")]:
        for container in _pod(resource)["containers"]:
            assert container["image"].startswith("ghcr.io/")


def test_no_secret_value_is_committed_outside_the_local_storage() -> None:
    """The only Secret in any overlay is the local Azurite connection (a public dev key)."""
    for overlay in OVERLAYS:
        secrets = _all(overlay, "Secret")
        assert [s["metadata"]["name"] for s in secrets] in ([], [gen.STORAGE_SECRET])
        for secret in secrets:
            assert "devstoreaccount1" in secret["stringData"][gen.STORAGE_ENV]


def test_renderer_refuses_unknown_kustomize_fields(tmp_path: Path) -> None:
    """A kustomization field outside the supported subset is an error, not ignored."""
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(KustomizeError):
        render(tmp_path)


def test_renderer_refuses_list_patches_of_built_in_kinds(tmp_path: Path) -> None:
    """A patch with a list on a built-in kind (strategic merge by key) is refused."""
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "patch.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, finalizers: [x]}\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [cm.yaml]\npatches: [{path: patch.yaml}]\n"
    )
    with pytest.raises(KustomizeError):
        render(tmp_path)


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    """RFC 7386: maps merge, lists are replaced whole, null removes a key."""
    merged = merge_patch({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "d": None})
    assert merged == {"a": {"b": 1, "c": [3]}}


def test_the_mcp_tool_server_runs_as_in_compose() -> None:
    """Each overlay runs the MCP tool server with compose's command and image, behind a Service
    of compose's name on its port, so the app's ASCENT_MCP_TOOLS_URL reaches it unchanged."""
    service = compose()["services"][gen.MCP_TOOLS]
    for overlay in ("local", "cluster"):
        deployment = _one(overlay, "Deployment", gen.MCP_TOOLS)
        [container] = _pod(deployment)["containers"]
        assert container["command"] == service["entrypoint"]
        port = int(service["entrypoint"][service["entrypoint"].index("--port") + 1])
        svc = _one(overlay, "Service", gen.MCP_TOOLS)
        assert svc["spec"]["ports"][0]["port"] == port
        url = _configmap()["ASCENT_MCP_TOOLS_URL"]
        assert url == f"http://{gen.MCP_TOOLS}:{port}/mcp"
        assert _pod(deployment)["securityContext"]["runAsNonRoot"] is True


def test_the_ui_runs_as_in_compose() -> None:
    """Each overlay runs the UI with compose's settings on its port, its session secret from
    `ascent-secrets`, as the Dockerfile's non-root user, behind a Service of compose's name."""
    service = compose()["services"][gen.UI]
    port = int(service["ports"][0].split(":")[-1])
    for overlay in ("local", "cluster"):
        deployment = _one(overlay, "Deployment", gen.UI)
        [container] = _pod(deployment)["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["ASCENT_API_URL"]["value"] == service["environment"]["ASCENT_API_URL"]
        assert env["ASCENT_API_URL"]["value"].startswith(f"http://{gen.APP}/")
        secret = env[gen.UI_SECRET]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": gen.SECRETS, "key": gen.UI_SECRET}
        assert set(env) == set(service["environment"])
        assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": port}
        assert _pod(deployment)["securityContext"]["runAsUser"] == gen.UI_UID
        assert f"--uid {gen.UI_UID}" in (ROOT / "ui" / "Dockerfile").read_text()
        svc = _one(overlay, "Service", gen.UI)
        assert svc["spec"]["ports"][0]["port"] == port
    assert _pod(_one("cluster", "Deployment", gen.UI))["containers"][0]["image"].startswith(
        "ghcr.io/"
    )
