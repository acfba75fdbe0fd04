"""A management command that is another command line of the library: its flags are that
command's own parser's options, added to Django's parser (so ``--help`` lists them beside
``--settings``), and the values Django parsed are given back to it as an argument list."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.management.base import OutputWrapper

_FORWARDED = (argparse._StoreAction, argparse._StoreTrueAction, argparse._AppendAction)


def library_options(library: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``library``'s parser (its ``--help`` aside)."""
    actions = [action for action in library._actions if action.option_strings]
    actions = [action for action in actions if not isinstance(action, argparse._HelpAction)]
    for action in actions:
        # One line per kind of option the library uses: a new kind fails here, in every test.
        if not isinstance(action, _FORWARDED) or action.nargs not in (None, 0):
            raise TypeError(f"{action.option_strings[0]}: {type(action).__name__} is not forwarded")
    return actions


def add_library_options(
    parser: argparse.ArgumentParser, library: argparse.ArgumentParser, title: str
) -> None:
    """Add ``library``'s options to Django's ``parser``, in a group of their own. The same
    Action objects: their checks, defaults and help are the library's, never a copy."""
    taken = {action.dest for action in parser._actions}
    group = parser.add_argument_group(title)
    for action in library_options(library):
        if action.dest in taken:
            raise TypeError(f"{action.option_strings[0]}: Django's parser has {action.dest!r}")
        # argparse's own way to share options (what parents= does); it raises on a flag
        # Django's parser already has.
        group._add_action(action)


def library_argv(library: argparse.ArgumentParser, options: Mapping[str, Any]) -> list[str]:
    """The argument list that gives ``library``'s parser the values of ``options`` (what
    Django parsed, or what ``call_command`` was given); a default is left out."""
    argv: list[str] = []
    for action in library_options(library):
        value = options.get(action.dest, action.default)
        if value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            argv.extend(f"{flag}={item}" for item in _items(value))
        else:
            # flag=value: a value that starts with "-" stays a value.
            argv.append(f"{flag}={value}")
    return argv


def _items(value: Any) -> Iterable[Any]:
    return [value] if isinstance(value, str) else value


class TextTo(io.TextIOBase):
    """A text stream for ``print`` that writes to a command's ``self.stdout``/``stderr``
    as given (OutputWrapper adds a line ending to each write), so ``call_command(...,
    stdout=...)`` gets the library command's output."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._out.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self._out.flush()
