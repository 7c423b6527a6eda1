"""Tests of the Kubernetes manifests, their generator and their offline validator.

Rendering needs `kubectl` (it bundles kustomize) and the CRD files in
../shared/schemas/crds beside the checkout, or MEDGOV_CRD_DIR. No cluster is
contacted.
"""

import copy
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import asyncpg
import pytest
import yaml

from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.registry import SERVICES, all_topics, dlq_topic, inbound_topics

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
GENERATED_DIR = K8S_DIR / "base" / "kafka" / "generated"
DASHBOARD = REPO / "deploy" / "grafana" / "medgov.json"
CRD_DIR = Path(os.environ.get("MEDGOV_CRD_DIR", REPO / ".." / "shared" / "schemas" / "crds"))

OVERLAYS = ("dev", "prod", "daegu", "daejeon", "gwangju")
REGIONS = ("daegu", "daejeon", "gwangju")
PRODUCTION_OVERLAYS = ("prod", *REGIONS)

SERVICE_TOPIC = {service: f"medgov.{service}.v1" for service in SERVICES}
INBOUND = {topic.name for topic in inbound_topics()}
# What each service reads, written out from the security model rather than
# computed, so the test catches a generator that derives it wrongly.
EXPECTED_READS = {
    "review": {"medgov.catalog.v1"} | INBOUND,
    "catalog": {"medgov.review.v1", "medgov.catalog.v1"} | INBOUND,
    "consent": {"medgov.review.v1", "medgov.catalog.v1"} | INBOUND,
    "grants": {"medgov.review.v1", "medgov.catalog.v1", "medgov.consent.v1"},
}

METRICS = {
    "medgov_events_consumed_total",
    "medgov_consumer_lag",
    "medgov_outbox_backlog",
    "medgov_dead_letters_total",
    "medgov_review_sla_warnings_total",
    "medgov_review_sla_breaches_total",
    "medgov_revocation_fanout_seconds",
    "medgov_handler_seconds",
}
HISTOGRAMS = {"medgov_revocation_fanout_seconds", "medgov_handler_seconds"}


def load_script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


generate = load_script("medgov_k8s_generate", K8S_DIR / "generate.py")
validate = load_script("medgov_k8s_validate", K8S_DIR / "validate.py")


@pytest.fixture(scope="session")
def crds():
    return validate.CrdCatalog.load(CRD_DIR)


@pytest.fixture(scope="session")
def rendered():
    """Overlay name to its rendered resources, rendered once per test session."""
    return {name: validate.render_overlay(K8S_DIR / "overlays" / name) for name in OVERLAYS}


