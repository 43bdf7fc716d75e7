"""`astpbx run`: the engine that runs calls on Asterisk with the call-flow core.

One asyncio process: the ARI connection (ast_pbx.ari), one `CallSession` per call
driving a `core.call.Call`, TTS and converted audio for prompts, the directory port
for scenarios, the call log in the database, and a watcher that swaps in a new
config version when the files change.
"""
