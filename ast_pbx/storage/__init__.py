"""Storage shell: the database of the running engine (call log, queue statistics and
operators now; later dialer tasks, callbacks, chat).

SQLite file by default (`system.database` unset), any SQLAlchemy URL otherwise —
`postgresql://…` in production. This package is the only place that talks to the
database engine; everything outside it gets plain frozen dataclasses back.

- `db.open_database(url)` → `Database` (engine, sessions, `migrate()`);
- `models` — the SQLAlchemy tables, one metadata;
- `calls.CallLog` — the call log repository;
- `queues.QueueStats` — queue waits: answers, abandons, waits and talk time, reports;
- `operators.OperatorStore` — operators: bind codes, the phone each sits at, accepting;
- `migrations/` — Alembic scripts, shipped inside the package.

Adding a table = a model in `models.py` (or a module imported by it) + a
migration in `migrations/versions/`. To draft the migration against an up-to-date
scratch database, then review it by hand::

    from alembic import command
    from ast_pbx.storage.db import open_database
    db = open_database("sqlite:////tmp/draft.db")
    db.migrate()
    with db.engine.begin() as connection:
        command.revision(db.alembic_config(connection), message="queue stats",
                         autogenerate=True, rev_id="0002")

`tests/test_storage.py` fails when models and migrations drift apart.
"""