def find(resources: list[dict], kind: str, name: str) -> dict:
    matches = [item for item in resources if item["kind"] == kind and item["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(resources: list[dict], kind: str) -> list[dict]:
    return [item for item in resources if item["kind"] == kind]


def acl_table(user: dict) -> dict[tuple[str, str, str], set[str]]:
    """(resource type, name, pattern type) to the allowed operations of a KafkaUser."""
    table = {}
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        key = (resource["type"], resource["name"], resource.get("patternType", "literal"))
        table.setdefault(key, set()).update(rule["operations"])
    return table


def generated(name: str) -> list[dict]:
    return validate.parse_documents((GENERATED_DIR / name).read_text(encoding="utf-8"), name)


# --- Generated Strimzi resources --------------------------------------------


@pytest.mark.parametrize("name", sorted(generate.render_files()))
def test_generated_file_matches_registry(name):
    expected = generate.render_files()[name]

    committed = (GENERATED_DIR / name).read_text(encoding="utf-8")

    assert committed == expected, f"{name} is stale; run .venv/bin/python deploy/k8s/generate.py"


def test_generator_check_reports_stale_file(tmp_path):
    generate.write_files(tmp_path)
    (tmp_path / "topics.yaml").write_text("# edited by hand\n", encoding="utf-8")

    assert generate.stale_files(tmp_path) == ["topics.yaml"]


def test_topics_cover_registry_and_dead_letters():
    names = {item["metadata"]["name"] for item in generated("topics.yaml")}

    expected = {topic.name for topic in all_topics()} | {dlq_topic(topic.name) for topic in all_topics()}
    assert names == expected


def test_topic_settings_follow_registry():
    topics = {item["metadata"]["name"]: item["spec"] for item in generated("topics.yaml")}

    for topic in all_topics():
        assert topics[topic.name]["partitions"] == topic.partitions, topic.name
        assert topics[topic.name]["config"]["retention.ms"] == topic.retention_ms, topic.name
        assert topics[topic.name]["replicas"] == 3, topic.name
        assert topics[topic.name]["config"]["min.insync.replicas"] == 2, topic.name
        assert topics[topic.dlq]["config"]["retention.ms"] == -1, topic.dlq


def test_inbound_topics_expire_after_30_days():
    topics = {item["metadata"]["name"]: item["spec"] for item in generated("topics.yaml")}

    for name in INBOUND:
        assert topics[name]["config"]["retention.ms"] == 30 * 24 * 3600 * 1000, name


@pytest.mark.parametrize("service", SERVICES)
def test_service_user_acls_match_security_model(service):
    user = find(generated("service-users.yaml"), "KafkaUser", f"medgov-{service}")
    table = acl_table(user)

    topic_rules = {name: ops for (kind, name, pattern), ops in table.items() if kind == "topic"}
    reads = {name for name, ops in topic_rules.items() if "Read" in ops}
    writes = {name for name, ops in topic_rules.items() if "Write" in ops}
    assert reads == EXPECTED_READS[service]
    assert writes == {SERVICE_TOPIC[service]} | {dlq_topic(name) for name in EXPECTED_READS[service]}
    assert table[("group", f"medgov-{service}", "literal")] == {"Read"}
    assert [key for key in table if key[0] == "group"] == [("group", f"medgov-{service}", "literal")]


def test_service_users_have_no_admin_rights():
    for user in generated("service-users.yaml"):
        for (kind, name, pattern), operations in acl_table(user).items():
            assert kind in ("topic", "group"), f"{user['metadata']['name']}: {kind} {name}"
            assert pattern == "literal", f"{user['metadata']['name']}: {name}"
            assert operations <= {"Describe", "Read", "Write"}, f"{user['metadata']['name']}: {name}"


def test_every_institution_writes_only_its_inbound_topic():
    users = {item["metadata"]["name"]: item for item in generated("institution-users.yaml")}

    assert set(users) == {f"institution-{key}" for key in all_institutions()}
    for institution_id in all_institutions():
        table = acl_table(users[f"institution-{institution_id}"])
        assert table == {("topic", f"medgov.inbound.{institution_id}.v1", "literal"): {"Describe", "Write"}}


def test_kafka_users_authenticate_with_scram():
    for name in ("service-users.yaml", "institution-users.yaml", "operator-user.yaml"):
        for user in generated(name):
            assert user["spec"]["authentication"]["type"] == "scram-sha-512", user["metadata"]["name"]
            assert user["metadata"]["labels"]["strimzi.io/cluster"] == "medgov", user["metadata"]["name"]


def test_operator_user_can_replay_but_not_administer():
    (user,) = generated("operator-user.yaml")
    table = acl_table(user)

    for topic in all_topics():
        assert table[("topic", topic.name, "literal")] == {"Describe", "Read", "Write"}
        assert table[("topic", topic.dlq, "literal")] == {"Describe", "Read"}
    assert table[("group", "medgov-", "prefix")] == {"Describe", "Read"}
    assert all(kind in ("topic", "group") for kind, _, _ in table)


# --- Validator --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_offline_validation(overlay, rendered, crds):
    report = validate.validate_resources(overlay, rendered[overlay], crds)

    assert report.errors == []
    assert report.checked == len(rendered[overlay]) > 80


def test_tool_manifests_pass_offline_validation(crds):
    resources = validate.load_manifest_files(K8S_DIR / "tools")

    report = validate.validate_resources("tools", resources, crds, check_refs=False)

    assert report.errors == []
    assert report.checked == 1


def test_validator_rejects_misspelt_custom_resource_field(rendered, crds):
    topic = copy.deepcopy(find(rendered["prod"], "KafkaTopic", "medgov.review.v1"))
    topic["spec"]["partitons"] = 3

    errors = validate.validate_resource(topic, crds)

    assert errors == ["spec: Additional properties are not allowed ('partitons' was unexpected)"]


def test_validator_rejects_wrong_type_in_custom_resource(rendered, crds):
    cluster = copy.deepcopy(find(rendered["prod"], "Cluster", "medgov-pg"))
    cluster["spec"]["instances"] = 0

    errors = validate.validate_resource(cluster, crds)

    assert errors == ["spec.instances: 0 is less than the minimum of 1"]


def test_validator_rejects_unserved_strimzi_version(rendered, crds):
    kafka = copy.deepcopy(find(rendered["prod"], "Kafka", "medgov"))
    kafka["apiVersion"] = "kafka.strimzi.io/v1beta2"

    errors = validate.validate_resource(kafka, crds)

    assert errors == ["kafka.strimzi.io/v1beta2 is not a served version of Kafka (served: v1)"]


def test_validator_rejects_kind_without_crd(crds):
    mirror = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaMirrorMaker2", "metadata": {"name": "mirror"}}

    assert validate.validate_resource(mirror, crds) == ["no CRD for kind KafkaMirrorMaker2 in group kafka.strimzi.io"]


def test_validator_rejects_misspelt_deployment_field(rendered, crds):
    deployment = copy.deepcopy(find(rendered["prod"], "Deployment", "medgov-review"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}

    errors = validate.validate_resource(deployment, crds)

    assert len(errors) == 1
    assert "'livenesProbe' was unexpected" in errors[0]


def test_validator_applies_crd_defaults_before_checking(rendered, crds):
    cluster = copy.deepcopy(find(rendered["prod"], "Cluster", "medgov-pg"))
    del cluster["spec"]["instances"]  # required, but the CRD's default (1) fills it in

    assert validate.validate_resource(cluster, crds) == []


def test_validator_keeps_fields_the_crd_preserves(rendered, crds):
    kafka = copy.deepcopy(find(rendered["prod"], "Kafka", "medgov"))
    kafka["spec"]["kafka"]["config"]["log.retention.check.interval.ms"] = 300000

    assert validate.validate_resource(kafka, crds) == []


def test_validator_rejects_invalid_resource_name(rendered, crds):
    topic = copy.deepcopy(find(rendered["prod"], "KafkaTopic", "medgov.review.v1"))
    topic["metadata"]["name"] = "Medgov_Review"

    errors = validate.validate_resource(topic, crds)

    assert errors == ["metadata.name 'Medgov_Review' is not a valid DNS subdomain (lowercase letters, digits, '-' and '.')"]


def test_reference_check_reports_topic_of_unknown_cluster(rendered):
    resources = copy.deepcopy(rendered["dev"])
    topic = find(resources, "KafkaTopic", "medgov.review.v1")
    topic["metadata"]["labels"]["strimzi.io/cluster"] = "other"

    problems = list(validate.check_references(resources))

    assert problems == [("KafkaTopic/medgov.review.v1", "label strimzi.io/cluster='other' names no Kafka in this overlay")]


def test_reference_check_requires_controller_node_pool(rendered):
    resources = [item for item in rendered["prod"] if item["metadata"]["name"] != "controller"]

    problems = list(validate.check_references(resources))

    assert problems == [("Kafka/medgov", "no KafkaNodePool with role controller")]


def test_reference_check_reports_missing_config_map(rendered):
    resources = [item for item in rendered["dev"] if item["metadata"]["name"] != "medgov-platform"]

    problems = list(validate.check_references(resources))

    assert len(problems) == 4
    assert all(message == "ConfigMap 'medgov-platform' is referenced but not in this overlay" for _, message in problems)


def test_validate_main_prints_counts_and_exit_status(capsys):
    assert validate.main(["dev", "--crd-dir", str(CRD_DIR)]) == 0
    assert re.search(r"^dev: \d+ resources checked, 0 errors$", capsys.readouterr().out, re.MULTILINE)

    assert validate.main(["staging", "--crd-dir", str(CRD_DIR)]) == 1
    assert "no overlay named 'staging'" in capsys.readouterr().out


def test_validate_main_reports_missing_crd_dir(tmp_path, capsys):
    assert validate.main(["dev", "--crd-dir", str(tmp_path / "absent")]) == 1
    assert "CRD directory" in capsys.readouterr().err


# --- Service workloads ------------------------------------------------------


def container_of(resources: list[dict], service: str) -> tuple[dict, dict]:
    pod = find(resources, "Deployment", f"medgov-{service}")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def environment(resources: list[dict], container: dict) -> dict[str, dict]:
    """Variable name to its source: {"value": ...} or {"secret": (name, key)}, envFrom resolved."""
    variables = {}
    for source in container.get("envFrom", []):
        config_map = find(resources, "ConfigMap", source["configMapRef"]["name"])
        for key, value in config_map["data"].items():
            variables[source.get("prefix", "") + key] = {"value": value}
    for variable in container.get("env", []):
        if "value" in variable:
            variables[variable["name"]] = {"value": variable["value"]}
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            variables[variable["name"]] = {"secret": (reference["name"], reference["key"])}
    return variables


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_service_pod_is_hardened(service, overlay, rendered):
    pod, container = container_of(rendered[overlay], service)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("service", SERVICES)
def test_service_probes_resources_and_grace_period(service, rendered):
    pod, container = container_of(rendered["prod"], service)

    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    # The consumer drains for up to 20 s after SIGTERM, which comes after the preStop pause.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + 20


@pytest.mark.parametrize("service", SERVICES)
def test_service_environment_follows_conventions(service, rendered):
    resources = rendered["daejeon"]
    _, container = container_of(resources, service)
    variables = environment(resources, container)
    prefix = f"MEDGOV_{service.upper()}_"

    assert variables[prefix + "KAFKA_BOOTSTRAP_SERVERS"] == {"value": "medgov-kafka-bootstrap:9093"}
    assert variables[prefix + "KAFKA_SECURITY_PROTOCOL"] == {"value": "SASL_SSL"}
    assert variables[prefix + "KAFKA_SASL_MECHANISM"] == {"value": "SCRAM-SHA-512"}
    assert variables[prefix + "KAFKA_SASL_USERNAME"] == {"value": f"medgov-{service}"}
    assert variables[prefix + "KAFKA_SASL_PASSWORD"] == {"secret": (f"medgov-{service}", "password")}
    assert variables[prefix + "REGION"] == {"value": "daejeon"}
    assert variables[prefix + "CREATE_TOPICS"] == {"value": "false"}
    assert variables[prefix + "OTEL_EXPORTER_OTLP_ENDPOINT"] == {"value": "http://medgov-collector:4317"}
    assert variables[prefix + "JWT_PUBLIC_KEY"] == {"secret": ("medgov-jwt", "public-key")}
    assert variables["PGPASSWORD"] == {"secret": (f"medgov-pg-{service}", "password")}
    assert variables[prefix + "DATABASE_URL"] == {
        "value": f"postgresql://$(PGUSER):$(PGPASSWORD)@medgov-pg-rw:5432/medgov_{service}"
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_no_service_gets_pseudonym_key(service, overlay, rendered):
    resources = rendered[overlay]
    _, container = container_of(resources, service)

    variables = environment(resources, container)

    assert f"MEDGOV_{service.upper()}_PSEUDONYM_KEY" not in variables
    assert ("medgov-pseudonym", "key") not in [value.get("secret") for value in variables.values()]


@pytest.mark.parametrize("service", SERVICES)
def test_kafka_ca_file_is_mounted_from_strimzi_secret(service, rendered):
    resources = rendered["prod"]
    pod, container = container_of(resources, service)
    ca_file = environment(resources, container)[f"MEDGOV_{service.upper()}_KAFKA_SSL_CAFILE"]["value"]

    directory, file_name = ca_file.rsplit("/", 1)
    mount = next(item for item in container["volumeMounts"] if item["mountPath"] == directory)
    volume = next(item for item in pod["volumes"] if item["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "medgov-cluster-ca-cert"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": file_name}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_committed(overlay, rendered):
    assert of_kind(rendered[overlay], "Secret") == []
    for deployment in of_kind(rendered[overlay], "Deployment"):
        for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
            if re.search(r"PASSWORD|_KEY$", variable["name"]):
                assert "secretKeyRef" in variable.get("valueFrom", {}), variable["name"]


@pytest.mark.parametrize("service", SERVICES)
def test_network_policy_allows_only_dependencies(service, rendered):
    policy = find(rendered["prod"], "NetworkPolicy", f"medgov-{service}")["spec"]

    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": f"medgov-{service}"}}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    egress = {
        tuple(sorted((port["protocol"], port["port"]) for port in rule["ports"])): rule["to"] for rule in policy["egress"]
    }
    dns = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert egress == {
        (("TCP", 53), ("UDP", 53)): dns,
        (("TCP", 9093),): [{"podSelector": {"matchLabels": {"strimzi.io/cluster": "medgov", "strimzi.io/kind": "Kafka"}}}],
        (("TCP", 5432),): [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "medgov-pg"}}}],
        (("TCP", 4317), ("TCP", 4318)): [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "medgov-collector"}}}],
    }
    assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == [8080]


