"""The interaction history with a citizen's number: the right pane of the operator's form.

An entry is made when an operator picks up a call (`web.interactions`), when they call a
citizen back, or by hand; the operator then writes the question group, the question and
the answer. The history is read by number, newest first (`for_phone`).

Sync and short, like `callbacks.CallbackStore`: each method is one transaction, safe to
call from threads. Callers get frozen `InteractionRecord`s. Times must be
timezone-aware; they come back in UTC. Who may edit an entry is the page's call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from ast_pbx.storage.db import Database
from ast_pbx.storage.models import Interaction
from ast_pbx.storage.values import Fit, aware

Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")


@dataclass(frozen=True)
class InteractionRecord:
    """An entry as stored; see `models.Interaction` for what each field means."""

    id: int
    phone: str
    at: datetime
    direction: str
    call_id: str | None
    caller_name: str | None
    question_group: str | None
    question: str | None
    answer: str | None
    operator: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, interaction: Interaction) -> InteractionRecord:
        return cls(
            id=interaction.id,
            phone=interaction.phone,
            at=interaction.at,
            direction=interaction.direction,
            call_id=interaction.call_id,
            caller_name=interaction.caller_name,
            question_group=interaction.question_group,
            question=interaction.question,
            answer=interaction.answer,
            operator=interaction.operator,
            updated_at=interaction.updated_at,
        )


class InteractionStore:
    """Repository of the `interactions` table over a `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(
        self,
        phone: str,
        at: datetime,
        direction: Direction = "in",
        *,
        call_id: str | None = None,
        caller_name: str | None = None,
        operator: str | None = None,
        question_group: str | None = None,
        question: str | None = None,
        answer: str | None = None,
    ) -> InteractionRecord:
        """Store an entry for `phone` at `at`; "in": the citizen called, "out": we did."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: 'in' or 'out'")
        interaction = Interaction(
            phone=_fit("phone", phone),
            at=aware(at),
            direction=direction,
            call_id=_fit("call_id", call_id),
            caller_name=_fit("caller_name", caller_name),
            operator=_fit("operator", operator),
            question_group=_fit("question_group", question_group),
            question=question,
            answer=answer,
        )
        with self._database.session() as session:
            session.add(interaction)
            session.flush()
            return InteractionRecord.of(interaction)

    def add_for_call(
        self,
        phone: str,
        at: datetime,
        call_id: str,
        direction: Direction = "in",
        *,
        caller_name: str | None = None,
        operator: str | None = None,
    ) -> tuple[InteractionRecord, bool]:
        """The entry of call `call_id`: the one stored, or a new one; and whether it is new.

        A call gets one entry however often its pick-up is reported.
        """
        existing = self.for_call(call_id)
        if existing is not None:
            return existing, False
        record = self.add(
            phone, at, direction, call_id=call_id, caller_name=caller_name, operator=operator
        )
        return record, True

    def get(self, interaction_id: int) -> InteractionRecord | None:
        """The entry of an id, or None."""
        with self._database.session() as session:
            interaction = session.get(Interaction, interaction_id)
            return None if interaction is None else InteractionRecord.of(interaction)

    def for_call(self, call_id: str) -> InteractionRecord | None:
        """The first entry made for call `call_id`, or None."""
        query = (
            sa.select(Interaction)
            .where(Interaction.call_id == _fit("call_id", call_id))
            .order_by(Interaction.id)
            .limit(1)
        )
        with self._database.session() as session:
            interaction = session.scalars(query).first()
            return None if interaction is None else InteractionRecord.of(interaction)

    def for_phone(self, phone: str, limit: int = 50) -> list[InteractionRecord]:
        """The history of `phone` (exactly that number), newest first."""
        query = (
            sa.select(Interaction)
            .where(Interaction.phone == _fit("phone", phone))
            .order_by(Interaction.at.desc(), Interaction.id.desc())
            .limit(limit)
        )
        with self._database.session() as session:
            return [InteractionRecord.of(interaction) for interaction in session.scalars(query)]

    def update(
        self,
        interaction_id: int,
        *,
        question_group: str | None,
        question: str | None,
        answer: str | None,
        operator: str | None,
        at: datetime,
        caller_name: str | None = None,
    ) -> InteractionRecord | None:
        """Write what the call was about and who handled it, as of `at` (`updated_at`).

        Empty texts are stored as None; `caller_name` None keeps the name stored.
        None if there is no such entry.
        """
        at = aware(at)
        with self._database.session() as session:
            interaction = session.get(Interaction, interaction_id, with_for_update=True)
            if interaction is None:
                return None
            interaction.question_group = _fit("question_group", question_group or None)
            interaction.question = question or None
            interaction.answer = answer or None
            interaction.operator = _fit("operator", operator or None)
            if caller_name is not None:
                interaction.caller_name = _fit("caller_name", caller_name or None)
            interaction.updated_at = at
            session.flush()
            return InteractionRecord.of(interaction)


_fit = Fit(Interaction.__table__)
