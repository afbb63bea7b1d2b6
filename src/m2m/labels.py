"""A SIM's labels: the customer's free key/value tags, bounded so that one SIM stays cheap.

A key is 1 to 64 characters of letters, digits and ``. _ - / :``, starting with a letter or a
digit (``site``, ``fleet/region``, ``k8s.io:zone``): no ``=``, so that a filter
``label=site=ghent`` splits unambiguously at its first ``=`` (``parse_filter``). A value is at
most 200 characters of text without control characters, and may be empty. A SIM holds at most
32 labels. Keys compare exactly (case matters), as values do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from m2m.freetext import text_problem

MAX_LABELS = 32
KEY_LENGTH = 64
VALUE_LENGTH = 200
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$"
_KEY = re.compile(KEY_PATTERN)


def label_problems(labels: Mapping[str, object]) -> list[str]:
    """What is wrong with ``labels`` as a SIM's whole set of labels (empty: nothing)."""
    problems: list[str] = []
    if len(labels) > MAX_LABELS:
        problems.append(f"a SIM has at most {MAX_LABELS} labels, not {len(labels)}")
    for key, value in labels.items():
        if not _KEY.fullmatch(key):
            problems.append(
                f"label key {key[: KEY_LENGTH + 1]!r} must be 1 to {KEY_LENGTH} letters, digits"
                " or . _ - / :, starting with a letter or a digit"
            )
        if not isinstance(value, str):
            problems.append(f"label {key[:KEY_LENGTH]!r} must have a string value")
            continue
        problem = text_problem(f"label {key[:KEY_LENGTH]!r}", value, VALUE_LENGTH)
        if problem:
            problems.append(problem)
    return problems


def parse_filter(text: str) -> tuple[str, str | None] | None:
    """A ``label`` filter: ``key=value`` (that exact pair) or ``key`` (the key, any value);
    None when the key is not a valid key."""
    key, separator, value = text.partition("=")
    if not _KEY.fullmatch(key):
        return None
    return key, (value if separator else None)
