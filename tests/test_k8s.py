"""The Kubernetes manifests (deploy/k8s), rendered offline by `kubectl kustomize` and read as objects.

They must agree with the code they run: the same commands as docker-compose.yml, only
variables settings.py reads, a grace period past the task time limit, a worker image without
TensorFlow, and a KEDA trigger that counts the drawings the way the database keeps them.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from recognizer.models import Drawing

BASE_DIR = Path(__file__).resolve().parent.parent
K8S = BASE_DIR / "deploy" / "k8s"
ENTRY_POINTS = ["", "overlays/example", "overlays/try"]  # under deploy/k8s; "" is `kubectl apply -k deploy/k8s`
needs_kubectl = pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")


def render(entry: str) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(K8S / entry)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def named(objects: list[dict], kind: str, name: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def containers(objects: list[dict]) -> list[dict]:
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    return [c for pod in pods for c in pod.get("initContainers", []) + pod["containers"]]


def environment(objects: list[dict]) -> dict[str, str]:
    """Every variable the ConfigMaps and Secrets set, decoded."""
    values = {}
    for o in objects:
        if o["kind"] == "ConfigMap":
            values |= o.get("data", {})
        elif o["kind"] == "Secret":
            values |= {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
    return values


@pytest.fixture(scope="module", params=ENTRY_POINTS)
def rendered(request) -> list[dict]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    return render(request.param)


@pytest.fixture(scope="module")
def example() -> list[dict]:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    return render("")


def test_each_entry_point_renders_the_whole_service(rendered):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for deployment in ("digits-web", "digits-worker", "digits-beat"):
        assert ("Deployment", deployment) in kinds
    assert {("Job", "digits-migrate"), ("Service", "digits-web"), ("HorizontalPodAutoscaler", "digits-web")} <= kinds
    assert {("PodDisruptionBudget", "digits-web"), ("PodDisruptionBudget", "digits-worker")} <= kinds
    assert all(o["metadata"].get("namespace") for o in rendered if o["kind"] != "Namespace")


def test_every_reference_names_an_object_that_is_rendered(rendered):
    # Generated ConfigMaps and Secrets get a hash in their names; each reference must follow it.
    present = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for container in containers(rendered):
        for source in container.get("envFrom", []):
            kind, ref = (
                ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else ("Secret", source["secretRef"])
            )
            assert (kind, ref["name"]) in present
        for variable in container.get("env", []):
            if ref := variable.get("valueFrom", {}).get("secretKeyRef"):
                assert ("Secret", ref["name"]) in present


def test_every_container_has_requests_and_a_memory_limit(rendered):
    for container in containers(rendered):
        resources = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources.get("requests", {})), container["name"]
        assert "memory" in resources.get("limits", {}), container["name"]


def test_no_secret_value_is_committed(rendered):
    for name, value in environment(rendered).items():
        if name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") or "PASSWORD" in name:
            assert "REPLACE_ME" in value, f"{name} must be a placeholder"


def test_the_web_is_probed_on_a_page_it_serves_with_a_host_it_allows(example):
    web = named(example, "Deployment", "digits-web")["spec"]["template"]["spec"]["containers"][0]
    allowed = environment(example)["ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        # Not /healthz: it is 503 while no worker answers, which must not take every web pod out.
        assert get["path"] == "/" and get["port"] == "http"
        headers = {h["name"]: h["value"] for h in get["httpHeaders"]}
        assert headers["Host"] in allowed
    service = named(example, "Service", "digits-web")
    assert service["spec"]["ports"][0]["targetPort"] == web["ports"][0]["name"]


def test_a_worker_outlives_its_batch_and_is_pinged_by_its_own_node_name(example):
    pod = named(example, "Deployment", "digits-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.CELERY_TASK_TIME_LIMIT + 10
    [worker] = pod["containers"]
    assert "WORKER_NAME" not in environment(example)  # so the node is worker@<pod name>, as the probe asks
    probe = " ".join(worker["livenessProbe"]["exec"]["command"])
    assert "celery -A digitsite inspect ping -d worker@$HOSTNAME" in probe
    assert "replicas" not in named(example, "Deployment", "digits-worker")["spec"], "KEDA owns the replicas"


def test_workers_run_the_image_without_tensorflow(example):
    images = {c["name"]: c["image"] for c in containers(example)}
    assert images["worker"].rsplit(":", 1)[0].endswith("/digits-worker")
    assert images["web"].rsplit(":", 1)[0].endswith("/digits")
    stage = re.search(r"^FROM \S+ AS worker$(.*?)^FROM ", (BASE_DIR / "Dockerfile").read_text(), re.M | re.S)
    installs = re.findall(r"pip install .*-r (\S+)", stage.group(1))
    assert installs == ["requirements-worker.txt"]
    requirements = (BASE_DIR / "requirements-worker.txt").read_text().lower()
    assert not re.search(r"^(tensorflow|keras|tf-)", requirements, re.M)


def test_one_beat_ever(example):
    beat = named(example, "Deployment", "digits-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_keda_scales_workers_on_the_drawings_waiting_in_the_database(example):
    scaled = named(example, "ScaledObject", "digits-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "digits-worker"
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > behavior["scaleUp"]["stabilizationWindowSeconds"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "postgresql"
    query = trigger["metadata"]["query"]
    assert f"FROM {Drawing._meta.db_table} WHERE status = '{Drawing.Status.QUEUED.value}'" in query
    assert float(trigger["metadata"]["targetQueryValue"]) > 0
    assert environment(example)[trigger["metadata"]["connectionFromEnv"]].startswith("postgres://")


def test_the_settings_are_ones_the_code_reads_and_the_commands_are_compose_s(rendered):
    documented = set(re.findall(r"^([A-Z_]+)=", (BASE_DIR / ".env.example").read_text(), re.M))
    assert set(environment(rendered)) <= documented
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"]
    commands = {c["name"]: " ".join(c["command"]) for c in containers(rendered) if "command" in c}
    for service in ("web", "worker", "beat", "migrate"):
        assert commands[service] == compose[service]["command"]


def test_the_manifests_are_valid_kubernetes_objects(rendered):
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for o in rendered:
        if o["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked against KEDA's own schema below
        validate.validate(o, "1.32", strict=True)


def check_against_keda(scaled: dict) -> None:
    """Validate a ScaledObject with cloudcoil-models-keda: pydantic models generated from KEDA's CRDs (2.16.1)."""
    keda = pytest.importorskip("cloudcoil.models.keda.v1alpha1", reason="cloudcoil-models-keda is not installed")
    parsed = keda.ScaledObject.model_validate(scaled)  # a wrong type, a missing required field: ValidationError
    # The models drop fields the schema lacks and coerce types ("5" to 5) without a word, so the
    # object must also come back unchanged: strict, as kubernetes-validate is above.
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == scaled


def test_the_scaled_object_is_valid_against_keda_s_schema(example):
    scaled = named(example, "ScaledObject", "digits-worker")
    check_against_keda(scaled)
    # The check would notice a misspelt field, a number as a string and a missing required field.
    broken = [copy.deepcopy(scaled) for _ in range(3)]
    broken[0]["spec"]["pollingIntervall"] = broken[0]["spec"].pop("pollingInterval")
    broken[1]["spec"]["minReplicaCount"] = "1"
    del broken[2]["spec"]["scaleTargetRef"]
    for wrong in broken:
        with pytest.raises((AssertionError, ValueError)):  # pydantic's ValidationError is a ValueError
            check_against_keda(wrong)
