"""Terminal escapes, a right-to-left override and a CR LF that would forge a log line, in a
text field: JSON escapes them, so they are kept exactly as stored."""

FIELD = "notes"
VALUE = "\x1b[2J\u202eevil\r\nWARNING forged line\t\x07"


def check(shown: object) -> None:
    assert shown == VALUE
