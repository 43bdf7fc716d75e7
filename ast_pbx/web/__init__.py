"""Web shell: what astpbx serves over HTTP — the call center's pages and the
external-system API, one app in the engine's event loop.

- `app.create_app(...)` → the one FastAPI app: the pages (`pages/*`, sessions, CSRF,
  roles: see `context`), the live events (`live`, `/events`), static files and
  templates, and the API under `/api`;
- `api.create_api(...)` → the app of `/api`: dialer tasks, callback requests, the call
  log, behind HTTP basic auth (`system.api`); OpenAPI at `/api/openapi.json`;
- `auth` — passwords (the directory's or `users:`'s hashes) and the lock-out;
- `server.HttpServer` — uvicorn in the engine's own event loop, on `system.http_listen`.

Handlers never block the loop: database calls run in worker threads.
"""
