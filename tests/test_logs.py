from __future__ import annotations

import logging

from m2m.logs import RedactSecrets, redact


def test_secret_parameters_are_masked() -> None:
    line = "POST /token?grant_type=client_credentials&client_id=a&client_secret=s3cr3t&x=1"
    assert redact(line) == (
        "POST /token?grant_type=client_credentials&client_id=a&client_secret=***&x=1"
    )
    assert (
        redact("token=abc&token_type_hint=access_token") == "token=***&token_type_hint=access_token"
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
