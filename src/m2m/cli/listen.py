"""``m2m listen``: a local callback receiver that prints status messages, for development."""

from __future__ import annotations

from typing import Annotated

import typer
from aiohttp import web
from rich.text import Text

from m2m.cli.common import console, err_console, print_json_line
from m2m.client.models import StatusMessage
from m2m.client.receiving import CallbackVerifier, InvalidCallback


def describe(message: StatusMessage) -> Text:
    """One line per message; plain Text, so nothing a sender writes is read as markup."""
    line = Text(f"{message.tracking_number}  ")
    line.append(f"{message.device.identifier_type} {message.device.identifier}  ")
    line.append(message.result_status, style="green" if message.succeeded else "red")
    if message.messages:
        line.append("  " + "; ".join(message.messages))
    return line


def make_receiver(verifier: CallbackVerifier, *, as_json: bool = False) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            message = verifier.verify(body, request.headers)
        except InvalidCallback as error:
            refused = Text("refused", style="red").append(f" {request.path}: {error}", style="")
            err_console.print(refused, highlight=False, soft_wrap=True)
            return web.Response(status=401, text=str(error))
        if as_json:
            fields = message.model_dump(mode="json", by_alias=True)
            print_json_line({**fields, "webhookId": message.message_id})
        else:
            console.print(describe(message), highlight=False, soft_wrap=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def listen(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    callback_token: Annotated[
        str | None, typer.Option(help="Refuse messages without this x-callback-token.")
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Verify Standard Webhooks signatures (whsec_…).", envvar="M2M_WEBHOOK_SECRET"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each message as one line of JSON.")
    ] = False,
) -> None:
    """Receive callbacks on http://HOST:PORT/ and print each status message."""
    verifier = CallbackVerifier(signing_secret=secret, callback_token=callback_token)
    err_console.print(f"Listening on http://{host}:{port}/ (Ctrl+C to stop)", highlight=False)
    web.run_app(make_receiver(verifier, as_json=as_json), host=host, port=port, print=None)
