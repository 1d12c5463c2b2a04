"""What the OpenAPI schema says beyond the handlers' signatures: the problem-details answers each operation can
give, the operations that need no staff token, and request bodies that refuse unknown fields.

Litestar documents only the success answer and its own 400 (in a body shape this app never sends), puts every
operation under the app-wide bearer scheme (an empty `security` list is dropped), and ignores pydantic's
`extra="forbid"`: left alone, the schema would promise less than the API checks and more than it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from litestar.enums import ParamType, RequestEncodingType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import BodyKwarg, KwargDefinition

PROBLEM_JSON = "application/problem+json"
# Text fields refuse U+0000 (PostgreSQL text cannot hold it) and are stripped, so a required one needs more than
# whitespace: the patterns say both in the schema, which would otherwise promise more than the API accepts.
NO_NUL = r"^[^\x00]*$"
FILLED = r"^[^\x00]*[^\s\x00][^\x00]*$"

T = TypeVar("T")


@dataclass(slots=True)
class FieldErrorOut:
    field: str
    reason: str
    source: str | None = None  # where the field was: body, query, path, header


@dataclass(slots=True)
class ProblemOut:
    """RFC 9457 problem details, the body of every error."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    errors: list[FieldErrorOut] | None = None  # 422: one entry per invalid field
    allowed: list[str] | None = None  # 409 on a transition: the stages the caller may move the job to now
    supplier: str | None = None  # a supplier's failure (409, 503)
    checks: dict[str, str] | None = None  # 503 from the readiness probe


_WHY = {
    400: "The request could not be read (malformed JSON, for instance).",
    401: "No valid credentials.",
    403: "Not allowed for the caller's role, or a wrong secret (pickup code).",
    404: "No such resource, or one outside the caller's branch.",
    409: "Conflicts with the resource's current state.",
    412: "If-Match names a version the job is no longer at: reload and retry.",
    413: "The body is over the size limit.",
    422: "Invalid input: `errors` names each field and why.",
    428: "If-Match is missing: send the job's current ETag.",
    429: "Too many requests: wait for Retry-After seconds.",
    503: "A dependency (database, supplier) is unavailable: retry after Retry-After seconds.",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The problem-details answers an operation documents, besides its success. 400 is always among them: it
    replaces the 400 Litestar documents for any operation with parameters, in a shape this app never sends."""
    return {
        status: ResponseSpec(ProblemOut, description=_WHY[status], media_type=PROBLEM_JSON, generate_examples=False)
        for status in sorted({400, *statuses})
    }


# Every authenticated operation can answer 401; every body 413 (too large) and 422 (invalid).
AUTH = (401,)
BODY = (413, 422)


@dataclass
class PublicOperation(Operation):
    """An operation without a staff token (health probes, sign-in, signed webhooks, the customer's link):
    says `security: []` so that the app-wide bearer requirement does not apply to it."""

    def __post_init__(self) -> None:
        self.security = []


@dataclass
class WebhookOperation(PublicOperation):
    """A supplier's push (Standard Webhooks 1.0) is authenticated by these headers, checked on the raw request
    before anything else is read (a missing one is 400, a wrong signature 401), not by a staff token."""

    def __post_init__(self) -> None:
        super().__post_init__()
        headers = {
            "webhook-id": "The event's id: a redelivery carries the same one and changes nothing.",
            "webhook-timestamp": "When it was sent, in Unix seconds (five minutes either side are accepted).",
            "webhook-signature": "`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, space-separated when several.",
        }
        text = Schema(type=OpenAPIType.STRING)
        signed = [
            Parameter(name=name, param_in=ParamType.HEADER, required=True, description=why, schema=text)
            for name, why in headers.items()
        ]
        self.parameters = [*(self.parameters or []), *signed]


_PAGE_STATUSES = {"200", "404", "409", "429"}  # what the page itself renders; invalid input is problem+json


@dataclass
class PageOperation(PublicOperation):
    """The customer's page answers HTML unless JSON is asked for (`Accept`), errors included."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for status, response in (self.responses or {}).items():
            if status in _PAGE_STATUSES and isinstance(response, OpenAPIResponse) and response.content is not None:
                response.content.setdefault("text/html", OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)))


def _answer_schema(*, form: bool) -> Schema:
    """`service.api.tracking.AnswerIn` as JSON, or the page's form (text values; a blank note is no note; the
    form also says which language to answer in). Unknown fields are refused either way."""
    properties: dict[str, Schema | Reference] = {
        "approved": Schema(type=OpenAPIType.BOOLEAN),
        "note": Schema(type=OpenAPIType.STRING, min_length=1, max_length=4000, pattern=FILLED),
    }
    if form:
        properties = {
            "approved": Schema(type=OpenAPIType.STRING, enum=["true", "false"]),
            "note": Schema(type=OpenAPIType.STRING, max_length=4000, pattern=NO_NUL),
            "lang": Schema(type=OpenAPIType.STRING),
        }
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=["approved"], additional_properties=False)


@dataclass
class AnswerOperation(PageOperation):
    """The customer's answer to the estimate is read by hand (the page's form or JSON): document both bodies."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            required=True,
            content={
                "application/json": OpenAPIMediaType(schema=_answer_schema(form=False)),
                "application/x-www-form-urlencoded": OpenAPIMediaType(schema=_answer_schema(form=True)),
            },
        )


class _FrozenMapping(dict[str, Any]):
    """Annotated metadata must be hashable for `Closed[X] | None` to be a valid type."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(repr(sorted(self.items())))


def json_body(**schema: Any) -> BodyKwarg:
    """A JSON body whose object refuses unknown fields (422), as the schema then says; `schema`: more JSON Schema
    keywords for rules across fields that the model checks in a validator."""
    return BodyKwarg(
        media_type=RequestEncodingType.JSON, schema_extra=_FrozenMapping(additionalProperties=False, **schema)
    )


# Litestar ignores pydantic's `extra="forbid"`. Top-level bodies say it through `ClosedJSON` (or `json_body`),
# nested models on the field that holds them (`Closed[...]`), optional bodies as `JSONBody[Closed[X] | None]`.
def schema(**keywords: Any) -> KwargDefinition:
    """JSON Schema keywords for a field's schema, where what the model checks has no annotation Litestar reads."""
    return KwargDefinition(schema_extra=_FrozenMapping(**keywords))


ClosedJSON = Annotated[T, json_body()]
Closed = Annotated[T, schema(additionalProperties=False)]


def present(name: str, kind: str) -> dict[str, Any]:
    """JSON Schema: the field is there and not null (an absent or null optional field is the same to a model)."""
    return {"required": [name], "properties": {name: {"type": kind}}}


def absent(*names: str) -> dict[str, Any]:
    """JSON Schema: each field is missing or null."""
    return {"properties": {name: {"type": "null"} for name in names}}
