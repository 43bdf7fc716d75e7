"""`astpbx callback list|call|done`: callback requests from the command line.

`list` and `done` read and write the database directly; `call` asks the running engine
(its HTTP API on `system.http.listen`, with the `system.api` credentials) to ring the
operator's phone and then dial the citizen — only the engine can place calls.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from base64 import b64encode
from datetime import datetime, tzinfo
from typing import Annotated

import typer

from ast_pbx.cli.common import config_timezone, load_valid
from ast_pbx.cli.report import ConfigArg
from ast_pbx.config.configuration import Config
from ast_pbx.errors import AstPbxError, UsageError
from ast_pbx.storage.callbacks import CallbackRecord, CallbackStore
from ast_pbx.storage.reporting import open_reporting

TIME_FORMAT = "%Y-%m-%d %H:%M"

app = typer.Typer(
    help="Callback requests: list the open ones, call a citizen back, close or put off one.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

IdArg = Annotated[int, typer.Argument(metavar="ID", help="The request's id (see `list`).")]


@app.command("list")
def list_requests(
    config_path: ConfigArg,
    everything: Annotated[
        bool, typer.Option("--all", help="Closed and put-off requests too, newest first.")
    ] = False,
) -> None:
    """The open requests, oldest first: not done, and not put off to a later time."""
    config = load_valid(config_path)
    tz = config_timezone(config)
    with open_reporting(config.system.database_url) as database:
        store = CallbackStore(database)
        found = store.list(limit=1000) if everything else store.open(datetime.now(tz))
    if not found:
        typer.echo("no callback requests")
        return
    for record in found:
        typer.echo(_line(record, tz))


@app.command("call")
def call(
    callback_id: IdArg,
    config_path: ConfigArg,
    operator: Annotated[
        str, typer.Option("--operator", metavar="LOGIN", help="Who calls back (a user's login).")
    ],
    phone: Annotated[
        str | None,
        typer.Option(
            "--phone",
            metavar="N",
            help="The phone to ring first. Default: the operator's bound one.",
        ),
    ] = None,
) -> None:
    """Ring the operator's phone; when they answer, the engine dials the citizen."""
    config = load_valid(config_path)
    body = {"operator": operator, **({"phone": phone} if phone else {})}
    answer = _post(config, f"/api/callbacks/{callback_id}/call", body)
    typer.echo(f"callback {callback_id}: ringing {phone or operator} (call {answer['call']})")


@app.command("done")
def done(
    callback_id: IdArg,
    config_path: ConfigArg,
    later: Annotated[
        str | None,
        typer.Option(
            "--later",
            metavar="WHEN",
            help="Instead of closing it, hide the request until WHEN ('YYYY-MM-DD HH:MM', "
            "system timezone): the citizen asked to be called later.",
        ),
    ] = None,
) -> None:
    """Close a request (the citizen was called back), or put it off with --later."""
    config = load_valid(config_path)
    tz = config_timezone(config)
    until = None if later is None else _local_time(later, tz)
    with open_reporting(config.system.database_url) as database:
        store = CallbackStore(database)
        if until is None:
            record = store.update(callback_id, done=True)
        else:
            record = store.update(callback_id, call_not_before=until)
    if record is None:
        raise UsageError(f"no callback request {callback_id}")
    typer.echo(_line(record, tz))


def _line(record: CallbackRecord, tz: tzinfo) -> str:
    def local(at: datetime | None) -> str:
        return at.astimezone(tz).strftime(TIME_FORMAT) if at else "-"

    state = "done" if record.done else "open"
    if not record.done and record.call_not_before is not None:
        state = f"from {local(record.call_not_before)}"
    called = f" called {local(record.called_at)} by {record.operator}" if record.called_at else ""
    return f"{record.id}\t{record.caller}\t{local(record.requested_at)}\t{state}{called}"


def _local_time(text: str, tz: tzinfo) -> datetime:
    try:
        moment = datetime.strptime(text, TIME_FORMAT)
    except ValueError as exc:
        raise UsageError(f"--later {text!r}: expected 'YYYY-MM-DD HH:MM'") from exc
    return moment.replace(tzinfo=tz)


def _post(config: Config, path: str, body: dict[str, str]) -> dict[str, str]:
    system = config.system
    credentials = b64encode(f"{system.api.username}:{system.api.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{system.http_listen}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            answer: dict[str, str] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise AstPbxError(f"the engine refused: {message}") from exc
    except OSError as exc:
        raise AstPbxError(
            f"no engine answers on http://{system.http_listen} (is `astpbx run` up?): {exc}"
        ) from exc


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="callback")
