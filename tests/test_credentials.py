from __future__ import annotations

from m2m import credentials


def test_secrets_are_long_random_and_prefixed() -> None:
    first, second = credentials.new_secret("m2mk_"), credentials.new_secret("m2mk_")
    assert first.startswith("m2mk_")
    assert first != second
    assert len(first) - len("m2mk_") >= 43  # 32 bytes, base64url


def test_digest_matches_only_the_same_secret() -> None:
    stored = credentials.digest("s3cret")
    assert len(stored) == 32
    assert credentials.matches("s3cret", stored)
    assert not credentials.matches("s3cret ", stored)
    assert not credentials.matches("", stored)


def test_derived_token_depends_on_secret_and_salt() -> None:
    salt = credentials.new_salt()
    token = credentials.derive_access_token("secret", salt)
    assert token == credentials.derive_access_token("secret", salt)
    assert token != credentials.derive_access_token("other", salt)
    assert token != credentials.derive_access_token("secret", credentials.new_salt())
    assert len(token) == 43
