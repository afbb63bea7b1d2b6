"""``m2m listen``: a local callback receiver that prints status messages, for development."""

from __future__ import annotations

from typing import Annotated

import typer
from aiohttp import web

from m2m.cli.common import console
from m2m.receiving import CallbackVerifier, InvalidCallback


def make_receiver(verifier: CallbackVerifier) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            message = verifier.verify(body, dict(request.headers))
        except InvalidCallback as error:
            console.print(f"[red]refused[/red] {request.path}: {error}", highlight=False)
            return web.Response(status=401, text=str(error))
        colour = "green" if message.result_status == "Success" else "red"
        details = "; ".join(message.messages)
        console.print(
            f"{message.tracking_number}  {message.identifier_type} {message.identifier}  "
            f"[{colour}]{message.result_status}[/{colour}]  {details}",
            highlight=False,
            soft_wrap=True,
        )
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
        str | None, typer.Option(help="Verify Standard Webhooks signatures (whsec_…).")
    ] = None,
) -> None:
    """Receive callbacks on http://HOST:PORT/ and print each status message."""
    verifier = CallbackVerifier(signing_secret=secret, callback_token=callback_token)
    console.print(f"Listening on http://{host}:{port}/ (Ctrl+C to stop)")
    web.run_app(make_receiver(verifier), host=host, port=port, print=None)
