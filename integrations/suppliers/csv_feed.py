"""The `csv_feed` adapter: a supplier that only publishes its stock as `{base}/feed.csv`.

Trust rules: a feed that is not UTF-8 CSV or whose header lacks a column of
`sku,description,available,price_cents,currency,eta` is refused whole (`BadSupplierData`). Inside a good
feed each row is validated on its own: a bad row (wrong field count, a count that is not a plain whole
number, a currency that is not three capitals, a naive or unreadable eta...) is logged (line number and
error types, never its content) and rejected, while the good rows are used. A SKU whose row was rejected,
or that appears twice with different values, is reported in neither `items` nor `unknown`: the feed gave
no trustworthy answer for it. Orders cannot be placed: such a supplier takes them by email.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, NoReturn

import structlog
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from integrations.http import SupplierHttp
from integrations.suppliers.base import (
    BadSupplierData,
    NotSupported,
    OrderChanges,
    OrderInfo,
    OrderLineRequest,
    StockAnswer,
    StockInfo,
    SupplierConfig,
)

log = structlog.get_logger("integrations.suppliers")

COLUMNS = ("sku", "description", "available", "price_cents", "currency", "eta")
_WHOLE = re.compile(r"[0-9]{1,12}")


def _whole_number(value: Any) -> Any:
    """A CSV count is plain digits: no sign, space, decimal point or `1_000` (which int() would take)."""
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        return int(value)
    raise ValueError("not a whole number")


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _iso_datetime(value: Any) -> Any:
    """An ISO 8601 eta (empty: unknown); not the Unix-seconds strings pydantic would also read."""
    if value == "":
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ValueError("not an ISO 8601 date-time")


CsvCount = Annotated[int, BeforeValidator(_whole_number)]


class FeedRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    sku: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    available: CsvCount
    price_cents: Annotated[CsvCount | None, BeforeValidator(_empty_is_none)] = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    eta: Annotated[AwareDatetime | None, BeforeValidator(_iso_datetime)] = None


class CsvFeedClient:
    """`SupplierClient` for a stock feed: `stock` reads the whole feed, ordering is `NotSupported`."""

    def __init__(self, config: SupplierConfig, http: SupplierHttp) -> None:
        self.config = config
        self._http = http

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stock(self, skus: Sequence[str]) -> StockAnswer:
        """Stock for `skus` from the feed (fetched on each call: the feed changes every minute)."""
        if isinstance(skus, str):
            raise TypeError("skus is a sequence of SKUs, not one string")
        wanted = list(dict.fromkeys(skus))
        if not wanted:
            return StockAnswer(items=[])
        response = await self._http.request("GET", "/feed.csv", operation="stock", idempotent=True)
        rows, untrusted = self.parse_feed(response.content)
        items = [_info(rows[sku]) for sku in wanted if sku in rows]
        unknown = [sku for sku in wanted if sku not in rows and sku not in untrusted]
        return StockAnswer(items=items, unknown=unknown)

    def parse_feed(self, content: bytes) -> tuple[dict[str, FeedRow], set[str]]:
        """The trusted rows by SKU, and the SKUs of rejected rows (see the module's trust rules)."""
        try:
            text = content.decode("utf-8-sig")
            reader = csv.reader(io.StringIO(text, newline=""), strict=True)
            header = next(reader, None)
            if header is None:
                self._refuse("the feed is empty")
            names = [name.strip().lower() for name in header]
            missing = [column for column in COLUMNS if column not in names]
            if missing or len(set(names)) != len(names):
                self._refuse(f"feed header is wrong (missing {', '.join(missing) or 'nothing'}, or repeated columns)")
            rows: dict[str, FeedRow] = {}
            untrusted: set[str] = set()
            rejected: list[tuple[int, str]] = []
            for row in reader:
                if not row or row == [""]:
                    continue  # blank line
                line = reader.line_num
                if len(row) != len(names):
                    rejected.append((line, "field_count"))
                    if row[0]:
                        untrusted.add(row[0])
                    continue
                record = dict(zip(names, row, strict=True))
                try:
                    parsed = FeedRow.model_validate(record)
                except ValidationError as exc:
                    error = exc.errors(include_url=False, include_input=False)[0]
                    rejected.append((line, f"{'.'.join(map(str, error['loc']))}:{error['type']}"))
                    if record["sku"]:
                        untrusted.add(record["sku"])
                    continue
                previous = rows.get(parsed.sku)
                if parsed.sku in untrusted or (previous is not None and previous != parsed):
                    rejected.append((line, "sku:conflicting_duplicate"))
                    rows.pop(parsed.sku, None)
                    untrusted.add(parsed.sku)
                    continue
                rows[parsed.sku] = parsed
        except UnicodeDecodeError:
            self._refuse("the feed is not UTF-8 text")
        except csv.Error as exc:
            self._refuse(f"the feed is not valid CSV ({exc})")
        if rejected:
            log.warning(
                "supplier.feed_rows_rejected",
                supplier=self.config.name,
                rejected=len(rejected),
                accepted=len(rows),
                first=[f"line {line}: {why}" for line, why in rejected[:10]],
            )
        return rows, untrusted

    async def place_order(self, po: str, lines: Sequence[OrderLineRequest]) -> OrderInfo:
        self._no_orders()

    async def order_status(self, supplier_order_id: str) -> OrderInfo:
        self._no_orders()

    async def cancel_order(self, supplier_order_id: str) -> OrderInfo:
        self._no_orders()

    async def order_changes(self, since: datetime | None) -> OrderChanges:
        self._no_orders()

    def _no_orders(self) -> NoReturn:
        raise NotSupported(
            self.config.name,
            f"{self.config.name} publishes a stock feed only: orders go by email, which Atelier does not send",
        )

    def _refuse(self, reason: str) -> NoReturn:
        log.warning("supplier.bad_data", supplier=self.config.name, operation="stock", reason=reason)
        raise BadSupplierData(self.config.name, f"stock: {reason}")


def _info(row: FeedRow) -> StockInfo:
    return StockInfo(
        supplier_sku=row.sku,
        available=row.available,
        price_cents=row.price_cents,
        currency=row.currency,
        eta=row.eta,
    )
