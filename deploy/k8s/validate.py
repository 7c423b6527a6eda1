"""Render every Kustomize overlay and validate the output offline.

Built-in Kubernetes kinds are checked against the schemas that the
kubernetes-validate package ships, in strict mode (unknown fields are errors).
Strimzi, CloudNativePG, KEDA and OpenTelemetry resources are checked against
the openAPIV3Schema of their CustomResourceDefinitions, with the schema's
defaults applied first, as the API server does, and unknown fields rejected
except where the CRD sets x-kubernetes-preserve-unknown-fields. A few
cross-resource references that no schema covers are checked too (a topic's
Kafka cluster, a ScaledObject's Deployment, a Deployment's ConfigMaps).

No cluster is contacted: rendering uses `kubectl kustomize`, which works offline.
CEL rules (x-kubernetes-validations) in the CRDs are not evaluated.

    .venv/bin/python deploy/k8s/validate.py              # every overlay
    .venv/bin/python deploy/k8s/validate.py dev daegu    # some overlays

Exit status 0 when every resource is valid, 1 otherwise.
"""

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

K8S_DIR = Path(__file__).resolve().parent
OVERLAYS_DIR = K8S_DIR / "overlays"
TOOLS_DIR = K8S_DIR / "tools"
# The checkout sits beside shared/ both on developer machines and in CI.
DEFAULT_CRD_DIR = K8S_DIR.parents[2] / "shared" / "schemas" / "crds"
KUBERNETES_VERSION = "1.32"

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
COMBINATORS = ("anyOf", "oneOf", "allOf", "not")


def describe(resource: dict) -> str:
    name = (resource.get("metadata") or {}).get("name", "<unnamed>")
    return f"{resource.get('kind', '<no kind>')}/{name}"


# --- Rendering --------------------------------------------------------------


class RenderError(RuntimeError):
    """`kubectl kustomize` failed or printed something that is not YAML."""


