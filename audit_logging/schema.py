"""The audit record's fields, declared once.

Everything else that names the fields is derived from :data:`FIELDS` here: the record's
checks and limits (:mod:`audit_logging.record`), the OpenSearch mappings
(:mod:`audit_logging.search_index`), the Parquet columns (:mod:`audit_logging.archive.parquet`),
the API's summary fields and its OpenAPI schemas, and the field table in the README (a test
fails when that table no longer matches this one).

This module is imported by the capture side: standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, Literal

# How a field is stored, each kind mapped once per sink below and in the archive.
Kind = Literal["uuid", "timestamp", "string", "object", "ip", "integer", "string_list"]
# What OpenSearch makes of a string: exact terms, or analysed words plus an exact subfield.
Search = Literal["keyword", "text", "none"]


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    doc: str
    # Characters for strings, bytes of compact UTF-8 JSON for objects; None: no limit.
    limit: int | None = None
    search: Search = "keyword"
    # Returned by the search endpoint (the detail endpoint returns every field).
    summary: bool = False
    # Always present in storage (the archive's column is not nullable).
    never_null: bool = False

    def mapping(self) -> dict[str, Any]:
        """The field's OpenSearch mapping."""
        if self.kind in _MAPPING_OF_KIND:
            return dict(_MAPPING_OF_KIND[self.kind])
        if self.search == "text":
            exact = {"type": "keyword", "ignore_above": self.limit or 1024}
            return {"type": "text", "fields": {"keyword": exact}}
        if self.name in _IGNORE_ABOVE:
            return {"type": "keyword", "ignore_above": 1024}
        return {"type": "keyword"}

    def json_schema(self) -> dict[str, Any]:
        """The field in the OpenAPI (3.0) document."""
        if self.kind == "uuid":
            return {"type": "string", "format": "uuid"}
        if self.kind == "timestamp":
            return {"type": "string", "format": "date-time"}
        if self.kind == "integer":
            return {"type": "integer"}
        if self.kind == "object":
            schema: dict[str, Any] = {
                "type": "object",
                "nullable": True,
                "additionalProperties": True,
            }
            if self.name == "changes":
                schema["description"] = "field -> [old, new]"
            return schema
        if self.kind == "string_list":
            return {
                "type": "array",
                "nullable": True,
                "items": {"type": "string"},
                "description": "Fields cut to their length limit at capture.",
            }
        schema = {"type": "string", "nullable": True}
        if self.limit is not None:
            schema["maxLength"] = self.limit
        return schema


_MAPPING_OF_KIND: Final[dict[str, dict[str, Any]]] = {
    # date_nanos, not date: records carry microseconds, and a millisecond "date" would blur
    # the API's inclusive time bounds and newest-first order.
    "timestamp": {
        "type": "date_nanos",
        "format": "strict_date_optional_time_nanos||epoch_millis",
    },
    # Stored in _source for the detail view, never exploded into mappings.
    "object": {"type": "object", "enabled": False},
    "ip": {"type": "ip"},
    "integer": {"type": "integer"},
}
# Keyword fields whose values may be long (ids, user agents): terms over 1024 characters are
# kept in _source but not indexed, instead of failing the document.
_IGNORE_ABOVE: Final = frozenset({"user_id", "object_id", "user_agent"})

# Every field of a record, in column order (Parquet, OpenSearch, the API's detail).
FIELDS: Final[tuple[Field, ...]] = (
    Field(
        "log_id", "uuid", "Unique id, a UUIDv7 made at capture; write-once.",
        summary=True, never_null=True,
    ),
    Field(
        "timestamp", "timestamp", "When it happened, UTC, microseconds (1970-01-01 to 2262-04-10).",
        summary=True, never_null=True,
    ),
    Field("user_id", "string", "Who: the user's id.", 256, summary=True),
    Field("username", "string", "Who: the user's name.", 256, "text", summary=True),
    Field("action", "string", "What: CREATE, UPDATE, LOGIN, ... (required).", 64, summary=True),
    Field("object_type", "string", "To what: the kind of object.", 256, summary=True),
    Field("object_id", "string", "To what: the object's id.", 256, summary=True),
    Field("object_repr", "string", "The object as a person reads it.", 1024, "text", summary=True),
    Field("change_message", "string", "What changed, in words.", 8192, "text"),
    Field("changes", "object", "What changed: field -> [old, new].", 64 * 1024, "none"),
    Field("ip_address", "ip", "From where: the client's IPv4 or IPv6 address.", search="none"),
    Field("user_agent", "string", "From where: the client's User-Agent.", 1024),
    Field("session_key", "string", "The session, hashed with AUDIT_LOG_HASH_KEY by default.", 256),
    Field("request_id", "string", "The request's id (X-Request-ID or made up).", 128),
    Field("source", "string", "The emitting service (AUDIT_LOG_SOURCE).", 128),
    Field("extra", "object", "Anything else the app logged, as JSON.", 16 * 1024, "none"),
    Field("schema_version", "integer", "The record schema's version (1)."),
    Field("truncated", "string_list", "Fields cut to their limit at capture.", search="none"),
)

FIELD_NAMES: Final = tuple(field.name for field in FIELDS)
BY_NAME: Final = {field.name: field for field in FIELDS}
STRING_LIMITS: Final = {f.name: f.limit for f in FIELDS if f.kind == "string" and f.limit}
OBJECT_LIMITS: Final = {f.name: f.limit for f in FIELDS if f.kind == "object" and f.limit}
SUMMARY_FIELDS: Final = tuple(field.name for field in FIELDS if field.summary)
TEXT_FIELDS: Final = tuple(field.name for field in FIELDS if field.search == "text")


def markdown_table() -> str:
    """The README's table of fields."""
    lines = ["| field | type | limit | searched as | in search results | meaning |"]
    lines.append("|---|---|---|---|---|---|")
    for field in FIELDS:
        if field.kind == "object":
            limit = f"{field.limit // 1024} KiB of JSON" if field.limit else ""
        else:
            limit = f"{field.limit} characters" if field.limit else ""
        search = {"keyword": "exact", "text": "words and exact", "none": "-"}[field.search]
        if field.kind in ("uuid", "timestamp", "ip", "integer"):
            search = {"ip": "exact or CIDR", "timestamp": "range"}.get(field.kind, "exact")
        lines.append(
            f"| `{field.name}` | {field.kind.replace('_', ' ')} | {limit} | {search} | "
            f"{'yes' if field.summary else ''} | {field.doc} |"
        )
    return "\n".join(lines) + "\n"
