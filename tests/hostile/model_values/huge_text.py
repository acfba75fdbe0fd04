"""5 MB in a TextField: a record's changes hold 64 KiB, so the whole object would be cut to
one string. The value is cut to 8 KiB with its length said, the record marks changes as
truncated and names the field in extra["cut_values"]; the record is never dropped."""

FIELD = "notes"
VALUE = "x" * 5_000_000


def check(shown: object) -> None:
    assert isinstance(shown, str)
    assert shown.startswith("x" * 8192)
    assert shown.endswith("<5000000 characters: cut>")


def check_record(record: dict[str, object]) -> None:
    assert record["truncated"] == ["changes"]
    assert record["extra"] == {"cut_values": ["notes"]}
