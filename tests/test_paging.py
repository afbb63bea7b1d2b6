"""The cursor is opaque but round-trips; anything else is refused; Link keeps the query."""

from __future__ import annotations

import pytest

from m2m.paging import InvalidCursor, decode_cursor, encode_cursor, next_link


def test_a_cursor_gives_back_its_key() -> None:
    assert decode_cursor(encode_cursor({"id": 42}), "id") == {"id": 42}


@pytest.mark.parametrize(
    "cursor", ["", "not base64!", "e30", encode_cursor({"other": 1}), "W10", "bnVsbA"]
)
def test_a_cursor_this_server_did_not_make_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "id")


def test_the_next_link_repeats_the_query_with_the_new_cursor() -> None:
    link = next_link("https://h.example/a?action=x.&action=y&cursor=old&limit=2", "NEW")
    assert link == '<https://h.example/a?action=x.&action=y&limit=2&cursor=NEW>; rel="next"'
