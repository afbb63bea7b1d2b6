"""Pure checks of free text: length and control characters."""

from __future__ import annotations

from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import StringConstraints, TypeAdapter, ValidationError

from m2m.freetext import (
    WITHOUT_CONTROL_CHARACTERS,
    control_character,
    name_problem,
    text_problem,
)

# The pattern as pydantic applies it to profile documents (its Rust regex engine).
WITHOUT_CONTROL = TypeAdapter(Annotated[str, StringConstraints(pattern=WITHOUT_CONTROL_CHARACTERS)])


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("plain", None),
        ("Zürich, Ωμέγα 🚚", None),
        ("a\u00a0b", None),  # a no-break space is text, not a control character
        ("a\x00b", "U+0000"),
        ("tab\there", "U+0009"),
        ("line\nbreak", "U+000A"),
        ("\x1b[31mred", "U+001B"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("c1\x9f", "U+009F"),
        ("first\x01then\x02", "U+0001"),
    ],
)
def test_control_character_names_the_first_one(value: str, found: str | None) -> None:
    assert control_character(value) == found


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x" * 10, None),
        ("x" * 11, "name is longer than 10 characters"),
        ("é" * 10, None),  # characters, not bytes: what a varchar(n) counts
        ("a\x00", "name contains a control character (U+0000)"),
        ("", None),
    ],
)
def test_text_problem(value: str, problem: str | None) -> None:
    assert text_problem("name", value, 10) == problem


def refused_by_pattern(value: str) -> bool:
    try:
        WITHOUT_CONTROL.validate_python(value)
    except ValidationError:
        return True
    return False


@given(st.text(max_size=20))
def test_the_pattern_and_the_check_agree(value: str) -> None:
    """pydantic checks the pattern (profile documents), Python the search (everything else):
    both must refuse the same strings."""
    assert refused_by_pattern(value) == (control_character(value) is not None)


@pytest.mark.parametrize("value", ["a\x00", "\n", "x\x9f", "ok\x7f"])
def test_the_pattern_refuses_control_characters(value: str) -> None:
    assert refused_by_pattern(value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Fleet 7", None),
        ("שלום\u200f (IL)", None),  # a right-to-left mark is how RTL names are written
        ("Zürich\u0301", None),
        ("a\x00", "name contains a control character (U+0000)"),
        ("x" * 11, "name is longer than 10 characters"),
        ("ev\u202etxt.exe", "name contains a bidirectional control character (U+202E)"),
        ("a\u2066b\u2069", "name contains a bidirectional control character (U+2066)"),
        ("\u202ax", "name contains a bidirectional control character (U+202A)"),
        ("\u200b", "name has no visible character"),
        ("\u200b\u200c\u200d\u2060\ufeff", "name has no visible character"),
        ("\u3000\u00a0", "name has no visible character"),
        ("\u0301\u0301", "name has no visible character"),
    ],
)
def test_name_problem(value: str, problem: str | None) -> None:
    assert name_problem("name", value, 10) == problem