@pytest.mark.parametrize("service", SERVICES)
def test_service_has_disruption_budget_and_lag_autoscaling(service, rendered):
    resources = rendered["prod"]

    budget = find(resources, "PodDisruptionBudget", f"medgov-{service}")["spec"]
    scaler = find(resources, "ScaledObject", f"medgov-{service}")["spec"]
    (trigger,) = scaler["triggers"]
    authentication = find(resources, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]

    assert budget["selector"] == {"matchLabels": {"app.kubernetes.io/name": f"medgov-{service}"}}
    assert budget["maxUnavailable"] == 1
    assert scaler["scaleTargetRef"]["name"] == f"medgov-{service}"
    assert scaler["minReplicaCount"] >= 2
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == f"medgov-{service}"
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    secrets = {item["parameter"]: (item["name"], item["key"]) for item in authentication["secretTargetRef"]}
    assert secrets == {"password": (f"medgov-{service}", "password"), "ca": ("medgov-cluster-ca-cert", "ca.crt")}


def test_deployments_leave_replicas_to_keda(rendered):
    for overlay in OVERLAYS:
        for deployment in of_kind(rendered[overlay], "Deployment"):
            assert "replicas" not in deployment["spec"], f"{overlay}: {deployment['metadata']['name']}"


# --- Kafka, PostgreSQL and overlays -----------------------------------------


