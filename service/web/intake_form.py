"""The counter's intake form: what the desk typed, checked exactly as the API checks an intake body
(`IntakeIn`), with a message in the desk's language next to each field at fault. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from pydantic import ValidationError
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength

from domain.errors import DomainError, InvalidValue
from domain.express import OVERRIDE_FIELD, CapacityReached
from domain.identifiers import normalise_imei, normalise_phone
from service.api.schemas import IntakeIn
from service.usecases.jobs import IntakeCommand
from service.web.desk import parse_euros, words_of

Words = Callable[[str], str]

PASSCODE = "passcode"  # never shown back, never in the fingerprint
KEY = "intake_key"  # one per form shown: a second submission of the same form replays the first
ACCESSORIES = ("charger", "cable", "case", "sim", "memory_card")  # checkboxes `acc_<name>`
TEXT_FIELDS = (
    "name",
    "phone",
    "email",
    "customer_language",
    "brand",
    "model",
    "imei",
    "serial_number",
    "colour",
    "condition",
    "accessories",
    "category",
    "description",
    "tier",
    "budget",
    "branch",
    OVERRIDE_FIELD,
    KEY,
)
CHECKBOXES = ("sms_consent", *(f"acc_{name}" for name in ACCESSORIES))
CHECKED = ("imei", "phone")  # what the form checks as soon as the desk leaves the field
_KEY = re.compile(r"[0-9a-f]{32}")
_LIST_SEPARATORS = re.compile(r"[,;\n]")

# Where an error of the API body lands on the form (the longest matching prefix of its location wins).
_PLACES: dict[tuple[str, ...], str] = {
    ("customer", "name"): "name",
    ("customer", "phone"): "phone",
    ("customer", "email"): "email",
    ("customer", "language"): "customer_language",
    ("device", "brand"): "brand",
    ("device", "model"): "model",
    ("device", "imei"): "imei",
    ("device", "serial_number"): "serial_number",
    ("device", "colour"): "colour",
    ("device", "condition"): "condition",
    ("device", "accessories"): "accessories",
    ("device",): "imei",  # "give the device's imei or its serial_number"
    ("fault", "category"): "category",
    ("fault", "description"): "description",
    ("tier",): "tier",
    ("preapproved_budget_cents",): "budget",
    ("passcode",): PASSCODE,
    ("branch",): "branch",
    (OVERRIDE_FIELD,): OVERRIDE_FIELD,
}
_KINDS = {
    "missing": "counter_err_required",
    "string_too_short": "counter_err_required",
    "string_too_long": "counter_err_too_long",
    "too_long": "counter_err_too_many",
    "enum": "counter_err_choose",
    "literal_error": "counter_err_choose",
    "greater_than_equal": "counter_err_amount",
    "less_than_equal": "counter_err_amount",
}
_VALUE_ERRORS = {  # a field's own check failed (a value_error of the API body)
    "email": "counter_err_email",
    "serial_number": "counter_err_serial",
    "imei": "counter_err_imei_or_serial",  # the device-level rule: the IMEI's own is checked before
}


@dataclass(frozen=True, slots=True)
class IntakeForm:
    """The form read: a command for `jobs.intake`, or the messages per field (`""`: the whole form)."""

    values: dict[str, str]  # to show back: never the passcode
    errors: dict[str, str] = field(default_factory=dict)
    command: IntakeCommand | None = None


def read_intake(form: Mapping[str, str], t: Words) -> IntakeForm:
    values = {name: form.get(name, "").strip() for name in TEXT_FIELDS}
    values.update({name: "on" for name in CHECKBOXES if form.get(name)})
    errors = {name: message for name in CHECKED if (message := field_error(name, values[name], t))}
    budget = _cents(values["budget"], t, errors)
    try:
        checked = IntakeIn.model_validate(_body(values, form.get(PASSCODE, ""), budget, t))
    except ValidationError as exc:
        return IntakeForm(values, {**_placed(exc, t), **errors})
    if errors:
        return IntakeForm(values, errors)
    return IntakeForm(values, command=checked.to_command())


def field_error(name: str, value: str, t: Words) -> str | None:
    """The message for one checked field, or None when it is right (an empty IMEI is: a serial may do)."""
    if name == "phone":
        if not value:
            return t("counter_err_required")
        try:
            normalise_phone(value)
        except InvalidValue:
            return t("counter_err_phone")
    elif name == "imei" and value:
        return _imei_error(value, t)
    return None


def field_ok(name: str, value: str, t: Words) -> str:
    """What the desk sees when a checked field is right: the number as it will be stored."""
    if name == "phone":
        parsed = phonenumbers.parse(normalise_phone(value))
        shown = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return f"{t('counter_ok_phone')} {shown}"
    return t("counter_ok_imei") if value else ""


def _imei_error(value: str, t: Words) -> str | None:
    try:
        normalise_imei(value)
    except InvalidValue as exc:
        cause = exc.__cause__
        if isinstance(cause, InvalidChecksum):
            return t("counter_err_imei_check")
        if isinstance(cause, InvalidFormat) and not isinstance(cause, InvalidLength):  # a length is a format
            return t("counter_err_imei_digits")
        return t("counter_err_imei_length")  # or 14/16 digits, which stdnum takes and an intake does not
    return None


def _cents(raw: str, t: Words, errors: dict[str, str]) -> int | None:
    try:
        return parse_euros(raw, "budget")
    except InvalidValue:
        errors["budget"] = t("counter_err_amount")
        return None


def _body(values: Mapping[str, str], passcode: str, budget: int | None, t: Words) -> dict[str, Any]:
    """The API's intake body from the form; what is left empty is left out, as a client would."""
    return _present(
        {
            "customer": _present(
                {
                    "name": values["name"],
                    "phone": values["phone"],
                    "email": values["email"],
                    "sms_consent": "sms_consent" in values,
                    "language": values["customer_language"] or "fr",
                }
            ),
            "device": _present(
                {
                    "brand": values["brand"],
                    "model": values["model"],
                    "imei": values["imei"],
                    "serial_number": values["serial_number"],
                    "colour": values["colour"],
                    "condition": values["condition"],
                    "accessories": accessories(values, t),
                }
            ),
            "fault": _present({"category": values["category"], "description": values["description"]}),
            "tier": values["tier"],
            "preapproved_budget_cents": budget,
            PASSCODE: passcode,  # as typed: spaces may be part of it
            "branch": values["branch"],
            OVERRIDE_FIELD: values[OVERRIDE_FIELD],
        }
    )


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value not in ("", None)}


