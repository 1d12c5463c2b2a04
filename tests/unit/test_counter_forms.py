"""The counter's form reading (pure): the API's checks with the desk's words, amounts in euros."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.errors import InvalidValue
from domain.model import FaultCategory, Tier
from service.web.desk import euros_input, local, money, parse_euros
from service.web.i18n import translator
from service.web.intake_form import fingerprint, read_intake
from tests.api.helpers import imei

FR = translator("fr")


def form(**changes: str) -> dict[str, str]:
    filled = {
        "name": "Camille Martin",
        "phone": "06 12 34 56 78",
        "brand": "Apple",
        "model": "iPhone 13",
        "imei": imei(3),
        "category": "screen",
        "description": "écran fissuré",
        "tier": "standard",
        "passcode": "1234",
        "acc_charger": "on",
        "accessories": "coque rose; stylet",
    }
    return {**filled, **changes}


def test_a_complete_form_is_the_apis_intake_command() -> None:
    read = read_intake(form(budget="120,50"), FR)
    assert read.errors == {}
    assert read.command is not None
    assert read.command.customer.phone == "+33612345678"
    assert read.command.device.accessories == ("Chargeur", "coque rose", "stylet")
    assert (read.command.fault_category, read.command.tier) == (FaultCategory.SCREEN, Tier.STANDARD)
    assert (read.command.passcode, read.command.preapproved_budget_cents) == ("1234", 12050)
    assert "passcode" not in read.values  # never shown back


def test_each_field_at_fault_gets_its_own_message_in_the_desks_words() -> None:
    wrong_digit = imei(3)[:-1] + str((int(imei(3)[-1]) + 1) % 10)
    read = read_intake(form(name="", phone="12", imei=wrong_digit, category="", tier="fast", budget="douze"), FR)
    assert read.command is None
    assert read.errors == {
        "name": "Obligatoire.",
        "phone": "Numéro de téléphone non valide.",
        "imei": "Le chiffre de contrôle ne correspond pas : relisez l'IMEI (*#06#).",
        "category": "Obligatoire.",
        "tier": "Choisissez une valeur de la liste.",
        "budget": "Montant en euros attendu (ex. 89,90).",
    }
    assert read.values["description"] == "écran fissuré"  # the rest stays as typed


def test_a_device_needs_its_imei_or_its_serial_number() -> None:
    assert read_intake(form(imei=""), FR).errors == {"imei": "Donnez l'IMEI ou le numéro de série."}
    assert read_intake(form(imei="", serial_number="C02XL0GSJGH5"), FR).errors == {}
    assert read_intake(form(imei="35209900000"), FR).errors == {"imei": "Un IMEI a 15 chiffres."}
    assert read_intake(form(imei="3520990000007X"), FR).errors == {"imei": "Un IMEI ne contient que des chiffres."}


def test_the_fingerprint_of_a_form_leaves_the_passcode_out() -> None:
    assert fingerprint(form(passcode="1111")) == fingerprint(form(passcode="2222"))
    assert fingerprint(form(name="A")) != fingerprint(form(name="B"))


@pytest.mark.parametrize(
    ("typed", "cents"), [("89", 8900), ("89,9", 8990), ("1 089.50 €", 108950), ("", None), ("0", 0)]
)
def test_amounts_are_read_in_euros(typed: str, cents: int | None) -> None:
    assert parse_euros(typed, "paid") == cents


@pytest.mark.parametrize("typed", ["-5", "12,345", "abc", "99999999"])
def test_what_is_not_an_amount_is_refused(typed: str) -> None:
    with pytest.raises(InvalidValue):
        parse_euros(typed, "paid")


def test_amounts_and_times_read_as_the_desk_reads_them() -> None:
    assert money(108950, "fr") == "1\u202f089,50\u00a0€"
    assert money(108950, "en") == "€1,089.50"
    assert (euros_input(8900, "fr"), euros_input(8900, "en")) == ("89,00", "89.00")
    at = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    assert local(at, "Europe/Paris", "fr") == "23/11/2026 10:15"
    assert local(at, "Europe/Paris", "en", with_date=False) == "10:15"
