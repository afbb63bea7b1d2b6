"""Callbacks: everything between a finished item and the customer's receiver.

    rules          what a callback configuration may hold (URL, custom headers); pure
    configuration  saving an account's configuration, rotating its signing secret
    message        the documented status message body; pure
    signing        the per-account signing secret and its versions; pure
    retry          when to try a message again; pure
    breaker        when to stop calling a receiver, and the one probe that tests it; pure
    dispatch       which messages go out next (fair shares per account, breakers), and
                   recording what the attempts say about each receiver
    outbound       the SSRF guard and the HTTP session every message goes out through
    sender         one attempt: headers, signature, POST, and its judged outcome

Their SQL is ``storage.callback_configs`` (configuration, signing version, breaker) and
``storage.outbox`` (messages and attempts); the worker drives the outbox through ``dispatch``
and ``sender``.

``signing_secret`` is public here because receivers are told to import it from ``m2m.callbacks``
(docs/sdk.md). This module imports nothing heavy: the HTTP client loads with ``sender``.
"""

from m2m.callbacks.signing import signing_secret

__all__ = ["signing_secret"]