def render_overlay(overlay_dir: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RenderError("kubectl not found on PATH; install kubectl 1.32 or newer (it bundles kustomize)")
    result = subprocess.run([kubectl, "kustomize", str(overlay_dir)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {overlay_dir} failed: {result.stderr.strip()}")
    return parse_documents(result.stdout, str(overlay_dir))


def parse_documents(text: str, origin: str) -> list[dict]:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise RenderError(f"{origin}: invalid YAML: {error}") from error
    return [document for document in documents if document]


def load_manifest_files(directory: Path) -> list[dict]:
    resources = []
    for path in sorted(directory.glob("*.yaml")):
        resources.extend(parse_documents(path.read_text(encoding="utf-8"), str(path)))
    return resources


# --- CRD schemas ------------------------------------------------------------


@dataclass(frozen=True)
class CrdVersion:
    served: bool
    schema: dict  # the openAPIV3Schema, unmodified


@dataclass
class CrdCatalog:
    """The CRDs of a directory, looked up by API group and kind."""

    versions: dict[tuple[str, str], dict[str, CrdVersion]] = field(default_factory=dict)
    _validators: dict[tuple[str, str, str], jsonschema.Draft7Validator] = field(default_factory=dict)

    @classmethod
    def load(cls, crd_dir: Path) -> "CrdCatalog":
        if not crd_dir.is_dir():
            raise FileNotFoundError(
                f"CRD directory {crd_dir} not found; set MEDGOV_CRD_DIR or pass --crd-dir "
                "(it holds the Strimzi, CloudNativePG, KEDA and OpenTelemetry CRD files)"
            )
        catalog = cls()
        for path in sorted(crd_dir.rglob("*.yaml")):
            for document in parse_documents(path.read_text(encoding="utf-8"), str(path)):
                if document.get("kind") == "CustomResourceDefinition":
                    catalog.add(document)
        return catalog

    def add(self, crd: dict) -> None:
        spec = crd["spec"]
        key = (spec["group"], spec["names"]["kind"])
        self.versions[key] = {
            version["name"]: CrdVersion(version.get("served", False), version["schema"]["openAPIV3Schema"])
            for version in spec["versions"]
        }

    def groups(self) -> set[str]:
        return {group for group, _ in self.versions}

    def validator(self, group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
        key = (group, kind, version)
        if key not in self._validators:
            schema = strict_json_schema(self.versions[(group, kind)][version].schema)
            jsonschema.Draft7Validator.check_schema(schema)
            self._validators[key] = jsonschema.Draft7Validator(schema)
        return self._validators[key]


def strict_json_schema(openapi: dict) -> dict:
    """Convert an OpenAPI v3 CRD schema to JSON Schema that rejects unknown fields."""
    schema = copy.deepcopy(openapi)
    _convert_node(schema, inside_combinator=False)
    return schema


def _convert_node(node: dict, inside_combinator: bool) -> None:
    if node.get("nullable") is True and "type" in node:
        node["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]

    # Like `kubectl --validate=strict`: a field the schema does not declare is an
    # error, unless the CRD preserves unknown fields there. Branches of anyOf,
    # oneOf, allOf and not only refine the parent, so closing them would reject valid input.
    closes = (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not inside_combinator
    )
    if closes:
        node["additionalProperties"] = False

    for child in (node.get("properties") or {}).values():
        _convert_node(child, inside_combinator)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _convert_node(node[key], inside_combinator)
    for key in COMBINATORS:
        branches = node.get(key)
        if isinstance(branches, dict):
            branches = [branches]
        for branch in branches or []:
            _convert_node(branch, inside_combinator=True)


def apply_defaults(value: object, schema: dict) -> None:
    """Fill in schema defaults in place, the way the API server does before validating."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, child_schema in properties.items():
            if name not in value and "default" in child_schema:
                value[name] = copy.deepcopy(child_schema["default"])
            if name in value:
                apply_defaults(value[name], child_schema)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, child in value.items():
                if name not in properties:
                    apply_defaults(child, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


# --- Validation of single resources -----------------------------------------


def split_api_version(api_version: str) -> tuple[str, str]:
    """Split "kafka.strimzi.io/v1" into ("kafka.strimzi.io", "v1"). The core group is ""."""
    group, _, version = api_version.rpartition("/")
    return group, version


def validate_custom_resource(resource: dict, crds: CrdCatalog) -> list[str]:
    group, version = split_api_version(resource.get("apiVersion", ""))
    kind = resource.get("kind", "")
    versions = crds.versions.get((group, kind))
    if versions is None:
        return [f"no CRD for kind {kind} in group {group}"]
    if version not in versions or not versions[version].served:
        served = ", ".join(name for name, item in versions.items() if item.served)
        return [f"{group}/{version} is not a served version of {kind} (served: {served})"]

    defaulted = copy.deepcopy(resource)
    apply_defaults(defaulted, versions[version].schema)
    errors = crds.validator(group, kind, version).iter_errors(defaulted)
    return [format_schema_error(error) for error in sorted(errors, key=lambda item: list(item.absolute_path))]


def format_schema_error(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path) or "<root>"
    return f"{path}: {error.message}"


def validate_builtin_resource(resource: dict) -> list[str]:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [format_schema_error(error)]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    return []


def validate_name(resource: dict) -> list[str]:
    name = (resource.get("metadata") or {}).get("name")
    if not name:
        return ["metadata.name is missing"]
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return [f"metadata.name {name!r} is not a valid DNS subdomain (lowercase letters, digits, '-' and '.')"]
    return []


def validate_resource(resource: dict, crds: CrdCatalog) -> list[str]:
    group, _ = split_api_version(resource.get("apiVersion", ""))
    errors = validate_name(resource)
    if group in crds.groups():
        errors += validate_custom_resource(resource, crds)
    else:
        errors += validate_builtin_resource(resource)
    return errors


# --- Cross-resource references ----------------------------------------------


def names_of(resources: Iterable[dict], kind: str) -> set[str]:
    return {item["metadata"]["name"] for item in resources if item.get("kind") == kind}


def check_references(resources: list[dict]) -> Iterator[tuple[str, str]]:
    """Yield (resource, error) for references to resources missing from the output.

    Secrets are not checked: they are created by operators and never committed.
    """
    yield from check_strimzi_references(resources)
    yield from check_cnpg_references(resources)
    yield from check_keda_references(resources)
    yield from check_workload_references(resources)


def check_strimzi_references(resources: list[dict]) -> Iterator[tuple[str, str]]:
    clusters = names_of(resources, "Kafka")
    strimzi_kinds = ("KafkaTopic", "KafkaUser", "KafkaNodePool")
    for item in resources:
        if item.get("kind") in strimzi_kinds:
            cluster = (item["metadata"].get("labels") or {}).get("strimzi.io/cluster")
            if cluster not in clusters:
                yield describe(item), f"label strimzi.io/cluster={cluster!r} names no Kafka in this overlay"

    # Strimzi 1.x runs KRaft only: every Kafka needs node pools with both roles.
    for cluster in sorted(clusters):
        roles = {
            role
            for item in resources
            if item.get("kind") == "KafkaNodePool"
            and (item["metadata"].get("labels") or {}).get("strimzi.io/cluster") == cluster
            for role in item["spec"].get("roles", [])
        }
        for role in ("controller", "broker"):
            if role not in roles:
                yield f"Kafka/{cluster}", f"no KafkaNodePool with role {role}"


def check_cnpg_references(resources: list[dict]) -> Iterator[tuple[str, str]]:
    clusters = names_of(resources, "Cluster")
    for item in resources:
        if item.get("kind") in ("Database", "ScheduledBackup"):
            cluster = item["spec"].get("cluster", {}).get("name")
            if cluster not in clusters:
                yield describe(item), f"spec.cluster.name {cluster!r} names no Cluster in this overlay"


def check_keda_references(resources: list[dict]) -> Iterator[tuple[str, str]]:
    deployments = names_of(resources, "Deployment")
    authentications = names_of(resources, "TriggerAuthentication")
    config_maps = names_of(resources, "ConfigMap")
    for item in resources:
        if item.get("kind") == "ScaledObject":
            target = item["spec"]["scaleTargetRef"]["name"]
            if target not in deployments:
                yield describe(item), f"scaleTargetRef {target!r} names no Deployment in this overlay"
            for trigger in item["spec"]["triggers"]:
                reference = (trigger.get("authenticationRef") or {}).get("name")
                if reference and reference not in authentications:
                    yield describe(item), f"authenticationRef {reference!r} names no TriggerAuthentication"
        if item.get("kind") == "TriggerAuthentication":
            for reference in item["spec"].get("configMapTargetRef", []):
                if reference["name"] not in config_maps:
                    yield describe(item), f"configMapTargetRef {reference['name']!r} names no ConfigMap"


def check_workload_references(resources: list[dict]) -> Iterator[tuple[str, str]]:
    config_maps = names_of(resources, "ConfigMap")
    claims = names_of(resources, "PersistentVolumeClaim")
    for item in resources:
        if item.get("kind") not in ("Deployment", "Pod"):
            continue
        pod = item["spec"]["template"]["spec"] if item["kind"] == "Deployment" else item["spec"]
        for name in referenced_config_maps(pod):
            if name not in config_maps:
                yield describe(item), f"ConfigMap {name!r} is referenced but not in this overlay"
        for volume in pod.get("volumes", []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in claims:
                yield describe(item), f"PersistentVolumeClaim {claim!r} is referenced but not in this overlay"


def referenced_config_maps(pod: dict) -> set[str]:
    names = set()
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names.add(source["configMapRef"]["name"])
        for variable in container.get("env", []):
            reference = (variable.get("valueFrom") or {}).get("configMapKeyRef")
            if reference:
                names.add(reference["name"])
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            names.add(volume["configMap"]["name"])
    return names


# --- Reports ----------------------------------------------------------------


@dataclass
class Report:
    source: str
    checked: int = 0
    errors: list[str] = field(default_factory=list)


def validate_resources(source: str, resources: list[dict], crds: CrdCatalog, check_refs: bool = True) -> Report:
    report = Report(source, checked=len(resources))
    for resource in resources:
        for error in validate_resource(resource, crds):
            report.errors.append(f"{describe(resource)}: {error}")
    if check_refs:
        for resource_name, error in check_references(resources):
            report.errors.append(f"{resource_name}: {error}")
    return report


def validate_overlay(overlay_dir: Path, crds: CrdCatalog) -> Report:
    try:
        resources = render_overlay(overlay_dir)
    except RenderError as error:
        return Report(overlay_dir.name, errors=[str(error)])
    return validate_resources(overlay_dir.name, resources, crds)


def overlay_dirs() -> list[Path]:
    return sorted(path.parent for path in OVERLAYS_DIR.glob("*/kustomization.yaml"))


def run(overlay_names: list[str], crd_dir: Path) -> list[Report]:
    crds = CrdCatalog.load(crd_dir)
    available = {path.name: path for path in overlay_dirs()}
    unknown = [name for name in overlay_names if name not in available]
    if unknown:
        known = ", ".join(sorted(available))
        return [Report(name, errors=[f"no overlay named {name!r}; overlays: {known}"]) for name in unknown]

    selected = overlay_names or sorted(available)
    reports = [validate_overlay(available[name], crds) for name in selected]
    if not overlay_names and TOOLS_DIR.is_dir():
        # Tools are applied on their own into an installed namespace, so their
        # references point at resources of an overlay and are not checked here.
        reports.append(validate_resources("tools", load_manifest_files(TOOLS_DIR), crds, check_refs=False))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the Kustomize overlays and validate them offline.")
    parser.add_argument("overlays", nargs="*", help="overlay names (directories under overlays/); default: all")
    parser.add_argument(
        "--crd-dir",
        type=Path,
        default=Path(os.environ.get("MEDGOV_CRD_DIR", DEFAULT_CRD_DIR)),
        help="directory of CRD YAML files (default: $MEDGOV_CRD_DIR or ../shared/schemas/crds beside the checkout)",
    )
    args = parser.parse_args(argv)

    try:
        reports = run(args.overlays, args.crd_dir)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    for report in reports:
        for error in report.errors:
            print(f"{report.source}: {error}")
        print(f"{report.source}: {report.checked} resources checked, {len(report.errors)} errors")
    return 1 if any(report.errors for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
