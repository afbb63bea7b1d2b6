from __future__ import annotations

import logging

from m2m.logs import RedactSecrets, redact


def test_secret_parameters_are_masked() -> None:
    line = "POST /token?grant_type=client_credentials&client_id=a&client_secret=s3cr3t&x=1"
    assert redact(line) == (
        "POST /token?grant_type=client_credentials&client_id=a&client_secret=***&x=1"
    )
    hint = "token_type_hint=access_token"
    assert redact(f"/revoke?token=abc&{hint}") == f"/revoke?token=***&{hint}"
    # Encoded names are what the server decodes, so they are masked too.
    assert redact("POST /token?client%5Fsecret=s3cr3t&a=1 HTTP/1.1") == (
        "POST /token?client%5Fsecret=***&a=1 HTTP/1.1"
    )
    assert redact("/revoke?%74oken=abc") == "/revoke?%74oken=***"
    assert redact("/m2m/1.0.0/simcards?msisdn=32470000001") == (
        "/m2m/1.0.0/simcards?msisdn=32470000001"
    )


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
    assert record.getMessage() == (
        '127.0.0.1:5000 - "POST /revoke?token=***&client_secret=*** HTTP/1.1" 200'
    )
