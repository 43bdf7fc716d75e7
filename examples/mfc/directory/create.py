#!/usr/bin/env python3
"""Create the demo MFC database (mfc-demo.sql) as a SQLite file: the information system
that examples/mfc/directory.yaml queries.

    python3 examples/mfc/directory/create.py [PATH]

PATH defaults to /var/lib/astpbx/mfc-demo.db, the file the example's `directory.url`
names; its directory is created if missing. Idempotent: a second run adds only what is
missing and keeps what was changed since (numbers bound on the operator's form).
Python's standard library only.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

DEFAULT = "/var/lib/astpbx/mfc-demo.db"
SQL = Path(__file__).resolve().with_name("mfc-demo.sql")


def create(path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    script = SQL.read_text(encoding="utf-8")
    connection = sqlite3.connect(target)
    try:
        with connection:
            connection.executescript(script)
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = argv[0] if argv else DEFAULT
    try:
        create(path)
    except (OSError, sqlite3.Error) as error:
        print(f"create.py: {path}: {error}", file=sys.stderr)
        return 1
    print(f"demo MFC database: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