def accessories(values: Mapping[str, str], t: Words) -> list[str]:
    """The ticked accessories in the desk's words, then the others typed (comma-separated)."""
    ticked = [t(f"counter_acc_{name}") for name in ACCESSORIES if f"acc_{name}" in values]
    typed = [part.strip() for part in _LIST_SEPARATORS.split(values.get("accessories", "")) if part.strip()]
    return ticked + typed


def _placed(exc: ValidationError, t: Words) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        place = next((_PLACES[loc[:n]] for n in (2, 1) if loc[:n] in _PLACES), "")
        kind = _KINDS.get(error["type"]) or _VALUE_ERRORS.get(place)
        errors.setdefault(place, t(kind) if kind else str(error["msg"]).removeprefix("Value error, "))
    return errors


def placed_refusal(exc: DomainError, t: Words) -> dict[str, str]:
    """A refusal of the intake use case, next to the field it names when the form has one."""
    if isinstance(exc, CapacityReached):
        return {"tier": t("counter_err_express_full")}
    if isinstance(exc, InvalidValue) and exc.field in (*TEXT_FIELDS, PASSCODE):
        return {exc.field: exc.reason}
    return {"": words_of(exc, t)}


def valid_key(raw: str) -> str | None:
    return raw if _KEY.fullmatch(raw) else None


def fingerprint(form: Mapping[str, str]) -> str:
    """What a repeated submission must match to be replayed. Not the passcode: this hash is stored, and
    with the rest of the form known a short passcode would be found from it."""
    kept = {name: value for name, value in form.items() if name not in (PASSCODE, KEY, "_csrf_token")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
