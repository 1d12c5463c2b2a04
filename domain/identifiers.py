"""Checks and normal forms for identifiers customers hand us: IMEIs, serial numbers, phone numbers."""

from __future__ import annotations

import re

import phonenumbers
from stdnum import imei as stdnum_imei
from stdnum.exceptions import ValidationError

from domain.errors import InvalidValue

DEFAULT_PHONE_REGION = "FR"
_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/.]{2,39}$")


def normalise_imei(value: str, field: str = "imei") -> str:
    """The 15-digit IMEI with a valid Luhn check digit (IMEISV and 14-digit forms are refused)."""
    try:
        number = stdnum_imei.validate(value)
    except ValidationError as exc:
        raise InvalidValue(field, f"not a valid IMEI ({exc})") from exc
    if len(number) != 15:
        raise InvalidValue(field, "an IMEI has 15 digits including its check digit")
    return str(number)


def normalise_serial(value: str, field: str = "serial_number") -> str:
    serial = value.strip().upper()
    if not _SERIAL.match(serial):
        raise InvalidValue(field, "a serial number is 3 to 40 letters, digits, '-', '/' or '.'")
    return serial


def normalise_phone(value: str, region: str = DEFAULT_PHONE_REGION, field: str = "phone") -> str:
    """The number in E.164; national numbers are read in `region` (France unless said otherwise)."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(field, "not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidValue(field, "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