@pytest.mark.parametrize("overlay", PRODUCTION_OVERLAYS)
def test_production_kafka_has_dedicated_kraft_quorum(overlay, rendered):
    pools = {item["metadata"]["name"]: item["spec"] for item in of_kind(rendered[overlay], "KafkaNodePool")}

    assert pools["controller"]["roles"] == ["controller"]
    assert pools["controller"]["replicas"] == 3
    assert pools["broker"]["roles"] == ["broker"]
    assert pools["broker"]["replicas"] == 3
    assert {topic["spec"]["replicas"] for topic in of_kind(rendered[overlay], "KafkaTopic")} == {3}


def test_dev_runs_single_node_with_replication_factor_one(rendered):
    (pool,) = of_kind(rendered["dev"], "KafkaNodePool")

    assert pool["spec"]["roles"] == ["controller", "broker"]
    assert {topic["spec"]["replicas"] for topic in of_kind(rendered["dev"], "KafkaTopic")} == {1}
    assert {topic["spec"]["config"]["min.insync.replicas"] for topic in of_kind(rendered["dev"], "KafkaTopic")} == {1}
    assert find(rendered["dev"], "Cluster", "medgov-pg")["spec"]["instances"] == 1


def test_service_roles_own_only_their_database(rendered):
    resources = rendered["prod"]
    cluster = find(resources, "Cluster", "medgov-pg")["spec"]
    roles = {role["name"]: role for role in cluster["managed"]["roles"]}

    assert set(roles) == {f"medgov_{service}" for service in SERVICES}
    for name, role in roles.items():
        assert role["login"] is True, name
        for privilege in ("superuser", "createrole", "createdb", "bypassrls", "replication"):
            assert not role.get(privilege), f"{name}: {privilege}"
        assert not role.get("inRoles"), name
        assert role["passwordSecret"]["name"] == f"medgov-pg-{name.removeprefix('medgov_')}"
    databases = {item["spec"]["name"]: item["spec"] for item in of_kind(resources, "Database")}
    assert {name: spec["owner"] for name, spec in databases.items()} == {name: name for name in roles}


