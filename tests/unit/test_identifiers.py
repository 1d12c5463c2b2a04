"""Normal forms of what customers hand over at the desk: IMEIs, serial numbers, phone numbers."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.identifiers import normalise_imei, normalise_phone, normalise_serial

# --- IMEI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["490154203237518", "49-015420-323751-8", "49 015420 323751 8", " 490154203237518 "])
def test_normalise_imei_accepts_a_valid_imei_in_any_layout(raw: str) -> None:
    assert normalise_imei(raw) == "490154203237518"


@pytest.mark.parametrize(
    "raw",
    [
        "490154203237519",  # wrong Luhn check digit
        "49015420323751",  # 14 digits: no check digit
        "4901542032375186",  # 16 digits: an IMEISV, not an IMEI
        "49015420323751X",
        "not an imei",
        "",
    ],
)
def test_normalise_imei_rejects_invalid_values_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_imei(raw, field="device.imei")
    assert info.value.field == "device.imei"


def test_normalise_imei_default_field() -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_imei("490154203237519")
    assert info.value.field == "imei"


# --- phone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("0612345678", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_normalise_phone_gives_e164(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


def test_normalise_phone_reads_national_numbers_in_the_given_region() -> None:
    assert normalise_phone("020 7946 0958", region="GB") == "+442079460958"
    with pytest.raises(InvalidValue):
        normalise_phone("020 7946 0958")  # read as a French number, it is not valid


@pytest.mark.parametrize("raw", ["12", "abc", "", "06 12 34"])
def test_normalise_phone_rejects_invalid_numbers_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_phone(raw, field="customer.phone")
    assert info.value.field == "customer.phone"


# --- serial number ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" c02xk0abjg5h ", "C02XK0ABJG5H"),
        ("SN-123/45.6", "SN-123/45.6"),
        ("abc", "ABC"),
        ("A" * 40, "A" * 40),
    ],
)
def test_normalise_serial_strips_and_uppercases(raw: str, expected: str) -> None:
    assert normalise_serial(raw) == expected


@pytest.mark.parametrize("raw", ["AB", "A" * 41, "-ABC", "AB C", "ABC#1", "", "   "])
def test_normalise_serial_rejects_bad_serials_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise_serial(raw, field="device.serial_number")
    assert info.value.field == "device.serial_number"
