"""Use cases of suppliers: managing them (managers only), their SKU map, their scorecard.

Secrets (API key, webhook secrets) are encrypted at rest with the data keys and never leave through the
API: `SupplierView` tells only whether they are set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from domain.errors import InvalidValue, NotPermitted
from domain.model import Actor
from domain.parts import Supplier, normalise_sku
from domain.sourcing import WINDOW, Scorecard, scorecard
from domain.stages import Role
from integrations.suppliers.base import AdapterKind, SupplierConfig
from integrations.urlguard import UnsafeURL, check_supplier_url
from integrations.webhooks import InvalidSecret, secret_key
from service.persistence.suppliers import SkuMapping, StoredSupplier
from service.secrets import PasscodeCipher
from service.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class SupplierCommand:
    """A new supplier, or the fields of one to change (None: leave as is)."""

    name: str | None = None
    adapter: AdapterKind | None = None
    base_url: str | None = None
    api_key: str | None = None
    clear_api_key: bool = False
    webhook_secrets: Sequence[str] | None = None
    poll_interval_seconds: int | None = None
    rate_limit_per_minute: int | None = None
    active: bool | None = None


def require_manager(actor: Actor, what: str) -> None:
    if actor.role is not Role.MANAGER:
        raise NotPermitted(f"only a manager {what}")


async def safe_base_url(url: str, *, allow_private: bool) -> str:
    """http(s) to a public host only (no SSRF into the shop's network), unless the setting allows it.
    Resolving the name blocks, so it runs in a thread."""
    try:
        return await asyncio.to_thread(check_supplier_url, url, allow_private=allow_private)
    except UnsafeURL as exc:
        raise InvalidValue("base_url", str(exc)) from exc


def _secrets_ciphertext(secrets: Sequence[str], cipher: PasscodeCipher) -> str | None:
    for index, secret in enumerate(secrets):
        try:
            secret_key(secret)
        except InvalidSecret as exc:
            raise InvalidValue(f"webhook_secrets[{index}]", str(exc)) from exc
    return cipher.encrypt(json.dumps(list(secrets))) if secrets else None


def webhook_secrets(stored: StoredSupplier | str | None, cipher: PasscodeCipher) -> list[str]:
    ciphertext = stored.webhook_secrets_ciphertext if isinstance(stored, StoredSupplier) else stored
    if not ciphertext:
        return []
    secrets: list[str] = json.loads(cipher.decrypt(ciphertext))
    return secrets


def client_config(stored: StoredSupplier, cipher: PasscodeCipher) -> SupplierConfig:
    """What an adapter needs, secrets decrypted: only ever held in memory, never logged."""
    s = stored.supplier
    api_key = (
        json.loads(cipher.decrypt(stored.credentials_ciphertext))["api_key"] if stored.credentials_ciphertext else None
    )
    return SupplierConfig(s.id, s.name, AdapterKind(s.adapter), s.base_url, api_key, s.rate_limit_per_minute)


def view(stored: StoredSupplier, cipher: PasscodeCipher) -> Supplier:
    """The supplier as shown: how many webhook secrets it has, never what they are."""
    return replace(stored.supplier, webhook_secret_count=len(webhook_secrets(stored, cipher)))


async def create_supplier(
    uow: UnitOfWork, actor: Actor, cmd: SupplierCommand, *, now: datetime, cipher: PasscodeCipher, allow_private: bool
) -> Supplier:
    require_manager(actor, "adds suppliers")
    if cmd.name is None or cmd.adapter is None or cmd.base_url is None:
        raise InvalidValue("supplier", "name, adapter and base_url are required")
    values = {
        "name": cmd.name,
        "adapter": cmd.adapter.value,
        "base_url": await safe_base_url(cmd.base_url, allow_private=allow_private),
        "credentials_ciphertext": cipher.encrypt(json.dumps({"api_key": cmd.api_key})) if cmd.api_key else None,
        "webhook_secrets_ciphertext": _secrets_ciphertext(cmd.webhook_secrets or (), cipher),
        "poll_interval_seconds": cmd.poll_interval_seconds or 900,
        "rate_limit_per_minute": cmd.rate_limit_per_minute or 60,
        "active": True if cmd.active is None else cmd.active,
        "created_at": now,
        "updated_at": now,
    }
    supplier_id = await uow.suppliers.add(values)
    return view(await uow.suppliers.get(supplier_id), cipher)


async def update_supplier(
    uow: UnitOfWork,
    actor: Actor,
    supplier_id: int,
    cmd: SupplierCommand,
    *,
    now: datetime,
    cipher: PasscodeCipher,
    allow_private: bool,
) -> Supplier:
    require_manager(actor, "changes suppliers")
    await uow.suppliers.get(supplier_id)  # 404 before anything else
    values: dict[str, object] = {"updated_at": now}
    for name in ("name", "poll_interval_seconds", "rate_limit_per_minute", "active"):
        if getattr(cmd, name) is not None:
            values[name] = getattr(cmd, name)
    if cmd.adapter is not None:
        values["adapter"] = cmd.adapter.value
    if cmd.base_url is not None:
        values["base_url"] = await safe_base_url(cmd.base_url, allow_private=allow_private)
    if cmd.clear_api_key:
        values["credentials_ciphertext"] = None
    elif cmd.api_key is not None:
        values["credentials_ciphertext"] = cipher.encrypt(json.dumps({"api_key": cmd.api_key}))
    if cmd.webhook_secrets is not None:  # replaces the list: rotation sends [new, old], later [new]
        values["webhook_secrets_ciphertext"] = _secrets_ciphertext(cmd.webhook_secrets, cipher)
    await uow.suppliers.update(supplier_id, values)
    return view(await uow.suppliers.get(supplier_id), cipher)


async def get_supplier(uow: UnitOfWork, supplier_id: int, cipher: PasscodeCipher) -> Supplier:
    return view(await uow.suppliers.get(supplier_id), cipher)


async def list_suppliers(uow: UnitOfWork, cipher: PasscodeCipher) -> list[Supplier]:
    return [view(stored, cipher) for stored in await uow.suppliers.list()]


async def supplier_skus(uow: UnitOfWork, supplier_id: int, *, unmapped_only: bool) -> list[SkuMapping]:
    await uow.suppliers.get(supplier_id)
    return await uow.suppliers.mappings(supplier_id, unmapped_only=unmapped_only)


async def map_supplier_sku(
    uow: UnitOfWork, actor: Actor, supplier_id: int, supplier_sku: str, sku: str | None, *, now: datetime
) -> SkuMapping:
    """Say which of our SKUs a supplier's SKU is (None: it is none of ours, reviewed)."""
    require_manager(actor, "maps supplier SKUs")
    await uow.suppliers.get(supplier_id)
    ours = normalise_sku(sku) if sku is not None else None
    if ours is not None and await uow.catalogue.get(ours) is None:
        raise InvalidValue("sku", f"{ours} is not in the catalogue")
    await uow.suppliers.set_mapping(supplier_id, supplier_sku, ours, now)
    known = await uow.suppliers.mappings(supplier_id, unmapped_only=False)
    return next((m for m in known if m.supplier_sku == supplier_sku), SkuMapping(supplier_sku, ours, None, None))


async def supplier_scorecard(uow: UnitOfWork, supplier_id: int, *, now: datetime) -> Scorecard:
    await uow.suppliers.get(supplier_id)
    return scorecard(await uow.lines.records(supplier_id, now - WINDOW), now)
