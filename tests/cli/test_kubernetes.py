"""deploy/kubernetes, checked without a cluster: the parts a rollout depends on are there and
agree with each other and with jobrunner (its commands, settings, probes and secret keys).
Where kubectl is installed, `kubectl kustomize` must render them too (offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobrunner.cli import build_parser
from jobrunner.settings import Settings
from tests.support.processes import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return found


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_every_workload_reads_the_secret_that_is_defined() -> None:
    secret = _one("Secret", "jobrunner")
    keys = set(secret["stringData"])
    assert keys == {"JOBRUNNER_DATABASE_URL", "JOBRUNNER_JWT_SECRET"}
    known = {f"JOBRUNNER_{name.upper()}" for name in Settings.model_fields}
    assert keys <= known
    workloads = [d for d in _documents() if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} == {
        "jobrunner-api",
        "jobrunner-worker",
        "jobrunner-migrate",
    }
    for workload in workloads:
        container = _container(workload)
        assert container["envFrom"] == [{"secretRef": {"name": "jobrunner"}}]
        assert set(_env(container)) <= known, workload["metadata"]["name"]
        build_parser().parse_args(container["args"])  # a command jobrunner has
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user


def test_deployments_select_their_pods_and_outlast_the_drain() -> None:
    drain = Settings.model_fields["drain_timeout"].default
    for name in ("jobrunner-api", "jobrunner-worker"):
        deployment = _one("Deployment", name)
        assert deployment["apiVersion"] == "apps/v1"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = deployment["spec"]["template"]["spec"]
        env = _env(_container(deployment))
        assert pod["terminationGracePeriodSeconds"] > float(
            env.get("JOBRUNNER_DRAIN_TIMEOUT", drain)
        )


def test_the_api_probes_health_and_readiness_on_its_port() -> None:
    api = _container(_one("Deployment", "jobrunner-api"))
    assert api["args"] == ["api"]
    assert _env(api)["JOBRUNNER_HOST"] == "0.0.0.0"  # noqa: S104 - inside its pod
    (port,) = api["ports"]
    assert str(port["containerPort"]) == _env(api)["JOBRUNNER_PORT"]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    service = _one("Service", "jobrunner-api")
    assert service["spec"]["selector"].items() <= (
        _one("Deployment", "jobrunner-api")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_worker_probes_the_file_its_heartbeat_touches() -> None:
    worker = _container(_one("Deployment", "jobrunner-worker"))
    assert worker["args"] == ["worker"]
    alive = _env(worker)["JOBRUNNER_LIVENESS_FILE"]
    interval = Settings.model_fields["heartbeat_interval"].default
    for probe in ("startupProbe", "livenessProbe"):
        command = worker[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"] and f"'{alive}'" in command[2]
        max_age = float(re.search(r"> (\d+)\)", command[2])[1])  # type: ignore[index]
        assert max_age >= 5 * interval  # a few missed beats, not one late one
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert str(Path(alive).parent) in mounts  # writable, under a read-only root


def test_the_migrate_job_migrates_and_makes_the_first_admin() -> None:
    job = _one("Job", "jobrunner-migrate")
    assert job["apiVersion"] == "batch/v1"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    args = build_parser().parse_args(_container(job)["args"])
    assert (args.command, args.first_admin) == ("migrate", "admin")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here")
def test_kubectl_renders_the_manifests() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
    assert sorted(kinds) == ["Deployment", "Deployment", "Job", "Secret", "Service"]
