"""Ports of the chaos run's private broker and database."""

import pytest

from medgov_cli.chaos.infrastructure import PRIVATE_PORTS, ChaosSetupError, private_ports

LINUX_DEFAULT = (32768, 60999)


def test_default_ports_offset():
    assert private_ports({}, LINUX_DEFAULT) == {
        "MEDGOV_KAFKA_PORT": "29092",
        "MEDGOV_KAFKA_SASL_PORT": "29093",
        "MEDGOV_KAFKA_CONTROLLER_PORT": "29094",
        "MEDGOV_POSTGRES_PORT": "25432",
    }
    assert private_ports({}, LINUX_DEFAULT) == PRIVATE_PORTS


def test_launcher_ports_followed():
    ports = private_ports({"MEDGOV_KAFKA_PORT": "12192", "MEDGOV_KAFKA_SASL_PORT": "12193",
                           "MEDGOV_KAFKA_CONTROLLER_PORT": "12194", "MEDGOV_POSTGRES_PORT": "12532"}, LINUX_DEFAULT)

    assert ports["MEDGOV_KAFKA_PORT"] == "22192"
    assert ports["MEDGOV_KAFKA_CONTROLLER_PORT"] == "22194"
    assert ports["MEDGOV_POSTGRES_PORT"] == "22532"


def test_ports_below_when_above_ephemeral():
    ports = private_ports({"MEDGOV_KAFKA_PORT": "29192", "MEDGOV_POSTGRES_PORT": "25532"}, LINUX_DEFAULT)

    assert ports["MEDGOV_KAFKA_PORT"] == "19192"
    assert ports["MEDGOV_POSTGRES_PORT"] == "15532"
    assert ports["MEDGOV_KAFKA_SASL_PORT"] == "29093"  # the default 19093 plus 10000 is below the range


def test_range_read_from_the_machine(tmp_path):
    from medgov_cli.chaos.infrastructure import ephemeral_port_range

    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")

    assert ephemeral_port_range(setting) == (40000, 50000)
    assert ephemeral_port_range(tmp_path / "missing") == LINUX_DEFAULT


@pytest.mark.parametrize("value", ["0", "abc", "-5", "70000"])
def test_unusable_port_rejected(value):
    with pytest.raises(ChaosSetupError, match=rf"MEDGOV_POSTGRES_PORT='{value}' is not a port from 1 to 65535"):
        private_ports({"MEDGOV_POSTGRES_PORT": value}, LINUX_DEFAULT)


def test_port_with_no_free_side_rejected():
    with pytest.raises(ChaosSetupError, match=r"MEDGOV_POSTGRES_PORT=5000: .* both 15000 and -5000"):
        private_ports({"MEDGOV_POSTGRES_PORT": "5000"}, (10000, 60999))
