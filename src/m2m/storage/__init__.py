"""All SQL lives in this package. Functions take a ``Connection`` (or an ``Engine`` for a
prepared single-statement read) so the caller decides the transaction; they never commit on their
own. Nothing here imports from outside ``m2m.storage``.

Infrastructure:
    engine          engines, write transactions, which errors are transient
    tables          the schema (SQLAlchemy Core); ``migrate`` runs Alembic to it
    prepared        single-statement reads compiled once (the API's hot path)
    notify          waking workers in other processes (PostgreSQL LISTEN/NOTIFY)
    leases          leasing rows and reading the tenants' queues, shared by the item queue
                    and the outbox

A lifecycle request's journey, one module a step:
    request_intake  accepting a request: devices resolved to SIMs, request and items inserted
    item_queue      workers claim ready items (fairly across accounts) and record outcomes,
                    state changes, messages
    outbox          callback messages claimed when due, attempts recorded, replays
    request_status  following a request, device by device
    retention       deleting settled requests

What the requests act on and who makes them:
    accounts        accounts, API keys, OAuth2 apps, access and permanent tokens
    sims            the SIM inventory: the caller's SIM, the bulk import
    callback_configs  an account's callback URL, headers, signing-secret version and the
                    URL's circuit breaker
    console         console users, sessions and login failures
    fleet           the console's SIM list, a SIM's page and history
    activity        the console's request list, progress and charts
"""
