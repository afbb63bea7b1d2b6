"""Pure checks of free text before it is stored: names, cost centers, profile strings.

Control characters (Unicode's ``Cc``: C0, DEL and C1) are refused in all of them. Nobody means
one in a name or a plan code; terminals and pages show them badly or not at all; and PostgreSQL
cannot store NUL in a text column while SQLite can, so without this check the same input would
be stored on one database and crash the other.
"""

from __future__ import annotations

import re

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
