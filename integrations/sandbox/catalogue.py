"""The parts every sandbox supplier carries, and each tenant's deterministic prices, lead times and stock.

Everything a tenant quotes is derived from sha256(seed, tenant, sku[, minute]) so two runs with the same
seed agree to the cent, while two tenants in one process behave as two different suppliers. Python's
`hash()` is salted per process, hence hashlib.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime

CURRENCY = "EUR"
OUT_OF_STOCK_CHANCE = 0.12  # per SKU and minute: a supplier is sometimes out


@dataclass(frozen=True, slots=True)
class Part:
    """A part as the supplier lists it. `category` uses Atelier's fault categories so the demo can seed."""

    sku: str
    description: str
    models: tuple[str, ...]
    category: str
    list_price_cents: int


def _p(sku: str, description: str, models: tuple[str, ...], category: str, euros: int) -> Part:
    return Part(sku, description, models, category, euros * 100)


CATALOGUE: tuple[Part, ...] = (
    _p("IPH12-SCREEN-OLED", "iPhone 12 / 12 Pro OLED display assembly", ("iPhone 12", "iPhone 12 Pro"), "screen", 89),
    _p("IPH12-BATTERY", "iPhone 12 / 12 Pro battery, 2815 mAh", ("iPhone 12", "iPhone 12 Pro"), "battery", 29),
    _p(
        "IPH12-CHARGE-PORT", "iPhone 12 Lightning charge port flex", ("iPhone 12", "iPhone 12 Pro"), "charging_port", 19
    ),
    _p("IPH13-SCREEN-OLED", "iPhone 13 OLED display assembly", ("iPhone 13",), "screen", 99),
    _p("IPH13-BATTERY", "iPhone 13 battery, 3227 mAh", ("iPhone 13",), "battery", 32),
    _p("IPH13-CHARGE-PORT", "iPhone 13 Lightning charge port flex", ("iPhone 13",), "charging_port", 21),
    _p("IPH13-REAR-CAMERA", "iPhone 13 dual rear camera module", ("iPhone 13",), "camera", 59),
    _p("IPH13-BACK-GLASS", "iPhone 13 back glass, with adhesive", ("iPhone 13",), "back_glass", 24),
    _p("IPH14-SCREEN-OLED", "iPhone 14 OLED display assembly", ("iPhone 14",), "screen", 119),
    _p("IPH14-BATTERY", "iPhone 14 battery, 3279 mAh", ("iPhone 14",), "battery", 35),
    _p("IPH14-CHARGE-PORT", "iPhone 14 Lightning charge port flex", ("iPhone 14",), "charging_port", 23),
    _p("IPH15-SCREEN-OLED", "iPhone 15 OLED display assembly", ("iPhone 15",), "screen", 149),
    _p("IPH15-BATTERY", "iPhone 15 battery, 3349 mAh", ("iPhone 15",), "battery", 39),
    _p("IPH15-CHARGE-PORT", "iPhone 15 USB-C charge port flex", ("iPhone 15",), "charging_port", 27),
    _p("IPHSE3-SCREEN-LCD", "iPhone SE (2022) LCD display assembly", ("iPhone SE (2022)",), "screen", 39),
    _p("IPHSE3-BATTERY", "iPhone SE (2022) battery, 2018 mAh", ("iPhone SE (2022)",), "battery", 22),
    _p("SAM-S22-SCREEN", "Galaxy S22 AMOLED display with frame", ("Galaxy S22",), "screen", 129),
    _p("SAM-S22-BATTERY", "Galaxy S22 battery EB-BS901ABY, 3700 mAh", ("Galaxy S22",), "battery", 29),
    _p("SAM-S23-SCREEN", "Galaxy S23 AMOLED display with frame", ("Galaxy S23",), "screen", 139),
    _p("SAM-S23-BATTERY", "Galaxy S23 battery EB-BS912ABY, 3900 mAh", ("Galaxy S23",), "battery", 31),
    _p("SAM-A54-SCREEN", "Galaxy A54 5G AMOLED display with frame", ("Galaxy A54",), "screen", 69),
    _p("SAM-A54-BATTERY", "Galaxy A54 5G battery EB-BA546ABY, 5000 mAh", ("Galaxy A54",), "battery", 25),
    _p("SAM-A54-CHARGE-PORT", "Galaxy A54 5G USB-C charge port board", ("Galaxy A54",), "charging_port", 15),
    _p("SAM-A34-SCREEN", "Galaxy A34 5G AMOLED display with frame", ("Galaxy A34",), "screen", 59),
    _p("PIX7-SCREEN", "Pixel 7 OLED display assembly", ("Pixel 7",), "screen", 95),
    _p("PIX7-BATTERY", "Pixel 7 battery GVU6C, 4355 mAh", ("Pixel 7",), "battery", 30),
    _p("PIX8-SCREEN", "Pixel 8 OLED display assembly", ("Pixel 8",), "screen", 109),
    _p("PIX8-BATTERY", "Pixel 8 battery GZ4AC, 4575 mAh", ("Pixel 8",), "battery", 33),
    _p("XRN12-SCREEN", "Redmi Note 12 AMOLED display with frame", ("Redmi Note 12",), "screen", 45),
    _p("XRN12-BATTERY", "Redmi Note 12 battery BN5J, 5000 mAh", ("Redmi Note 12",), "battery", 19),
    _p("IPAD9-SCREEN", "iPad (9th gen.) digitiser glass", ("iPad (9th generation)",), "screen", 69),
    _p("IPAD9-BATTERY", "iPad (9th gen.) battery, 8557 mAh", ("iPad (9th generation)",), "battery", 45),
    _p("MBA-M1-BATTERY", "MacBook Air 13in M1 battery A2389", ("MacBook Air 13in M1 (2020)",), "battery", 89),
    _p("MBA-M1-SCREEN", "MacBook Air 13in M1 display assembly", ("MacBook Air 13in M1 (2020)",), "screen", 299),
    _p("MBA-M2-BATTERY", "MacBook Air 13in M2 battery A2681", ("MacBook Air 13in M2 (2022)",), "battery", 99),
    _p(
        "MBP14-KEYBOARD",
        "MacBook Pro 14in keyboard, AZERTY FR",
        ("MacBook Pro 14in (2021)", "MacBook Pro 14in (2023)"),
        "other",
        149,
    ),
    _p(
        "MBP14-BATTERY",
        "MacBook Pro 14in battery A2519",
        ("MacBook Pro 14in (2021)", "MacBook Pro 14in (2023)"),
        "battery",
        139,
    ),
    _p("XPS13-BATTERY", "Dell XPS 13 battery 52 Wh", ("XPS 13 9310", "XPS 13 9305"), "battery", 79),
    _p("XPS13-KEYBOARD", "Dell XPS 13 backlit keyboard, AZERTY FR", ("XPS 13 9310", "XPS 13 9305"), "other", 69),
    _p(
        "TPX1C9-BATTERY",
        "ThinkPad X1 Carbon battery 57 Wh",
        ("ThinkPad X1 Carbon Gen 9", "ThinkPad X1 Carbon Gen 10"),
        "battery",
        85,
    ),
    _p("TPT14-KEYBOARD", "ThinkPad T14 keyboard, AZERTY FR", ("ThinkPad T14 Gen 2", "ThinkPad T14 Gen 3"), "other", 55),
    _p("SURFP8-SCREEN", "Surface Pro 8 display assembly", ("Surface Pro 8",), "screen", 249),
)
BY_SKU: dict[str, Part] = {part.sku: part for part in CATALOGUE}