def test_key_material_database_is_closed_to_service_roles(rendered):
    cluster = find(rendered["prod"], "Cluster", "medgov-pg")["spec"]
    initdb = cluster["bootstrap"]["initdb"]
    hba = cluster["postgresql"]["pg_hba"]

    assert (initdb["database"], initdb["owner"]) == ("medgov_keys", "medgov_keys")
    assert "REVOKE CONNECT ON DATABASE medgov_keys FROM PUBLIC" in initdb["postInitApplicationSQL"]
    keys_lines = [line for line in hba if "medgov_keys" in line]
    assert keys_lines == ["hostssl medgov_keys medgov_keys ${podselector:keys-custodian} scram-sha-256"]
    assert hba[-1] == "host all all all reject"


def test_pg_hba_admits_each_service_only_to_its_database_from_its_pods(rendered):
    cluster = find(rendered["prod"], "Cluster", "medgov-pg")["spec"]
    selectors = {ref["name"]: ref["selector"]["matchLabels"] for ref in cluster["podSelectorRefs"]}

    for service in SERVICES:
        lines = [line for line in cluster["postgresql"]["pg_hba"] if f"medgov_{service}" in line]
        assert lines == [f"hostssl medgov_{service} medgov_{service} ${{podselector:{service}}} scram-sha-256"]
        assert selectors[service] == {"app.kubernetes.io/name": f"medgov-{service}"}


