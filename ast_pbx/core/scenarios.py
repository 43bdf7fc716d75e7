"""Menu scenarios: what each asks the directory port and what the caller then hears.

The core never touches a database: a scenario emits a `Lookup`, the shell answers it
through a `DirectoryPort` (SQL in production, a fixture offline) and the core turns
the answer into text for TTS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The answer of a lookup: a status or a name (str), a list of cases, whether a callback
# request was stored (bool), or nothing found (None).
Answer = str | list[str] | bool | None

# Scenarios answered by the directory port; echo_digits and dial_entered need no lookup.
LOOKUPS = frozenset({"case_status", "cases_in_work", "callback_request", "caller_name"})


class DirectoryPort(Protocol):
    def lookup(self, scenario: str, key: str) -> Answer:
        """case_status(case), cases_in_work(phone), caller_name(phone) or
        callback_request(phone) — the last stores a request and says whether it did."""
        ...


def case_number(digits: str) -> str:
    """The case number in the digits entered: '#' ends input, '*' separates parts."""
    return digits.rstrip("#")


def spoken_digits(digits: str) -> str:
    return " ".join({"*": "звёздочка", "#": "решётка"}.get(d, d) for d in digits)


def _case_status(key: str, answer: Answer) -> str:
    if isinstance(answer, str) and answer:
        return f"Статус дела {spoken_digits(key)}: {answer}."
    return f"Дело {spoken_digits(key)} не найдено."


def _cases_in_work(key: str, answer: Answer) -> str:
    if isinstance(answer, list) and answer:
        return f"Дел в работе: {len(answer)}. " + ". ".join(answer) + "."
    return "Дел в работе по вашему номеру не найдено."


def _callback_request(key: str, answer: Answer) -> str:
    if answer is True:
        return "Заявка на обратный звонок принята. Оператор перезвонит вам."
    return "Не удалось принять заявку на обратный звонок. Пожалуйста, позвоните позже."


def _echo_digits(key: str, answer: Answer) -> str:
    return f"Вы ввели: {spoken_digits(key)}." if key else "Вы ничего не ввели."


_TEXTS = {
    "case_status": _case_status,
    "cases_in_work": _cases_in_work,
    "callback_request": _callback_request,
    "echo_digits": _echo_digits,
}


def text_for(scenario: str, key: str, answer: Answer) -> str:
    """What the caller hears once the lookup (if any) has answered."""
    speak = _TEXTS.get(scenario)
    return speak(key, answer) if speak else ""


@dataclass
class FixtureDirectory:
    """A directory port answering from fixed data: for `astpbx test` and `simulate`.

    Callback requests are recorded in `callbacks` instead of a database.
    """

    cases: Mapping[str, str] = field(default_factory=dict)
    cases_by_phone: Mapping[str, Sequence[str]] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    callbacks: list[str] = field(default_factory=list)

    def lookup(self, scenario: str, key: str) -> Answer:
        if scenario == "case_status":
            return self.cases.get(key)
        if scenario == "cases_in_work":
            return list(self.cases_by_phone.get(key, ()))
        if scenario == "caller_name":
            return self.names.get(key)
        if scenario == "callback_request":
            self.callbacks.append(key)
            return bool(key)
        return None
