from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m2m.identifiers import (
    iccid_problem,
    imsi_problem,
    luhn_check_digit,
    luhn_valid,
    msisdn_problem,
    normalize_msisdn,
    state_problem,
)

digits = st.text(alphabet="0123456789", min_size=18, max_size=19)


def test_known_luhn_numbers() -> None:
    assert luhn_valid("79927398713")  # the classic example
    assert not luhn_valid("79927398710")
    assert luhn_check_digit("7992739871") == 3


@given(digits)
def test_completed_number_is_valid_and_any_other_last_digit_is_not(payload: str) -> None:
    check = luhn_check_digit(payload)
    assert luhn_valid(payload + str(check))
    for other in set(range(10)) - {check}:
        assert not luhn_valid(payload + str(other))


@given(digits)
def test_iccid_rule(payload: str) -> None:
    iccid = payload + str(luhn_check_digit(payload))
    assert iccid_problem(iccid) is None
    assert iccid_problem(iccid[:-1] + str((int(iccid[-1]) + 1) % 10)) is not None


@pytest.mark.parametrize("value", ["", "89320", "8932" + "0" * 17, "89x" + "0" * 16])
def test_bad_iccids(value: str) -> None:
    assert iccid_problem(value) is not None


def test_imsi_and_msisdn_rules() -> None:
    assert imsi_problem("206011234567890") is None
    assert imsi_problem("20601123456789") is not None
    assert imsi_problem("20601123456789a") is not None
    assert msisdn_problem("12345678") is None
    assert msisdn_problem("123456789012345") is None
    assert msisdn_problem("1234567") is not None
    assert msisdn_problem("1234567890123456") is not None
    assert msisdn_problem("+32470000001") is not None  # normalise first


def test_normalize_msisdn() -> None:
    assert normalize_msisdn(" +32470000001 ") == "32470000001"
    assert normalize_msisdn("32470000001") == "32470000001"


def test_state_rule() -> None:
    assert state_problem("Active") is None
    assert state_problem("active") is not None
    assert "Ready" in (state_problem("Sleeping") or "")
