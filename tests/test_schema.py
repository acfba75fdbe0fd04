"""The record's fields are declared once (audit_logging.schema); every sink and document that
names them is derived from that declaration and agrees with it."""

from __future__ import annotations

from audit_logging import record, schema, search_index
from audit_logging.api import openapi, query
from audit_logging.archive import parquet
from tests._readme import assert_generated_block_is


def test_the_readmes_field_table_is_the_one_the_schema_makes() -> None:
    assert_generated_block_is(
        "fields", schema.markdown_table(), "audit_logging.schema.markdown_table"
    )


def test_every_sink_has_every_field_in_the_schemas_order() -> None:
    names = [field.name for field in schema.FIELDS]
    assert list(record.FIELDS) == names
    assert parquet.ARROW_SCHEMA.names == names
    assert list(search_index.MAPPINGS["properties"])[: len(names)] == names
    document = openapi.openapi_document()["components"]["schemas"]
    assert list(document["Record"]["properties"]) == names
    assert list(query.SUMMARY_FIELDS) == [f.name for f in schema.FIELDS if f.summary]


def test_limits_reach_the_checks_the_index_and_the_api_document() -> None:
    for field in schema.FIELDS:
        if field.kind == "string":
            assert record.STRING_LIMITS[field.name] == field.limit
            document = openapi.openapi_document()["components"]["schemas"]["Record"]
            assert document["properties"][field.name]["maxLength"] == field.limit
        if field.search == "text":
            mapping = search_index.MAPPINGS["properties"][field.name]
            assert mapping["fields"]["keyword"]["ignore_above"] == field.limit
    assert record.OBJECT_LIMITS == {"changes": 64 * 1024, "extra": 16 * 1024}
    limit = schema.BY_NAME["action"].limit
    assert limit is not None
    too_long = "x" * limit + "y"
    built = record.build_record({"action": too_long}, report=lambda _: None)
    assert built["action"] == too_long[:limit]
    assert built["truncated"] == ["action"]
