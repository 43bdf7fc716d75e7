"""What a queued caller hears: the queue's playlist, item after item, round and round."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ast_pbx.config.model import Playlist, Prompt


def position_text(position: int) -> str:
    return f"Ваш номер в очереди: {position}."


def greeting_text(name: str) -> str:
    return f"Здравствуйте, {name}."


@dataclass
class Hold:
    """Which item of the playlist comes next (in order, or at random without repeating
    the one just played)."""

    playlist: Playlist
    index: int = -1

    def next(self) -> Prompt:
        items = self.playlist.items
        if self.playlist.order == "random" and len(items) > 1:
            choices = [i for i in range(len(items)) if i != self.index]
            self.index = random.choice(choices)
        else:
            self.index = (self.index + 1) % len(items)
        return items[self.index]
