"""Pure checks of free text before it is stored: names, cost centers, profile strings.

Control characters (Unicode's ``Cc``: C0, DEL and C1) are refused in all of them. Names (of
accounts, applications, tokens) must also show what they are: no bidirectional embeddings,
overrides or isolates (U+202E would display ``txt.exe`` as ``exe.txt``), and at least one
visible character (a name of zero-width characters looks empty and matches no search). Nobody means
one in a name or a plan code; terminals and pages show them badly or not at all; and PostgreSQL
cannot store NUL in a text column while SQLite can, so without this check the same input would
be stored on one database and crash the other.
"""

from __future__ import annotations

import re
import unicodedata

CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
# The same class as a whole-string pattern: pydantic checks it in its compiled core (no Python
# call per string), and the OpenAPI document shows it. Python, Rust and ECMAScript all read it.
WITHOUT_CONTROL_CHARACTERS = f"^[^{CONTROL_CHARACTERS}]*$"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def control_character(value: str) -> str | None:
    """The first control character in ``value``, written U+XXXX, or None."""
    found = _CONTROL.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def text_problem(label: str, value: str, max_length: int) -> str | None:
    """What is wrong with ``value`` as text of at most ``max_length`` characters, or None."""
    if len(value) > max_length:
        return f"{label} is longer than {max_length} characters"
    character = control_character(value)
    if character:
        return f"{label} contains a control character ({character})"
    return None


# Embeddings, overrides (U+202A-U+202E) and isolates (U+2066-U+2069): they reorder what follows.
# The marks (U+200E, U+200F, U+061C) only nudge neutral characters, and right-to-left names need
# them.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Categories that show nothing on their own: separators (spaces), format characters (zero-width
# space, joiners, BOM) and combining marks.
_INVISIBLE = ("Z", "Cf", "M")


def name_problem(label: str, value: str, max_length: int) -> str | None:
    """What is wrong with ``value`` as a name, or None (``text_problem`` and more, see above)."""
    problem = text_problem(label, value, max_length)
    if problem:
        return problem
    found = _BIDI_CONTROL.search(value)
    if found:
        return f"{label} contains a bidirectional control character (U+{ord(found.group()):04X})"
    if all(unicodedata.category(char).startswith(_INVISIBLE) for char in value):
        return f"{label} has no visible character"
    return None
