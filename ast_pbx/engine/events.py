"""Live events for the web page: the engine publishes, each open page subscribes.

Events are small dicts with a `type`:
- `ringing` {phone, caller, call}: a phone rings for a call (a queue member, a phone
  dialed) — the operator page pops up the caller;
- `answered` {phone, caller, call}: that phone picked up — the history entry is made;
- `calls` {}: the active calls changed (started, queued, talking, ended);
- `queues` {waiting: {queue: n}}: callers waiting per queue changed;
- `presence` {login}: an operator's binding or switch changed;
- `callbacks` {}: a callback request was left;
- `chat` {…}: published by the chat itself.
A slow page never slows calls: each page's subscription has a bounded queue, and what
does not fit is dropped for that subscriber (the page resynchronises on reconnect). A
subscriber inside the engine that must see every event (the history entries of the
calls operators pick up) subscribes `lossless`: its queue has no bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("astpbx.events")

BACKLOG = 500  # events a subscriber may fall behind before it misses some


class Bus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, kind: str, **data: Any) -> None:
        event = {"type": kind, **data}
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.debug("a live page fell behind; %s dropped for it", kind)

    @contextlib.contextmanager
    def subscribe(self, *, lossless: bool = False) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(0 if lossless else BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
