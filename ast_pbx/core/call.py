"""One call through the IVR: a state machine fed with events, answering with actions.

Events: `start`, `prompt_done`, `dtmf`, `timer`, `lookup_done`, `hangup`, each with the
current time (timezone-aware). Actions (`steps.Action`) tell the shell what to do.
Every decision is appended to `steps`; `visits` lists the numbers routed to.

Input semantics: a key that a `key` handler takes fires at once and interrupts the
prompt (barge-in). In a menu with `digits` handlers every other key is collected and
also interrupts the prompt; a `digits` handler fires when everything collected in this
menu fully matches its regex and passes those digits on as the target's input. Other
keys are ignored. The timeout counts from the end of the prompt and starts again with
each collected key; without a `timeout` handler the call hangs up after 15 s. In a
queue the timeout counts the waiting time from entering the queue.
"""

from __future__ import annotations

import enum
from datetime import datetime, tzinfo

from ast_pbx.config.configuration import Config
from ast_pbx.config.model import DEFAULT_MENU_TIMEOUT, Handler, Menu, Phone, Queue, Trunk
from ast_pbx.config.problems import Where
from ast_pbx.core.routing import resolve
from ast_pbx.core.scenarios import LOOKUPS, Answer, case_number, text_for
from ast_pbx.core.steps import (
    Action,
    DialPhone,
    DialTrunk,
    DigitsMatched,
    Ended,
    EnterQueue,
    Hangup,
    KeyIgnored,
    KeyTaken,
    Lookup,
    Play,
    Prompted,
    ScenarioRan,
    StartTimer,
    Step,
    StopPlayback,
    TimedOut,
)


class Phase(enum.Enum):
    IDLE = "idle"
    PROMPT = "prompt"  # a prompt is playing
    LOOKUP = "lookup"  # a scenario waits for the directory port
    WAITING = "waiting"  # a menu waits for keys or its timeout
    QUEUED = "queued"
    ENDED = "ended"


