"""The Prometheus alerting rules in deploy/prometheus: their shape, and that every series they read exists."""

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from medgov_shared.observability import metrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "medgov-alerts.yaml"

# The series prometheus_client exposes for each type, after the metric's name.
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exposed_series() -> set[str]:
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def alert_rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_reads_existing_series(rule):
    used = set(re.findall(r"medgov_[a-z_]+", rule["expr"]))

    assert used
    assert used <= exposed_series()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_and_texts(rule):
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert set(rule["annotations"]) == {"summary", "summary_ko", "description"}
    assert re.fullmatch(r"Medgov[A-Za-z]+", rule["alert"])


def test_alert_names_unique():
    names = [rule["alert"] for rule in alert_rules()]

    assert len(names) == len(set(names))
