"""Only a registered hospital may hold a dataset: registered_hospital checks the sender of a RegisterDataset."""

import pytest

from medgov_shared.contracts.institutions import EXTRA_INSTITUTIONS_ENV
from medgov_shared.contracts.types import Region
from medgov_shared.testing.institutions import throwaway_hospital

from medgov_catalog.dataset_service import registered_hospital
from medgov_catalog.domain.registration import RegistrationRejected


def test_packaged_hospital_accepted() -> None:
    holder = registered_hospital("knuh")

    assert holder.id == "knuh"
    assert holder.region == Region.DAEGU


def test_unknown_institution_rejected() -> None:
    with pytest.raises(RegistrationRejected) as raised:
        registered_hospital("t-unknown")

    message = str(raised.value)
    assert "institution 't-unknown' is not registered" in message
    assert "Register it as a hospital" in message
    assert EXTRA_INSTITUTIONS_ENV in message


@pytest.mark.parametrize(("institution_id", "kind"), [("vendor-medvision", "vendor"), ("dgmif", "partner")])
def test_non_hospital_rejected(institution_id: str, kind: str) -> None:
    with pytest.raises(RegistrationRejected) as raised:
        registered_hospital(institution_id)

    assert f"institution '{institution_id}' is registered as a {kind}" in str(raised.value)
    assert "only hospitals hold datasets" in str(raised.value)


def test_extra_hospital_accepted_with_its_region(register_institutions) -> None:  # type: ignore[no-untyped-def]
    register_institutions(throwaway_hospital("t-extra", Region.GWANGJU))

    holder = registered_hospital("t-extra")

    assert holder.kind == "hospital"
    assert holder.region == Region.GWANGJU


def test_extra_registration_ends_with_test() -> None:
    # Runs after the test above in file order: the fixture restored the variable and cleared the cache.
    with pytest.raises(RegistrationRejected):
        registered_hospital("t-extra")
