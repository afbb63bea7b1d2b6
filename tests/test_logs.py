from __future__ import annotations

import logging

import pytest

from m2m.logs import RedactSecrets, redact


def test_the_query_of_token_and_revoke_is_never_logged() -> None:
    line = "POST /token?grant_type=client_credentials&client_id=a&client_secret=s3cr3t&x=1"
    assert redact(line) == "POST /token?***"
    assert redact("/revoke?token=abc&token_type_hint=access_token") == "/revoke?***"
    assert redact("POST /token/?client_secret=s3cr3t HTTP/1.1") == "POST /token/?*** HTTP/1.1"
    # A misspelled name is still the secret (the cases, and their sandbox kin).
    for query in ("client_secret%00=s3cr3t", "+client_secret=s3cr3t", ";client_secret=s3cr3t"):
        assert "s3cr3t" not in redact(f"POST /token?{query} HTTP/1.1")


def test_secret_parameters_are_masked_elsewhere() -> None:
    assert redact("/m2m/1.0.0/simcards?msisdn=32470000001&access_token=abc") == (
        "/m2m/1.0.0/simcards?msisdn=32470000001&access_token=***"
    )
    # Encoded names are what the server decodes, so they are masked too, and so are names with
    # what cannot belong to a name around them.
    assert redact("/x?client%5Fsecret=s3cr3t&a=1") == "/x?client%5Fsecret=***&a=1"
    assert redact("/x?%74oken=abc") == "/x?%74oken=***"
    assert redact("/x?+client_secret=abc&b=2") == "/x?+client_secret=***&b=2"
    assert redact("/x?client_secret%00=abc") == "/x?client_secret%00=***"
    assert redact("/m2m/1.0.0/simcards?msisdn=32470000001") == (
        "/m2m/1.0.0/simcards?msisdn=32470000001"
    )


@pytest.mark.parametrize("prefix", ["m2mk_", "m2ms_", "m2mt_"])
def test_a_credential_is_masked_whatever_its_name_or_place(prefix: str) -> None:
    secret = prefix + "Zm9vYmFyYmF6cXV4LWJsYWgtYmxhaF9ibGFo"
    for text, expected in [
        (f"/x?api_key={secret}&a=1", "/x?api_key=***&a=1"),
        (f"/x?a=1;key={secret}", "/x?a=***"),
        (f"/x?{secret}", "/x?***"),
        (f"/x?k={secret.replace('_', '%5F')}", "/x?k=***"),
        (f"GET /m2m/1.0.0/{secret}/x HTTP/1.1", f"GET /m2m/1.0.0/{prefix}***/x HTTP/1.1"),
    ]:
        assert redact(text) == expected
        assert secret not in redact(text)


def test_filter_rewrites_uvicorn_access_records() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/revoke?token=abc&client_secret=xyz", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == ('127.0.0.1:5000 - "POST /revoke?*** HTTP/1.1" 200')
