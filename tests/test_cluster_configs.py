"""The cluster configurations under ``cluster/``: what they say must hold for them to run a study.

``ray-cluster.yaml`` (``ray up`` on AWS) is validated against the schema Ray ships
(``ray/autoscaler/ray-schema.json``) and by ``validate_config`` after ``prepare_config``, as
``ray up`` does before it touches the cloud (both run offline). The KubeRay manifests have no
schema in any installed package, so ``kube_errors`` checks them against the fields of the
ray.io/v1 CRDs (and of the Kubernetes objects inside) that these files may use: an unknown or
misspelled key, a wrong type or a missing required field is an error naming its path. Beyond the
schemas: the Ray, Python and torch versions agree with the installed ones and ``pyproject.toml``,
the commands parse with vidcolor's own argument parser, and the clusters fit the paper study's
trials at its concurrency (``plan_concurrency``, as ``vidcolor tune`` computes it).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.metadata
import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from study.ray_runtime import configure_auth

configure_auth()  # before Ray is imported (it reads RAY_AUTH_MODE then)

import ray  # noqa: E402
import ray.autoscaler  # noqa: E402
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
PROJECT_ROOT = "/home/ray/vidcolor"  # the checkout on every node (ray up's sync, the image's copy)
RAY_VERSION = ray.__version__


def _yaml(name: str) -> Any:
    return yaml.safe_load((CLUSTER / name).read_text())


def _kube(name: str) -> dict[str, dict]:
    """The documents of a manifest by kind, with YAML aliases unshared (a JSON round trip) so a
    test can change one place without changing the others."""
    return {d["kind"]: json.loads(json.dumps(d)) for d in yaml.safe_load_all((CLUSTER / name).read_text())}


def _requirement(name: str) -> Requirement:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(r for r in map(Requirement, deps) if r.name == name)


# --- the field lists of the KubeRay v1 CRDs and the Kubernetes objects these manifests use ---


@dataclass(frozen=True)
class Struct:
    name: str
    fields: dict[str, Any]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class MapOf:
    value: Any


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


QTY = (str, int)  # a Kubernetes quantity: "8", 32Gi, 4
KEY_REF = Struct("KeySelector", {"name": str, "key": str, "optional": bool}, ("key",))
ENV = Struct(
    "EnvVar",
    {
        "name": str,
        "value": str,
        "valueFrom": Struct("EnvVarSource", {"secretKeyRef": KEY_REF, "configMapKeyRef": KEY_REF}),
    },
    ("name",),
)
CONTAINER = Struct(
    "Container",
    {
        "name": str,
        "image": str,
        "imagePullPolicy": OneOf(("Always", "IfNotPresent", "Never")),
        "command": ListOf(str),
        "args": ListOf(str),
        "workingDir": str,
        "env": ListOf(ENV),
        "resources": Struct("ResourceRequirements", {"limits": MapOf(QTY), "requests": MapOf(QTY)}),
        "ports": ListOf(
            Struct("ContainerPort", {"containerPort": int, "name": str, "protocol": str}, ("containerPort",))
        ),
        "volumeMounts": ListOf(
            Struct(
                "VolumeMount", {"name": str, "mountPath": str, "readOnly": bool, "subPath": str}, ("name", "mountPath")
            )
        ),
    },
    ("name", "image"),
)
VOLUME = Struct(
    "Volume",
    {
        "name": str,
        "emptyDir": Struct("EmptyDirVolumeSource", {"medium": str, "sizeLimit": QTY}),
        "persistentVolumeClaim": Struct(
            "PersistentVolumeClaimVolumeSource", {"claimName": str, "readOnly": bool}, ("claimName",)
        ),
    },
    ("name",),
)
POD_SPEC = Struct(
    "PodSpec",
    {
        "containers": ListOf(CONTAINER),
        "initContainers": ListOf(CONTAINER),
        "volumes": ListOf(VOLUME),
        "nodeSelector": MapOf(str),
        "serviceAccountName": str,
        "tolerations": ListOf(
            Struct("Toleration", {"key": str, "operator": OneOf(("Exists", "Equal")), "value": str, "effect": str})
        ),
        "securityContext": Struct("PodSecurityContext", {"fsGroup": int, "runAsUser": int, "runAsGroup": int}),
    },
    ("containers",),
)
META = Struct("ObjectMeta", {"name": str, "namespace": str, "labels": MapOf(str), "annotations": MapOf(str)})
TEMPLATE = Struct("PodTemplateSpec", {"metadata": META, "spec": POD_SPEC}, ("spec",))
RAY_CLUSTER_SPEC = Struct(
    "RayClusterSpec",
    {
        "rayVersion": str,
        "enableInTreeAutoscaling": bool,
        "headServiceAnnotations": MapOf(str),
        "authOptions": Struct("AuthOptions", {"mode": OneOf(("disabled", "token")), "secretName": str}),
        "headGroupSpec": Struct(
            "HeadGroupSpec",
            {"rayStartParams": MapOf(str), "template": TEMPLATE, "serviceType": str, "enableIngress": bool},
            ("rayStartParams", "template"),
        ),
        "workerGroupSpecs": ListOf(
            Struct(
                "WorkerGroupSpec",
                {
                    "groupName": str,
                    "replicas": int,
                    "minReplicas": int,
                    "maxReplicas": int,
                    "idleTimeoutSeconds": int,
                    "numOfHosts": int,
                    "rayStartParams": MapOf(str),
                    "template": TEMPLATE,
                },
                ("groupName", "rayStartParams", "template"),
            )
        ),
    },
    ("headGroupSpec",),
)
RAY_JOB_SPEC = Struct(
    "RayJobSpec",
    {
        "entrypoint": str,
        "runtimeEnvYAML": str,
        "shutdownAfterJobFinishes": bool,
        "ttlSecondsAfterFinished": int,
        "activeDeadlineSeconds": int,
        "backoffLimit": int,
        "suspend": bool,
        "jobId": str,
        "metadata": MapOf(str),
        "submissionMode": OneOf(("K8sJobMode", "HTTPMode", "InteractiveMode")),
        "entrypointNumCpus": (int, float),
        "entrypointNumGpus": (int, float),
        "rayClusterSpec": RAY_CLUSTER_SPEC,
        "submitterPodTemplate": TEMPLATE,
    },
)
PVC_SPEC = Struct(
    "PersistentVolumeClaimSpec",
    {
        "accessModes": ListOf(OneOf(("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"))),
        "resources": Struct("VolumeResourceRequirements", {"requests": MapOf(QTY)}),
        "storageClassName": str,
    },
)


def _document(api: str, kind: str, spec: Struct) -> Struct:
    return Struct(
        kind,
        {"apiVersion": OneOf((api,)), "kind": OneOf((kind,)), "metadata": META, "spec": spec},
        ("apiVersion", "kind", "metadata", "spec"),
    )


DOCUMENTS = {
    "RayJob": _document("ray.io/v1", "RayJob", RAY_JOB_SPEC),
    "Pod": _document("v1", "Pod", POD_SPEC),
    "PersistentVolumeClaim": _document("v1", "PersistentVolumeClaim", PVC_SPEC),
}


def kube_errors(value: Any, schema: Any, path: str) -> list[str]:
    """Every place where ``value`` leaves ``schema``, as 'PATH: what is wrong'."""
    if isinstance(schema, Struct):
        if not isinstance(value, dict):
            return [f"{path}: expected a {schema.name} mapping, got {type(value).__name__}"]
        errors = [
            f"{path}.{key}: required field of {schema.name} missing" for key in schema.required if key not in value
        ]
        for key, item in value.items():
            if key in schema.fields:
                errors += kube_errors(item, schema.fields[key], f"{path}.{key}")
            else:
                errors.append(f"{path}.{key}: not a field of {schema.name} (it has {', '.join(schema.fields)})")
        return errors
    if isinstance(schema, (MapOf, ListOf)):
        kind, items = (dict, value.items()) if isinstance(schema, MapOf) else (list, enumerate(value or ()))
        if not isinstance(value, kind):
            return [f"{path}: expected a {kind.__name__}, got {type(value).__name__}"]
        fmt = "{}.{}" if isinstance(schema, MapOf) else "{}[{}]"
        inner = schema.value if isinstance(schema, MapOf) else schema.item
        return [e for k, v in items for e in kube_errors(v, inner, fmt.format(path, k))]
    if isinstance(schema, OneOf):
        return [] if value in schema.values else [f"{path}: {value!r} is not one of {', '.join(schema.values)}"]
    types = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
        return []
    return [f"{path}: expected {' or '.join(t.__name__ for t in types)}, got {type(value).__name__} {value!r}"]


def manifest_errors(name: str) -> list[str]:
    return [e for kind, doc in _kube(name).items() for e in kube_errors(doc, DOCUMENTS[kind], kind)]


# --- cluster/ray-cluster.yaml: `ray up` on AWS ---


def _ray_schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_ray_cluster_passes_rays_schema_and_validate_config():
    config = _yaml("ray-cluster.yaml")
    jsonschema.validate(config, _ray_schema())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs before the cloud calls


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda c: c.update(max_workers="many"), jsonschema.ValidationError, "'many' is not of type 'integer'"),
        (
            lambda c: c.update(setup_comands=c.pop("setup_commands")),
            jsonschema.ValidationError,
            r"\('setup_comands' was unexpected\)",
        ),
        (
            lambda c: c["available_node_types"]["ray.worker.gpu"]["resources"].update(GPU=-1),
            jsonschema.ValidationError,
            "-1 is less than the minimum of 0",
        ),
        (lambda c: c.update(head_node_type="ray.head.gpu"), ValueError, "`head_node_type` must be one of"),
        (
            lambda c: c["available_node_types"]["ray.worker.gpu"].update(min_workers=5),
            ValueError,
            "smaller than the sum of `min_workers`",
        ),
    ],
)
def test_ray_cluster_validation_rejects_broken_configs(change: Callable, error: type, match: str):
    config = _yaml("ray-cluster.yaml")
    change(config)
    with pytest.raises(error, match=match):
        jsonschema.validate(config, _ray_schema())
        validate_config(prepare_config(config))


def test_ray_cluster_versions_match_the_installed_ray_and_pyproject():
    config = _yaml("ray-cluster.yaml")
    setup = " ".join(config["setup_commands"])
    assert re.findall(r'"ray\[default,tune,train\]==([^"]+)"', setup) == [RAY_VERSION]
    assert _requirement("ray").specifier.contains(RAY_VERSION)
    assert config["docker"]["head_image"] == f"rayproject/ray:{RAY_VERSION}-py311-cpu"
    assert config["docker"]["worker_image"] == f"rayproject/ray:{RAY_VERSION}-py311-gpu"
    torch_pins = re.findall(r'"torch([^"]+)"', setup)
    assert torch_pins == [">=2.13,<2.14"]
    installed = Version(importlib.metadata.version("torch")).base_version
    assert SpecifierSet(torch_pins[0]).contains(installed)
    assert _requirement("torch").specifier.contains("2.13.0")


def test_ray_cluster_nodes_ports_and_project_install():
    config = _yaml("ray-cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    gpu = [name for name, t in types.items() if t["resources"].get("GPU", 0) > 0]
    assert gpu == ["ray.worker.gpu"] and config["head_node_type"] not in gpu
    assert types["ray.worker.gpu"]["node_config"]["IamInstanceProfile"]["Name"]  # S3 for the trials
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "--port=6379" in head_start and "--address=$RAY_HEAD_IP:6379" in worker_start  # Ray's default
    assert head["resources"] == {"CPU": 0} and "--num-cpus=0" in head_start
    assert "export RAY_AUTH_MODE=token" in head_start and "export RAY_AUTH_MODE=token" in worker_start
    assert config["file_mounts"]["~/vidcolor"] == "." and "pip install -q -e ~/vidcolor" in config["setup_commands"]
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def _paper_concurrency(cpus: float, gpus: float) -> int:
    from study.config.spec import load_spec
    from study.tune.runner import plan_concurrency

    return plan_concurrency(load_spec(CLUSTER / "paper.toml"), cpus, gpus, local=False)


def test_ray_cluster_runs_the_paper_study_at_full_concurrency():
    types = _yaml("ray-cluster.yaml")["available_node_types"]
    nodes = {name: (1 if name == "ray.head.cpu" else t["min_workers"]) for name, t in types.items()}
    cpus, gpus = (sum(n * types[name]["resources"].get(r, 0) for name, n in nodes.items()) for r in ("CPU", "GPU"))
    assert (cpus, gpus) == (192, 16)
    assert _paper_concurrency(cpus, gpus) == 4


def test_cluster_spec_is_the_paper_spec_with_an_absolute_checkpoint():
    shipped = tomllib.loads((REPO / "study" / "configs" / "paper.toml").read_text())
    cluster = tomllib.loads((CLUSTER / "paper.toml").read_text())
    assert shipped["fixed"].pop("pretrained") == "checkpoints/eccv16"
    assert cluster["fixed"].pop("pretrained") == f"{PROJECT_ROOT}/checkpoints/eccv16"
    assert cluster == shipped


def _excluded(path: str, patterns: list[str]) -> bool:
    """Whether a gitignore/dockerignore-style pattern list leaves ``path`` (relative) out."""
    parts = path.split("/")
    for pattern in (p.strip().strip("/").removeprefix("**/") for p in patterns):
        if (
            pattern
            and not pattern.startswith("#")
            and any(
                fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) or fnmatch.fnmatch(part, pattern)
                for i, part in enumerate(parts)
            )
        ):
            return True
    return False


def test_synced_tree_and_image_keep_the_spec_and_checkpoint_and_drop_local_state():
    config = _yaml("ray-cluster.yaml")
    rsync = config["rsync_exclude"] + (REPO / ".gitignore").read_text().splitlines()
    assert config["rsync_filter"] == [".gitignore"]
    docker = (CLUSTER / "Dockerfile.dockerignore").read_text().splitlines()
    for patterns in (rsync, docker):
        for kept in ("cluster/paper.toml", "checkpoints/eccv16/model.safetensors", "study/cli.py", "pyproject.toml"):
            assert not _excluded(kept, patterns), kept
        for dropped in (".git/HEAD", ".venv/bin/python", "demo_run/results.db", "vidcolor.egg-info/PKG-INFO"):
            assert _excluded(dropped, patterns), dropped


# --- cluster/kuberay-rayjob.yaml and cluster/kuberay-dashboard.yaml: KubeRay ---


def test_kuberay_manifests_use_only_crd_fields():
    assert manifest_errors("kuberay-rayjob.yaml") == []
    assert manifest_errors("kuberay-dashboard.yaml") == []


CLUSTER_SPEC = "RayJob.spec.rayClusterSpec"
WORKERS = f"{CLUSTER_SPEC}.workerGroupSpecs[0]"


@pytest.mark.parametrize(
    "change, error",
    [
        (
            lambda j: j["spec"]["rayClusterSpec"].update(
                workerGroupSpec=j["spec"]["rayClusterSpec"].pop("workerGroupSpecs")
            ),
            f"{CLUSTER_SPEC}.workerGroupSpec: not a field of RayClusterSpec (it has rayVersion, ",
        ),
        (
            lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(maxReplicas="many"),
            f"{WORKERS}.maxReplicas: expected int, got str 'many'",
        ),
        (
            lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replicas=True),
            f"{WORKERS}.replicas: expected int, got bool True",
        ),
        (
            lambda j: j["spec"].update(shutdownAfterJobFinishes="yes"),
            "RayJob.spec.shutdownAfterJobFinishes: expected bool, got str 'yes'",
        ),
        (
            lambda j: j["spec"]["rayClusterSpec"]["authOptions"].update(mode="tokens"),
            f"{CLUSTER_SPEC}.authOptions.mode: 'tokens' is not one of disabled, token",
        ),
        (
            lambda j: j.update(apiVersion="ray.io/v1alpha1"),
            "RayJob.apiVersion: 'ray.io/v1alpha1' is not one of ray.io/v1",
        ),
        (
            lambda j: (
                e := j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"][0]
            ).update(valueFrom={"secretkeyRef": e["valueFrom"]["secretKeyRef"]}),
            f"{WORKERS}.template.spec.containers[0].env[0].valueFrom.secretkeyRef: not a field of EnvVarSource",
        ),
        (
            lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].pop("name"),
            f"{CLUSTER_SPEC}.headGroupSpec.template.spec.containers[0].name: required field of Container missing",
        ),
    ],
)
def test_kube_errors_name_a_misspelled_key_or_a_wrong_type(change: Callable, error: str):
    job = _kube("kuberay-rayjob.yaml")["RayJob"]
    change(job)
    errors = kube_errors(job, DOCUMENTS["RayJob"], "RayJob")
    assert len(errors) == 1 and errors[0].startswith(error), errors


def _head(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["headGroupSpec"]


def _results_mount(pod_spec: dict) -> tuple[str, str]:
    """(claim name, mount path) of the pod's one PersistentVolumeClaim."""
    (volume,) = [v for v in pod_spec["volumes"] if "persistentVolumeClaim" in v]
    (mount,) = [m for c in pod_spec["containers"] for m in c.get("volumeMounts", ()) if m["name"] == volume["name"]]
    return volume["persistentVolumeClaim"]["claimName"], mount["mountPath"]


