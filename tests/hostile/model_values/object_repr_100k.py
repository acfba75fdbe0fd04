"""A name of 100,000 characters (SQLite does not enforce max_length): object_repr holds 1,024
characters, so it is cut there and listed in the record's "truncated"."""

FIELD = "name"
VALUE = "N" * 100_000
DATABASES = ("default",)  # PostgreSQL refuses it (varchar(200)) before any record


def check(shown: object) -> None:
    assert isinstance(shown, str) and shown.endswith("<100000 characters: cut>")


def check_record(record: dict[str, object]) -> None:
    shown = record["object_repr"]
    assert isinstance(shown, str) and len(shown) == 1024
    assert "object_repr" in record["truncated"]  # type: ignore[operator]
