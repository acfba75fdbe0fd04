"""The OpenAPI 3.0 document of the API, written by hand so it says exactly what is enforced."""

from __future__ import annotations

from typing import Any, Final

from audit_logging.api.errors import RETRY_AFTER_SECONDS, BadParameterError
from audit_logging.api.params import MAX_WINDOW, OFFSET_WITH_CURSOR, SEARCH_PARAMS, Param
from audit_logging.schema import BY_NAME, FIELD_NAMES, FIELDS, SUMMARY_FIELDS

SEARCH_PATH: Final = "/api/audit-logs/search/"
DETAIL_PATH: Final = "/api/audit-logs/detail/{log_id}/"
OPENAPI_PATH: Final = "/api/audit-logs/openapi.json"
HEALTH_PATH: Final = "/healthz"


def _query(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": "query",
        "required": False,
        "description": param.doc,
        "schema": param.json_schema(),
    }


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_BAD_PARAMETER: Final = (
    "A parameter is unknown, repeated, empty, too long or has a bad value; or it is named like "
    "a credential (code credential_in_query: send tokens in the Authorization header only)."
)


def _search_bad_parameter() -> dict[str, Any]:
    response = _error_response(
        _BAD_PARAMETER + " On this route also: cursor and from_offset together; from_offset + "
        f"page_size over {MAX_WINDOW}; start_time after end_time; a cursor the API did not issue."
    )
    both = BadParameterError("from_offset", OFFSET_WITH_CURSOR).body()
    response["content"]["application/json"]["examples"] = {
        "cursorWithFromOffset": {"summary": "cursor and from_offset together", "value": both}
    }
    return response


_RESPONSES: Final = {
    "BadParameterError": _error_response(_BAD_PARAMETER),
    "SearchBadParameterError": _search_bad_parameter(),
    "UnauthorizedError": _error_response(
        "No valid 'Authorization: Bearer <token>' header.",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "NotFoundError": _error_response("No such record (or not visible to this caller)."),
    "UnavailableError": _error_response(
        "OpenSearch is unreachable; retry later.",
        {
            "Retry-After": {
                "description": f"Seconds to wait ({RETRY_AFTER_SECONDS}).",
                "schema": {"type": "integer"},
            }
        },
    ),
}


def _summary_schema() -> dict[str, Any]:
    props = {name: BY_NAME[name].json_schema() for name in SUMMARY_FIELDS}
    return {"type": "object", "required": list(props), "properties": props}


def _record_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(FIELD_NAMES),
        "properties": {field.name: field.json_schema() for field in FIELDS},
    }


_BEARER: Final[list[dict[str, list[str]]]] = [{"bearerAuth": []}]


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Audit log query API",
            "version": "1",
            "description": "Search and read audit records. Every route but /healthz needs "
            "'Authorization: Bearer <token>'. Every read is itself audited (SEARCH, VIEW). "
            'Errors are {"error": {"code", "message", "field"}}.',
        },
        "security": _BEARER,
        "paths": {
            SEARCH_PATH: {
                "get": {
                    "operationId": "searchAuditLogs",
                    "summary": "Search audit records, newest first (filters combine with AND)",
                    "description": "Pages: from_offset for the first "
                    f"{MAX_WINDOW} results, or the previous page's 'next' as cursor at any "
                    "depth; cursor and from_offset exclude each other (both together are a 400).",
                    "parameters": [_query(param) for param in SEARCH_PARAMS],
                    "responses": {
                        "200": {
                            "description": "A page of matching records, newest first.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/SearchPage"}
                                }
                            },
                        },
                        "400": {"$ref": "#/components/responses/SearchBadParameterError"},
                        "401": {"$ref": "#/components/responses/UnauthorizedError"},
                        "503": {"$ref": "#/components/responses/UnavailableError"},
                    },
                }
            },
            DETAIL_PATH: {
                "get": {
                    "operationId": "getAuditLog",
                    "summary": "Every field of one audit record",
                    "parameters": [
                        {
                            "name": "log_id",
                            "in": "path",
                            "required": True,
                            "description": "The record's log_id (a UUID); anything else is 404.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The record.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Record"}
                                }
                            },
                        },
                        "400": {"$ref": "#/components/responses/BadParameterError"},
                        "401": {"$ref": "#/components/responses/UnauthorizedError"},
                        "404": {"$ref": "#/components/responses/NotFoundError"},
                        "503": {"$ref": "#/components/responses/UnavailableError"},
                    },
                }
            },
            OPENAPI_PATH: {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "400": {"$ref": "#/components/responses/BadParameterError"},
                        "401": {"$ref": "#/components/responses/UnauthorizedError"},
                    },
                }
            },
            HEALTH_PATH: {
                "get": {
                    "operationId": "health",
                    "summary": "Whether OpenSearch answers (no authentication)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenSearch answers.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        },
                        "400": {"$ref": "#/components/responses/BadParameterError"},
                        "503": {
                            "description": "OpenSearch does not answer.",
                            "headers": _RESPONSES["UnavailableError"]["headers"],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        },
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "responses": _RESPONSES,
            "schemas": {
                "Summary": _summary_schema(),
                "Record": _record_schema(),
                "SearchPage": {
                    "type": "object",
                    "required": ["count", "page_size", "from_offset", "next", "results"],
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
                "Health": {
                    "type": "object",
                    "required": ["status", "opensearch"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "unavailable"]},
                        "opensearch": {"type": "string", "enum": ["reachable", "unreachable"]},
                    },
                },
            },
        },
    }
