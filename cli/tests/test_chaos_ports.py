"""Ports of the chaos run's private broker and database."""

import pytest

from medgov_cli.chaos.infrastructure import PRIVATE_PORTS, ChaosSetupError, private_ports


def test_default_ports_offset():
    assert private_ports({}) == {
        "MEDGOV_KAFKA_PORT": "29092",
        "MEDGOV_KAFKA_SASL_PORT": "29093",
        "MEDGOV_KAFKA_CONTROLLER_PORT": "29094",
        "MEDGOV_POSTGRES_PORT": "25432",
    }
    assert private_ports({}) == PRIVATE_PORTS


def test_launcher_ports_followed():
    ports = private_ports({"MEDGOV_KAFKA_PORT": "39192", "MEDGOV_KAFKA_SASL_PORT": "39193",
                           "MEDGOV_KAFKA_CONTROLLER_PORT": "39194", "MEDGOV_POSTGRES_PORT": "35532"})

    assert ports["MEDGOV_KAFKA_PORT"] == "49192"
    assert ports["MEDGOV_KAFKA_CONTROLLER_PORT"] == "49194"
    assert ports["MEDGOV_POSTGRES_PORT"] == "45532"


@pytest.mark.parametrize("value", ["60000", "0", "abc", "-5"])
def test_unusable_port_rejected(value):
    with pytest.raises(ChaosSetupError, match=rf"MEDGOV_POSTGRES_PORT='{value}' is not a port from 1 to 55535"):
        private_ports({"MEDGOV_POSTGRES_PORT": value})
