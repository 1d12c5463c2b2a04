"""The sandbox's state as the wire contract spells it: JSON bodies, CSV rows, UTC timestamps with `Z`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from integrations.sandbox.orders import Event, Order
from integrations.sandbox.state import Quote

CSV_HEADER = ["sku", "description", "available", "price_cents", "currency", "eta"]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "po": order.po,
        "state": order.state.value,
        "eta": iso(order.eta),
        "tracking_number": order.tracking_number,
        "updated_at": iso(order.updated_at),
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "shipped_quantity": line.shipped_quantity,
                "state": line.state.value,
                "eta": iso(line.eta),
            }
            for line in order.lines
        ],
    }


def quote_json(quote: Quote) -> dict[str, Any]:
    return {
        "sku": quote.sku,
        "description": quote.description,
        "available": quote.available,
        "price_cents": quote.price_cents,
        "currency": quote.currency,
        "eta": iso(quote.eta),
    }


def csv_rows(quotes: list[Quote]) -> list[list[str]]:
    """Header then one row per SKU; a CSV supplier quotes no date for what it does not have."""
    rows = [CSV_HEADER]
    for q in quotes:
        rows.append(
            [q.sku, q.description, str(q.available), str(q.price_cents), q.currency, iso(q.eta) if q.available else ""]
        )
    return rows


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def event_body(event: Event) -> bytes:
    """The webhook body; these exact bytes are what gets signed."""
    payload = {"type": event.type, "timestamp": iso(event.occurred_at), "data": event.data}
    return json.dumps(payload, default=_plain, separators=(",", ":")).encode()
