"""The call-flow core: routing, override rules and the IVR state machine.

Pure: no I/O, no clock of its own, no asyncio. A live call (over ARI) and
`astpbx simulate` drive the same `Call` with events and carry out the actions
it returns; every decision is recorded as a `Step` the shells can log.
"""