@dataclass(frozen=True, slots=True)
class Terms:
    """What one tenant asks for one part, fixed for the tenant's life."""

    price_cents: int
    lead_hours: int  # in stock: ordered now, at the shop this much later
    restock_hours: int  # out of stock: back in stock and at the shop this much later
    typical_stock: int


def seeded(*parts: object) -> random.Random:
    """A generator that depends only on its arguments, the same in every process."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (a simulation, not a secret)


def terms(seed: int, tenant: str, sku: str) -> Terms:
    rng = seeded(seed, tenant, sku, "terms")
    price = BY_SKU[sku].list_price_cents * rng.uniform(0.8, 1.25)
    return Terms(
        price_cents=int(round(price / 10) * 10),  # suppliers quote round-ish prices
        lead_hours=rng.choice((18, 24, 48, 72)),
        restock_hours=rng.choice((120, 168, 240, 336)),
        typical_stock=rng.randint(0, 20),
    )


def minute_bucket(now: datetime) -> int:
    return int(now.timestamp() // 60)


def seeded_stock(seed: int, tenant: str, sku: str, bucket: int) -> int:
    """Units on the shelf during one minute: around the tenant's typical level, sometimes none."""
    rng = seeded(seed, tenant, sku, bucket)
    if rng.random() < OUT_OF_STOCK_CHANCE:
        return 0
    return max(0, terms(seed, tenant, sku).typical_stock + rng.randint(-3, 3))