class Call:
    def __init__(
        self,
        config: Config,
        *,
        called: str,
        caller: str | None,
        tz: tzinfo,
        trunk: Trunk | None = None,
    ) -> None:
        self.config = config
        self.called = called
        self.caller = caller
        self.tz = tz
        self.trunk = trunk  # the trunk the call came in on: it starts at `inbound`
        self.steps: list[Step] = []
        self.visits: list[str] = []
        self.phase = Phase.IDLE
        self.node: Menu | Queue | None = None
        self.input = ""  # digits handed to the current menu by a digits handler
        self.collected = ""  # keys pressed in the current menu
        self.token = 0
        self.ends: str | None = None  # hangup | phone N | queue N | trunk NAME
        self._lookup: tuple[str, str] | None = None

    # Events

    def start(self, now: datetime) -> list[Action]:
        number = self.called
        if self.trunk is not None and self.trunk.inbound:
            number = self.trunk.inbound
        return self._route(number, "", now)

    def prompt_done(self, now: datetime) -> list[Action]:
        if self.phase is not Phase.PROMPT:
            return []  # a prompt stopped by barge-in ends after the keys were handled
        return self._await_input()

    def lookup_done(self, answer: Answer, now: datetime) -> list[Action]:
        if self.phase is not Phase.LOOKUP or self._lookup is None:
            return []
        scenario, key = self._lookup
        self._lookup = None
        text = text_for(scenario, key, answer)
        self.steps.append(ScenarioRan(scenario, key, text, where=self._where()))
        self.phase = Phase.PROMPT
        return [Play("say", text)]

    def dtmf(self, digit: str, now: datetime) -> list[Action]:
        if self.phase not in (Phase.PROMPT, Phase.WAITING, Phase.QUEUED) or self.node is None:
            return []
        playing = self.phase is Phase.PROMPT
        stop: list[Action] = [StopPlayback()] if playing else []
        handlers = self.node.handlers
        taker = next((h for h in handlers if h.kind == "key" and h.key == digit), None)
        if taker is not None:
            self.steps.append(KeyTaken(digit, taker.goto, playing, where=taker.where))
            return stop + self._goto(taker, "", now)
        collectors = [h for h in handlers if h.kind == "digits" and h.digits is not None]
        if not collectors:
            self.steps.append(KeyIgnored(digit, where=self.node.where))
            return []
        self.collected += digit
        for handler in collectors:
            assert handler.digits is not None
            if handler.digits.fullmatch(self.collected):
                self.steps.append(
                    DigitsMatched(
                        self.collected, handler.digits.source, handler.goto, where=handler.where
                    )
                )
                return stop + self._goto(handler, self.collected, now)
        if self.phase is Phase.QUEUED:
            return []  # waiting time keeps counting in a queue
        return stop + self._await_input()

    def timer(self, token: int, now: datetime) -> list[Action]:
        if token != self.token or self.phase not in (Phase.WAITING, Phase.QUEUED):
            return []  # stale: the call moved on since this timer was started
        assert self.node is not None
        handler = next((h for h in self.node.handlers if h.kind == "timeout"), None)
        if handler is None:
            self.steps.append(TimedOut(DEFAULT_MENU_TIMEOUT, None, True, where=self.node.where))
            return self._end("hangup", "no input")
        self.steps.append(TimedOut(handler.timeout or 0, handler.goto, where=handler.where))
        return self._goto(handler, "", now)

    def hangup(self, now: datetime) -> list[Action]:
        """The caller hung up. One who gives up waiting in a queue ends there (abandoned)."""
        if self.phase is Phase.ENDED:
            return []
        queued = self.phase is Phase.QUEUED
        self.phase = Phase.ENDED
        self.ends = self.ends if queued and self.ends else "hangup"
        self.steps.append(
            Ended(self.ends, "caller hung up in the queue" if queued else "caller hung up")
        )
        return []

    def connected(self, member: str, now: datetime) -> list[Action]:
        """A member of the queue answered: the call is theirs now."""
        if self.phase is not Phase.QUEUED:
            return []
        return self._end(self.ends or "hangup", f"answered by {member}")

    def fail(self, now: datetime, reason: str) -> list[Action]:
        """The shell could not carry the call on (an error of its own): it ends here."""
        if self.phase is Phase.ENDED:
            return []
        return self._end(
            self.ends if self.phase is Phase.QUEUED and self.ends else "hangup", reason
        )

    def resume(
        self, number: str, digits: str, now: datetime, *, waited: float = 0.0
    ) -> list[Action]:
        """Carry on a call another engine had at menu or queue `number` (an engine's
        restart): a menu starts over (its prompt again, keys typed so far asked again),
        a queue goes on counting its timeout from `waited` seconds of waiting already."""
        node = self.config.targets.get(number)
        if isinstance(node, Menu):
            return self._enter_menu(node, digits, now)
        if isinstance(node, Queue):
            return self._enter_queue(node, waited)
        return self._route(number, digits, now)  # gone from the config: routed anew

    def resume_ended(self, ends: str | None) -> None:
        """A call another engine had already connected (to a phone, trunk or member):
        only the conversation is left, the voice menu is done with it."""
        self.phase = Phase.ENDED
        self.ends = ends

    # Decisions
    # Decisions

    def _where(self) -> Where | None:
        return self.node.where if self.node is not None else None

    def _goto(self, handler: Handler, digits: str, now: datetime) -> list[Action]:
        if handler.goto is None:
            return self._end("hangup", "handler without goto")
        return self._route(handler.goto, digits, now)

    def _route(self, number: str, digits: str, now: datetime) -> list[Action]:
        result = resolve(self.config, number, self.caller, now.astimezone(self.tz))
        self.steps.extend(result.steps)
        self.visits.extend(result.visits)
        if result.hangup is not None:
            return self._end("hangup", result.hangup)
        if result.trunk is not None:
            trunk = result.trunk
            return self._end(
                f"trunk {trunk.name}", "dialed out", [DialTrunk(trunk.name, result.number)]
            )
        target = result.target
        if isinstance(target, Phone):
            return self._end(f"phone {target.number}", "dialed", [DialPhone(target.number)])
        if isinstance(target, Queue):
            return self._enter_queue(target)
        assert isinstance(target, Menu)
        return self._enter_menu(target, digits, now)

    def _enter_menu(self, menu: Menu, digits: str, now: datetime) -> list[Action]:
        self.node, self.input, self.collected = menu, digits, ""
        prompt = menu.prompt
        if prompt is None:
            self.phase = Phase.PROMPT
            return self.prompt_done(now)
        if prompt.kind != "scenario":
            self.steps.append(Prompted(prompt.kind, prompt.value, where=prompt.where))
            self.phase = Phase.PROMPT
            return [Play(prompt.kind, prompt.value)]
        return self._run_scenario(prompt.value, now)

    def _run_scenario(self, scenario: str, now: datetime) -> list[Action]:
        if scenario in LOOKUPS:
            key = case_number(self.input) if scenario == "case_status" else (self.caller or "")
            self._lookup = (scenario, key)
            self.phase = Phase.LOOKUP
            return [Lookup(scenario, key)]
        if scenario == "dial_entered":
            number = case_number(self.input)
            self.steps.append(
                ScenarioRan(
                    scenario, self.input, f"dials {number or 'nothing'}", where=self._where()
                )
            )
            if not number:
                return self._end("hangup", "no number entered")
            return self._route(number, "", now)
        text = text_for(scenario, self.input, None)  # echo_digits
        self.steps.append(ScenarioRan(scenario, self.input, text, where=self._where()))
        self.phase = Phase.PROMPT
        return [Play("say", text)]

    def _await_input(self) -> list[Action]:
        assert isinstance(self.node, Menu)
        if not self.node.handlers:
            return self._end("hangup", "menu without handlers")
        self.phase = Phase.WAITING
        timeout = self.node.timeout
        seconds = timeout.timeout if timeout and timeout.timeout else DEFAULT_MENU_TIMEOUT
        self.token += 1
        return [StartTimer(seconds, self.token)]

    def _enter_queue(self, queue: Queue, waited: float = 0.0) -> list[Action]:
        self.node, self.input, self.collected = queue, "", ""
        self.phase = Phase.QUEUED
        self.ends = f"queue {queue.number}"
        actions: list[Action] = [EnterQueue(queue.number)]
        timeout = next((h for h in queue.handlers if h.kind == "timeout"), None)
        self.token += 1
        if timeout is not None and timeout.timeout:
            actions.append(StartTimer(max(0.0, timeout.timeout - waited), self.token))
        return actions

    def _end(self, ends: str, reason: str, actions: list[Action] | None = None) -> list[Action]:
        self.phase = Phase.ENDED
        self.ends = ends
        self.steps.append(Ended(ends, reason))
        if ends == "hangup":
            return [*(actions or []), Hangup(reason)]
        return actions or []