def _parse(command: list[str], subcommand: str):
    from study.cli import build_parser

    assert command[0] == "vidcolor"
    args = build_parser().parse_args(command[1:])
    assert args.command == subcommand
    return args


def test_rayjob_entrypoint_is_a_valid_cluster_study_command():
    docs = _kube("kuberay-rayjob.yaml")
    job = docs["RayJob"]
    args = _parse(shlex.split(job["spec"]["entrypoint"]), "tune")
    assert args.address == "auto" and args.stall_after > 0 and not args.resume
    assert args.shards.startswith("s3://") and args.storage.startswith("s3://")
    assert args.spec.startswith(PROJECT_ROOT + "/") and (REPO / args.spec[len(PROJECT_ROOT) + 1 :]).is_file()
    claim, mount = _results_mount(_head(job)["template"]["spec"])
    assert claim == docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert args.db == f"sqlite:///{mount}/paper.db"  # media go beside it, on the claim too
    with pytest.raises(SystemExit):  # the parser does refuse what it does not know
        _parse(shlex.split(job["spec"]["entrypoint"].replace("--storage", "--storge")), "tune")


def test_rayjob_versions_gpus_credentials_and_lifecycle():
    job = _kube("kuberay-rayjob.yaml")["RayJob"]
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == RAY_VERSION and spec["authOptions"] == {"mode": "token"}
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["ttlSecondsAfterFinished"] > 0
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == [f"rayproject/ray:{RAY_VERSION}-py311-gpu"]
    assert f'"ray[default,tune,train]=={RAY_VERSION}"' in dockerfile and '"torch>=2.13,<2.14"' in dockerfile
    (workers,) = spec["workerGroupSpecs"]
    pods = [_head(job)["template"]["spec"], workers["template"]["spec"]]
    containers = [c for pod in pods for c in pod["containers"]]
    assert {c["image"] for c in containers} == {containers[0]["image"]}
    assert containers[0]["image"].endswith(f":0.1.0-ray{RAY_VERSION}-py311-gpu")
    for c in containers:
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
        assert {refs[k]["key"] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")} == {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        }
    gpu = workers["template"]["spec"]["containers"][0]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == gpu["requests"]["nvidia.com/gpu"] == 4
    assert "nvidia.com/gpu" not in str(pods[0]) and _head(job)["rayStartParams"] == {"num-cpus": "0"}
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    cpus = workers["replicas"] * float(gpu["limits"]["cpu"])
    assert _paper_concurrency(cpus, workers["replicas"] * gpu["limits"]["nvidia.com/gpu"]) == 4


def test_dashboard_pod_opens_the_rayjobs_results():
    job = _kube("kuberay-rayjob.yaml")["RayJob"]
    pod = _kube("kuberay-dashboard.yaml")["Pod"]["spec"]
    (container,) = pod["containers"]
    study = _parse(shlex.split(job["spec"]["entrypoint"]), "tune")
    assert _parse(container["command"], "dashboard").db == study.db
    assert _results_mount(pod) == _results_mount(_head(job)["template"]["spec"])  # media paths are absolute
    assert container["image"] == _head(job)["template"]["spec"]["containers"][0]["image"]
