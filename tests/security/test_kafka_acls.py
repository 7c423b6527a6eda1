"""Kafka ACLs on the local broker's SCRAM listener, derived from the same model as the Strimzi KafkaUsers."""

import importlib.util
import secrets
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.helpers import create_ssl_context

from medgov_shared.testing.infrastructure import REPO_ROOT, launcher_runs_kafka, load_launcher

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _generator():
    spec = importlib.util.spec_from_file_location("medgov_k8s_generate", REPO_ROOT / "deploy/k8s/generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _acl_commands(user: str, rules: list[dict]) -> list[list[str]]:
    """AclCommand argument lists, one per (pattern type, operations) so the JVM starts few times."""
    grouped: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for rule in rules:
        resource = rule["resource"]
        grouped.setdefault((resource.get("patternType", "literal"), tuple(rule["operations"])), []).append(resource)
    commands = []
    for (pattern, operations), resources in grouped.items():
        arguments = ["--add", "--allow-principal", f"User:{user}"]
        for resource in resources:
            arguments += [{"topic": "--topic", "group": "--group"}[resource["type"]], resource["name"]]
        if pattern == "prefix":
            arguments += ["--resource-pattern-type", "prefixed"]
        for operation in operations:
            arguments += ["--operation", operation]
        commands.append(arguments)
    return commands


@pytest.fixture(scope="module")
def secured_broker(infra):
    launcher = load_launcher()
    if not launcher_runs_kafka(launcher, infra):
        pytest.skip("the ACL test needs the broker started by the local launcher, with the same MEDGOV_*_PORT variables as at `make up`")
    values = launcher.up(with_security=True)
    generator = _generator()
    users = {item["metadata"]["name"]: item for item in
             generator.build_service_users() + generator.build_institution_users()}
    passwords = {}
    for name in ("institution-knuh", "institution-dsmc", "medgov-consent"):
        passwords[name] = secrets.token_hex(16)
        launcher.add_scram_user(name, passwords[name])
        for arguments in _acl_commands(name, users[name]["spec"]["authorization"]["acls"]):
            launcher.run_kafka_tool(
                "org.apache.kafka.tools.AclCommand",
                ["--bootstrap-server", infra.kafka_bootstrap_servers, *arguments],
            )
    cafile = Path(values.get("KAFKA_SSL_CAFILE", ""))
    if not cafile.is_absolute():
        cafile = REPO_ROOT / cafile
    return values["KAFKA_SASL_BOOTSTRAP_SERVERS"], passwords, create_ssl_context(cafile=str(cafile))


async def _produce(secured_broker, user: str, topic: str) -> None:
    bootstrap, passwords, context = secured_broker
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, security_protocol="SASL_SSL", ssl_context=context,
        sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user, sasl_plain_password=passwords[user],
        request_timeout_ms=10_000,
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def _ensure_topics(infra, settings_factory):
    from medgov_shared.messaging.topics import ensure_topics
    from medgov_shared.settings import ServiceSettings

    class TopicSettings(ServiceSettings):
        service_name = "catalog"

    await ensure_topics(settings_factory(TopicSettings))


async def test_hospital_writes_its_own_inbound_topic(infra, settings_factory, secured_broker):
    await _ensure_topics(infra, settings_factory)

    await _produce(secured_broker, "institution-knuh", "medgov.inbound.knuh.v1")


@pytest.mark.parametrize("topic", ["medgov.inbound.dsmc.v1", "medgov.consent.v1", "medgov.review.v1"])
async def test_hospital_cannot_write_other_topics(infra, settings_factory, secured_broker, topic):
    await _ensure_topics(infra, settings_factory)

    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(secured_broker, "institution-knuh", topic)


async def test_service_writes_only_its_own_topic(infra, settings_factory, secured_broker):
    await _ensure_topics(infra, settings_factory)

    await _produce(secured_broker, "medgov-consent", "medgov.consent.v1")
    with pytest.raises(TopicAuthorizationFailedError):
        await _produce(secured_broker, "medgov-consent", "medgov.review.v1")


def test_ssl_context_verifies_broker(secured_broker):
    _, _, context = secured_broker

    assert context.verify_mode == ssl.CERT_REQUIRED
