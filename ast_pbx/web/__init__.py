"""Web shell: what astpbx serves over HTTP — the external-system API now, the operator
page later.

- `api.create_api(...)` → the FastAPI app of `/api`: dialer tasks, callback requests,
  the call log, behind HTTP basic auth (`system.api`); OpenAPI at `/api/openapi.json`;
- `server.HttpServer` — uvicorn in the engine's own event loop, on `system.http_listen`.

Handlers never block the loop: database calls run in worker threads.
"""