@pytest.mark.parametrize("region", REGIONS)
def test_region_overlay_sets_region_and_backup_path(region, rendered):
    resources = rendered[region]

    platform = find(resources, "ConfigMap", "medgov-platform")
    cluster = find(resources, "Cluster", "medgov-pg")

    assert platform["data"]["REGION"] == region
    assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"] == f"s3://medgov-pg-backups/{region}"
    assert find(resources, "ScheduledBackup", "medgov-pg-nightly")["spec"]["cluster"]["name"] == "medgov-pg"
    assert {item["metadata"]["labels"]["medgov/region"] for item in resources} == {region}


def test_dev_has_no_backups(rendered):
    assert of_kind(rendered["dev"], "ScheduledBackup") == []
    assert "backup" not in find(rendered["dev"], "Cluster", "medgov-pg")["spec"]


def test_collector_receives_otlp_and_exposes_prometheus(rendered):
    config = find(rendered["prod"], "OpenTelemetryCollector", "medgov")["spec"]["config"]

    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]


# --- Grafana dashboard ------------------------------------------------------


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_covers_every_metric():
    used = set()
    for expression in dashboard_expressions():
        for name in re.findall(r"medgov_[a-z_]+", expression):
            used.add(name.removesuffix("_bucket"))

    assert used == METRICS


def test_dashboard_reads_histograms_through_buckets():
    for expression in dashboard_expressions():
        for name in HISTOGRAMS & set(re.findall(r"medgov_[a-z_]+", expression)):
            pytest.fail(f"{name} used without _bucket in: {expression}")


def test_dashboard_panels_have_unique_ids_and_templated_datasource():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cluster_random_page_cost(overlay, rendered):
    """Batch look-ups by key use the index only with random_page_cost near 1 (ADR 0039)."""
    for cluster in of_kind(rendered[overlay], "Cluster"):
        assert cluster["spec"]["postgresql"]["parameters"]["random_page_cost"] == "1.1", cluster["metadata"]["name"]


def test_compose_random_page_cost():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert compose["services"]["postgres"]["command"] == ["postgres", "-c", "random_page_cost=1.1"]


@pytest.mark.integration
async def test_launcher_random_page_cost(infra):
    connection = await asyncpg.connect(infra.database_url)
    try:
        assert await connection.fetchval("SHOW random_page_cost") == "1.1"
    finally:
        await connection.close()
