"""The search route's parameters as documented are the ones it accepts, within the bounds it
enforces: each side is read from outside (the served document, the answers to requests), so
a parameter added, dropped or re-bounded on one side only fails here."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from audit_logging.api.cursor import Cursor, encode_cursor
from audit_logging.api.openapi import openapi_document
from audit_logging.api.params import markdown_table
from tests._readme import assert_generated_block_is

pytestmark = pytest.mark.services

SEARCH = "/api/audit-logs/search/"
OPENAPI = "/api/audit-logs/openapi.json"
DOCUMENTED: list[dict[str, Any]] = openapi_document()["paths"][SEARCH]["get"]["parameters"]
CURSOR = encode_cursor(Cursor(1_767_268_800_000_000_000, str(uuid.uuid4()), 40))
# A value for each format the document names, valid for the parser too.
EXAMPLE_OF_FORMAT = {"ipv4": "10.0.0.1", "date-time": "2026-01-31T23:59:59Z"}


def valid_value(schema: dict[str, Any]) -> str:
    """A value the schema allows, as long as it allows for strings without a format."""
    if schema["type"] == "integer":
        return str(schema["default"])
    if "anyOf" in schema:
        formats = [f["format"] for f in schema["anyOf"] if "format" in f]
        return EXAMPLE_OF_FORMAT[formats[0]]
    if "pattern" in schema:
        assert re.search(schema["pattern"], CURSOR)  # the pattern is anchored
        return CURSOR
    return "x" * int(schema["maxLength"])


def values_out_of_bounds(schema: dict[str, Any]) -> list[str]:
    """One value past each bound the schema states."""
    values = []
    if "maxLength" in schema:
        values.append("1" * (schema["maxLength"] + 1))
    if schema.get("minLength", 0) > 0:
        values.append("")
    if "maximum" in schema:
        values.append(str(schema["maximum"] + 1))
    if "minimum" in schema:
        values.append(str(schema["minimum"] - 1))
    if "pattern" in schema:
        values.append("not a cursor!")
    return values


def assert_bad_parameter(response: Any, name: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_parameter"
    assert response.json()["error"]["field"] == name


def test_the_readmes_parameter_table_is_the_one_the_route_makes() -> None:
    assert_generated_block_is(
        "parameters", markdown_table(), "audit_logging.api.params.markdown_table"
    )


def test_the_served_document_lists_exactly_the_parameters_the_search_accepts(
    client: TestClient,
) -> None:
    served = client.get(OPENAPI).json()["paths"][SEARCH]["get"]["parameters"]
    assert served == DOCUMENTED
    documented = [p["name"] for p in served if p["in"] == "query"]
    assert len(documented) == len(served) == len(set(documented))
    # The route's own list, as it tells a caller who sends a name it does not know.
    message = client.get(SEARCH, params={"no_such_parameter": "x"}).json()["error"]["message"]
    known = re.search(r"\(known: (?P<names>[^)]*)\)", message)
    assert known is not None, message
    assert known["names"].split(", ") == documented


@pytest.mark.parametrize("param", DOCUMENTED, ids=lambda p: p["name"])
def test_each_documented_parameter_is_accepted(client: TestClient, param: dict[str, Any]) -> None:
    response = client.get(SEARCH, params={param["name"]: valid_value(param["schema"])})
    assert response.status_code == 200, response.text


BOUNDED = [
    (param["name"], value)
    for param in DOCUMENTED
    for value in values_out_of_bounds(param["schema"])
]


def test_every_documented_parameter_has_a_bound() -> None:
    assert {name for name, _ in BOUNDED} == {p["name"] for p in DOCUMENTED}


@pytest.mark.parametrize(("name", "value"), BOUNDED, ids=[f"{n}={v[:12]}" for n, v in BOUNDED])
def test_a_value_past_a_documented_bound_is_a_400_naming_the_parameter(
    client: TestClient, name: str, value: str
) -> None:
    assert_bad_parameter(client.get(SEARCH, params={name: value}), name)
