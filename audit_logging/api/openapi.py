"""The API's routes, declared once, and its OpenAPI 3.0 document, derived from them.

The app mounts :data:`OPERATIONS` and the document's paths list the same tuple; the search
route's parameters come from the parser's own table, the record schemas from
:mod:`audit_logging.schema`. Written by hand, not inferred, so it says exactly what is
enforced.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from audit_logging.api.errors import (
    RETRY_AFTER_SECONDS,
    BadParameterError,
    MetricsUnavailableError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)
from audit_logging.api.metrics import UNMATCHED
from audit_logging.api.params import (
    MAX_WINDOW,
    OFFSET_WITH_CURSOR,
    PROOF,
    PROOF_DOC,
    PROOF_VALUES,
    SEARCH_PARAMS,
)
from audit_logging.api.readiness import STATES as READINESS_STATES
from audit_logging.record_filter import Param
from audit_logging.schema import BY_NAME, FIELD_NAMES, FIELDS, SUMMARY_FIELDS


@dataclasses.dataclass(frozen=True)
class Operation:
    """A route of the API: where the app mounts it and what the document says of it."""

    path: str
    # The name of the app's method that serves the route (see app.create_app).
    handler: str
    operation_id: str
    # The rest of the route's OpenAPI operation object.
    doc: Mapping[str, Any]
    method: str = "GET"
    # Query parameters of the route named like a credential, which the app's refusal of
    # credentials in URLs lets through on this route only (see api/credentials.py).
    credential_params: tuple[str, ...] = ()

    def path_item(self) -> dict[str, Any]:
        """The route's entry under the document's ``paths``."""
        # A copy: a caller that edits its document must not edit every later one.
        operation = {"operationId": self.operation_id, **copy.deepcopy(dict(self.doc))}
        return {self.method.lower(): operation}


def _query(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": "query",
        "required": False,
        "description": param.doc,
        "schema": param.json_schema(),
    }


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(
    description: str, schema: Mapping[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": dict(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(description, _schema("Error"), headers)


_BAD_PARAMETER: Final = (
    "A parameter is unknown, repeated, empty, too long or has a bad value; or it is named like "
    "a credential (code credential_in_query: send tokens in the Authorization header only)."
)


def _search_bad_parameter() -> dict[str, Any]:
    response = _error_response(
        _BAD_PARAMETER + " On this route also: cursor and from_offset together; from_offset + "
        f"page_size over {MAX_WINDOW}; start_time after end_time; a cursor the API did not issue;"
        " session where AUDIT_LOG_SESSION_KEY_MODE stores no session keys."
    )
    both = BadParameterError("from_offset", OFFSET_WITH_CURSOR).body()
    response["content"]["application/json"]["examples"] = {
        "cursorWithFromOffset": {"summary": "cursor and from_offset together", "value": both}
    }
    return response


_RETRY_AFTER: Final = {
    "Retry-After": {
        "description": f"Seconds to wait ({RETRY_AFTER_SECONDS}).",
        "schema": {"type": "integer"},
    }
}
_RESPONSES: Final = {
    "BadParameterError": _error_response(_BAD_PARAMETER),
    "SearchBadParameterError": _search_bad_parameter(),
    "UnauthorizedError": _error_response(
        "No valid 'Authorization: Bearer <token>' header.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "NotFoundError": _error_response("No such record (or not visible to this caller)."),
    "UnavailableError": _error_response("OpenSearch is unreachable; retry later.", _RETRY_AFTER),
    "MetricsUnavailableError": _error_response(
        "This server keeps no metrics: the 'metrics' extra is not installed"
        " (pip install 'audit-logging-pipeline[metrics]'), or they are turned off."
    ),
}


def _summary_schema() -> dict[str, Any]:
    props = {name: BY_NAME[name].json_schema() for name in SUMMARY_FIELDS}
    return {"type": "object", "required": list(props), "properties": props}


# What audit_logging.archive.proof says of a record (that module needs pyarrow, which the
# document does not: tests/api/test_proof.py checks the two agree).
PROOF_STATUSES: Final = (
    "covered", "pending", "not_archived", "not_covered", "mismatch", "unreadable"
)
_SHA256: Final = {"type": "string", "pattern": "^[0-9a-f]{64}$"}


def _nullable_object(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "nullable": True, "description": description,
            "required": list(properties), "properties": properties}


def _proof_schema() -> dict[str, Any]:
    text = {"type": "string"}
    maybe_text = {"type": "string", "nullable": True}
    size = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": ["status", "object", "digest", "listed", "explanation"],
        "properties": {
            "status": {
                "type": "string",
                "enum": list(PROOF_STATUSES),
                "description": "covered: a digest lists the object with this sha256 and size."
                " pending: no digest covers the object's offsets yet (the consumer's next"
                " digest will). not_archived: the record is in the index, not yet"
                " in the archive. not_covered: archived before the stream's first digest."
                " mismatch: the digest lists the object otherwise, does not list it, cannot be"
                " parsed, or is missing (see explanation). unreadable: an archive object of the"
                " record's day cannot be read and the record may be in it.",
            },
            "object": _nullable_object(
                "The archive object holding the record, as S3 holds it now.",
                {"key": text, "sha256": _SHA256, "size": size}),
            "digest": _nullable_object(
                "The digest covering the object's offsets (or the stream's first, for"
                " not_covered). signed: it carries a signature, which this API does not check.",
                {"key": text, "sha256": _SHA256, "signed": {"type": "boolean"},
                 "key_id": maybe_text, "public_key": maybe_text, "signature": maybe_text}),
            "listed": _nullable_object(
                "The object as the digest lists it.", {"sha256": _SHA256, "size": size}),
            "explanation": {"type": "string"},
        },
    }


def _record_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(FIELD_NAMES),
        "properties": {field.name: field.json_schema() for field in FIELDS},
    }


# The status each error response of the document stands for, as the API answers it.
_STATUS_OF: Final = {
    "BadParameterError": BadParameterError.status,
    "SearchBadParameterError": BadParameterError.status,
    "UnauthorizedError": UnauthorizedError.status,
    "NotFoundError": NotFoundError.status,
    "UnavailableError": UnavailableError.status,
    "MetricsUnavailableError": MetricsUnavailableError.status,
}


def _errors(*names: str) -> dict[str, Any]:
    """The error responses ``names`` (of ``components.responses``) by their status."""
    return {str(_STATUS_OF[name]): _response(name) for name in names}


_BEARER: Final[list[dict[str, list[str]]]] = [{"bearerAuth": []}]


_SEARCH: Final = {
    "summary": "Search audit records, newest first (filters combine with AND)",
    "description": f"Pages: from_offset for the first {MAX_WINDOW} results, or the previous"
    " page's 'next' as cursor at any depth; cursor and from_offset exclude each other (both"
    " together are a 400).",
    "parameters": [_query(param) for param in SEARCH_PARAMS],
    "responses": {
        "200": _json("A page of matching records, newest first.", _schema("SearchPage")),
        **_errors("SearchBadParameterError", "UnauthorizedError", "UnavailableError"),
    },
}
_DETAIL: Final = {
    "summary": "Every field of one audit record",
    "parameters": [
        {
            "name": "log_id",
            "in": "path",
            "required": True,
            "description": "The record's log_id (a UUID); anything else is 404.",
            "schema": {"type": "string"},
        },
        {
            "name": PROOF,
            "in": "query",
            "required": False,
            "description": PROOF_DOC + " A 400 too when the API is not set up to read the"
            " archive; a 503 when the archive cannot be read within the API's archive deadline.",
            "schema": {"type": "string", "enum": list(PROOF_VALUES), "default": "false"},
        },
    ],
    "responses": {
        "200": _json("The record, from the index or, past its retention, the archive; with"
                     " proof=true, and its proof.",
                     _schema("Detail"), {"X-Audit-Log-Tier": {
                         "description": "Where the record was found: index or archive.",
                         "schema": {"type": "string", "enum": ["index", "archive"]}}}),
        **_errors("BadParameterError", "UnauthorizedError", "NotFoundError", "UnavailableError"),
    },
}
_OPENAPI: Final = {
    "summary": "This document",
    "responses": {
        "200": _json("OpenAPI 3.0 document.", {"type": "object"}),
        **_errors("BadParameterError", "UnauthorizedError"),
    },
}
_LIVENESS: Final = {
    "summary": "Whether the process serves requests (no authentication; for a liveness probe)",
    "description": "Always 200 while the server runs: it asks no dependency (see /readyz).",
    "security": [],
    "responses": {
        "200": _json("The process serves requests.", _schema("Liveness")),
        **_errors("BadParameterError"),
    },
}
_READINESS: Final = {
    "summary": "Whether the API can answer (no authentication; for a readiness probe)",
    "description": "Checks OpenSearch and, when the API reads the archive, its S3 bucket,"
    " each within 2 seconds (a result is reused for 1 second). The answer names each"
    " dependency's state, never an error's details (those go to the server's log).",
    "security": [],
    "responses": {
        "200": _json("Every dependency answers.", _schema("Readiness")),
        **_errors("BadParameterError"),
        "503": _json("A dependency does not answer: checks says which.", _schema("Readiness"),
                     _RETRY_AFTER),
    },
}
_METRICS: Final = {
    "summary": "The API's metrics, in the Prometheus text format",
    "description": "Needs a token, unless the request's direct peer (the TCP connection's"
    " address, never a forwarding header) is in AUDIT_LOG_METRICS_NETWORKS. Requests are"
    f" counted by route template; a path no route matches counts as '{UNMATCHED}'.",
    "responses": {
        "200": {
            "description": "The Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **_errors("BadParameterError", "UnauthorizedError", "MetricsUnavailableError"),
    },
}
# Every route of the API, in the document's order: the app mounts these and no other.
OPERATIONS: Final = (
    Operation(
        "/api/audit-logs/search/",
        "search",
        "searchAuditLogs",
        _SEARCH,
        credential_params=tuple(param.name for param in SEARCH_PARAMS if param.secret),
    ),
    Operation("/api/audit-logs/detail/{log_id}/", "detail", "getAuditLog", _DETAIL),
    Operation("/api/audit-logs/openapi.json", "openapi", "getOpenApi", _OPENAPI),
    Operation("/healthz", "liveness", "health", _LIVENESS),
    Operation("/readyz", "ready", "readiness", _READINESS),
    Operation("/metrics", "prometheus", "metrics", _METRICS),
)


def openapi_document(operations: tuple[Operation, ...] = OPERATIONS) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Audit log query API",
            "version": "1",
            "description": "Search and read audit records. Every route but /healthz and "
            "/readyz needs 'Authorization: Bearer <token>' (/metrics not from "
            "AUDIT_LOG_METRICS_NETWORKS). Every read is itself audited (SEARCH, VIEW). "
            'Errors are {"error": {"code", "message", "field"}}.',
        },
        "security": _BEARER,
        "paths": {operation.path: operation.path_item() for operation in operations},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "responses": _RESPONSES,
            "schemas": {
                "Summary": _summary_schema(),
                "Record": _record_schema(),
                "Detail": {"allOf": [
                    _schema("Record"),
                    {"type": "object", "properties": {"proof": _schema("Proof")}},
                ]},
                "Proof": _proof_schema(),
                "SearchPage": {
                    "type": "object",
                    "required": ["count", "page_size", "from_offset", "next", "results",
                                 "tiers", "notices"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0, "description": "All matches."},
                        "page_size": {"type": "integer", "minimum": 1},
                        "from_offset": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Offset of the first result of this page.",
                        },
                        "next": {
                            "type": "string",
                            "nullable": True,
                            "description": "Cursor for the next page; null on the last page.",
                        },
                        "results": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Summary"},
                        },
                        "tiers": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["index", "archive"]},
                            "description": "Which tiers answered: the index for the retained"
                            " months (AUDIT_LOG_RETENTION_MONTHS), the archive before them.",
                        },
                        "notices": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "What this answer could not include and why"
                            " (e.g. an archive this API is not set up to read); empty when"
                            " the answer is whole.",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "field"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": "string", "nullable": True},
                            },
                        }
                    },
                },
                "Liveness": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": ["alive"]}},
                },
                "Readiness": {
                    "type": "object",
                    "required": ["status", "checks"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ready", "unavailable"]},
                        "checks": {
                            "type": "object",
                            "description": "Each dependency (opensearch; s3 when the API"
                            " reads the archive) and its state.",
                            "additionalProperties": {"type": "string",
                                                     "enum": list(READINESS_STATES)},
                        },
                    },
                },
            },
        },
    }
