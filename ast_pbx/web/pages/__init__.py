"""The pages: one router per module (`router`), included by `web.app.create_app`.

Handlers follow `web.context`: `Depends(require(role))` for the user, `Depends(csrf)`
on every state-changing route, `render()` for HTML; JSON for what page scripts fetch.
"""
