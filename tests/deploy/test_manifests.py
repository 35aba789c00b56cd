"""The Kubernetes manifests in deploy/k8s validate against the Kubernetes API schemas.

Core resources (Deployment, Service, ConfigMap, NetworkPolicy, ...) are checked in
strict mode by kubernetes-validate (unknown fields are errors). KubeRay's RayCluster is
a custom resource those schemas do not know: its pod templates are checked as core
``PodTemplate`` objects and its own fields against what KubeRay's v1 API requires.
The settings and versions the manifests name are checked against aimass itself.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import aimass
from aimass.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.31.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = _documents()
CORE = [
    (name, doc)
    for name, doc in DOCUMENTS
    if "." not in doc["apiVersion"].split("/")[0]
    or doc["apiVersion"].split("/")[0].endswith(".k8s.io")
]
CUSTOM = [(name, doc) for name, doc in DOCUMENTS if (name, doc) not in CORE]


def test_the_manifests_cover_the_deployment() -> None:
    kinds = sorted(doc["kind"] for _, doc in DOCUMENTS)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "RayCluster",
            "Service",
        ]
    )


@pytest.mark.parametrize(("name", "doc"), CORE, ids=[name for name, _ in CORE])
def test_core_resources_validate_strictly(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    # The validator really validates: an unknown field and a wrong type both fail.
    deployment = next(doc for _, doc in CORE if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _ray_cluster() -> dict[str, Any]:
    (doc,) = [doc for _, doc in CUSTOM if doc["kind"] == "RayCluster"]
    return doc


def _pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_the_ray_cluster_pod_templates_validate_as_core_pod_templates() -> None:
    for template in _pod_templates(_ray_cluster()):
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "aimass-ray", "namespace": "aimass"},
            "template": template,
        }
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def test_the_ray_cluster_has_what_kuberay_requires() -> None:
    cluster = _ray_cluster()
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    # The cluster runs the Ray the lock installs, or tasks fail to deserialise.
    assert spec["rayVersion"] == importlib.metadata.version("ray")
    assert set(spec["headGroupSpec"]) == {"rayStartParams", "template"}
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    for group in spec["workerGroupSpecs"]:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", group["groupName"])
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert isinstance(group["rayStartParams"], dict)
    for template in _pod_templates(cluster):
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        # Every Ray pod authenticates with the cluster's token.
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "aimass-secrets"


def _aimass_names(doc: dict[str, Any]) -> set[str]:
    names = {key for key in doc.get("data", {}) if key.startswith("AIMASS_")}
    text = yaml.safe_dump(doc)
    names |= set(re.findall(r"\bname: (AIMASS_[A-Z0-9_]+)", text))
    return names


def test_every_aimass_setting_named_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    known = {f"AIMASS_{name.upper()}" for name in Settings.model_fields}
    named = set().union(*(_aimass_names(doc) for _, doc in DOCUMENTS))
    assert named, "the manifests set no AIMASS_* settings"
    assert named <= known, f"not aimass settings: {sorted(named - known)}"
    config = next(doc for _, doc in DOCUMENTS if doc["kind"] == "ConfigMap")
    # The values parse as the settings they set, read from the environment as the pods
    # read them (a typo in a list or a choice fails).
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    found = Settings()
    assert found.executor == "ray"
    assert found.artifact_url == config["data"]["AIMASS_ARTIFACT_URL"]


def test_images_are_this_version_of_aimass() -> None:
    images = re.findall(r"image: (\S+)", "\n".join(yaml.safe_dump(d) for _, d in DOCUMENTS))
    assert images
    assert set(images) == {f"aimass:{aimass.__version__}"}
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert f"-t aimass:{aimass.__version__} " in dockerfile
