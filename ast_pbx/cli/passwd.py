"""`astpbx hash-password`: an argon2 hash for `password_hash` in `users:`."""

from __future__ import annotations

import getpass
import sys

import typer

from ast_pbx.errors import UsageError
from ast_pbx.web.auth import hash_password


def hash_password_command() -> None:
    """Read a password and print its argon2 hash, for `password_hash` in `users:`.

    At a terminal the password is asked twice, without echo; otherwise the first line
    of standard input is the password. Only the hash is printed.
    """
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise UsageError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("empty password")
    typer.echo(hash_password(password))


def register(app: typer.Typer) -> None:
    app.command("hash-password")(hash_password_command)
