"""The audit trail's vocabulary (pure): what changed, a header's value never, a request id only
when it is sane."""

from __future__ import annotations

import pytest

from m2m.audit import ACTIONS, callback_changes, changes_between, created, request_id_from


def test_changes_name_only_the_fields_that_differ() -> None:
    assert changes_between({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "b": {"before": 2, "after": 3},
        "c": {"before": None, "after": 4},
    }
    assert created(name="x") == {"name": {"before": None, "after": "x"}}


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("req-42", "req-42"),
        ("a" * 100, "a" * 100),
        ("a" * 101, None),
        ("", None),
        (None, None),
        ("line\nbreak", None),
        ("with spaces", None),
        ("caf\u00e9", None),
    ],
)
def test_a_request_id_is_kept_only_when_short_printable_ascii(
    header: str | None, kept: str | None
) -> None:
    assert request_id_from(header) == kept


def test_a_callback_change_shows_header_names_never_values() -> None:
    changes = callback_changes(
        "https://a.example/",
        {"Authorization": "Bearer old", "x-team": "ops"},
        "https://a.example/",
        {"Authorization": "Bearer new", "x-site": "eu"},
    )
    assert changes == {
        "headers": {
            "before": {"Authorization": "[redacted]", "x-team": "[redacted]"},
            "after": {"Authorization": "[redacted]", "x-site": "[redacted]"},
        },
        "header_values_changed": {"before": None, "after": ["Authorization"]},
    }
    assert "Bearer" not in repr(changes)


def test_actions_are_dotted_with_the_thing_first() -> None:
    assert all(name.count(".") == 1 and name == name.lower() for name in ACTIONS)
