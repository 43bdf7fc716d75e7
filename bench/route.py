"""Benchmark the routing decisions per second of the pure call-flow core (no I/O).

Generates the large config of bench/check_large.py (10,000 phones, 2,000 menus, 500 queues,
2,000 rules in 20 files), loads it once, then times on one core, in a plain loop:
  - `routing.resolve()` over a seeded workload of called numbers (~40% with rules, menus,
    queues and phones without, trunk and unknown numbers), callers (some named by the rules)
    and local times spread over a week, against the target of >= 100,000 decisions/s;
  - a full IVR decision through `Call`: `start()` on a menu number, then one `dtmf()`
    (each event handled is one decision; building the Call is counted too);
  - `resolve()` on a fixed set of numbers with 0-3 rules each while 0 to 200,000 rules sit
    on other numbers: rules are indexed by number, so the rate should stay flat.
Best and median of --repeat runs; the GC is collected and frozen before timing. Figures
move by 10-20% when other processes share this machine; read the best as the capacity.

Run:  .venv/bin/python bench/route.py [--calls 200000] [--repeat 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_large  # the generator of the large config, reused

from ast_pbx.config.configuration import Config
from ast_pbx.config.loader import load
from ast_pbx.config.model import Menu, Phone, Queue, Rule
from ast_pbx.core.call import Call
from ast_pbx.core.routing import resolve

TARGET = 100_000  # decisions/s on one core
SCALES = (0, 2_000, 20_000, 200_000)  # rules on numbers the scaling workload never calls
WEEK_START = datetime(2025, 3, 3)  # a Monday
Event = tuple[str, str | None, datetime]  # called number, caller, local time


def load_large(seed: int) -> Config:
    root = Path(tempfile.mkdtemp(prefix="astpbx-route-"))
    try:
        start = time.perf_counter()
        check_large.generate(root, seed)
        generated = time.perf_counter() - start
        start = time.perf_counter()
        loaded = load(str(root), {})
        took = time.perf_counter() - start
    finally:
        shutil.rmtree(root)
    if loaded.errors:
        sys.exit("the generated config has errors:\n" + "\n".join(map(str, loaded.errors[:10])))
    config = loaded.config
    print(f"config: {len(config.phones):,} phones, {len(config.menus):,} menus, "
          f"{len(config.queues)} queues, {len(config.rules):,} rules on {len(config.rules_for):,} "
          f"numbers, {len(loaded.files)} files; generated in {generated:.2f} s, "
          f"loaded in {took:.2f} s")  # fmt: skip
    return config


def caller_for(rng: random.Random, rules: Sequence[Rule]) -> str | None:
    """Often a caller one of the number's rules names or matches, else anyone or nobody."""
    roll = rng.random()
    if rules and roll < 0.35:
        rule = rng.choice(rules)
        if rule.callers:
            return rng.choice(sorted(rule.callers))
        for regex in rule.caller_patterns or ():  # the generator's '\+79NN\d{7}'
            shape = re.fullmatch(r"\\\+(\d+)\\d\{(\d+)\}", regex.source)
            if shape:
                return f"+{shape[1]}{rng.randrange(10 ** int(shape[2])):0{shape[2]}d}"
    if roll < 0.60:
        return f"+79{rng.randrange(10**9):09d}"
    if roll < 0.80:
        return f"+7495{rng.randrange(10**7):07d}"
    return check_large.phone(rng.randrange(check_large.PHONES)) if roll < 0.9 else None


def local_time(rng: random.Random, tz: ZoneInfo) -> datetime:
    return WEEK_START.replace(tzinfo=tz) + timedelta(seconds=rng.randrange(7 * 86_400))


def workload(config: Config, tz: ZoneInfo, calls: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    ruled = sorted(config.rules_for)
    free = [n for n in config.targets if n not in config.rules_for]
    kinds = {
        kind: [n for n in free if isinstance(config.targets[n], kind)]
        for kind in (Menu, Queue, Phone)
    }
    pools: list[tuple[float, Callable[[], str]]] = [
        (0.40, lambda: rng.choice(ruled)),
        (0.60, lambda: rng.choice(kinds[Menu])),
        (0.70, lambda: rng.choice(kinds[Queue])),
        (0.85, lambda: rng.choice(kinds[Phone])),
        (0.95, lambda: f"+7{rng.randrange(10**10):010d}"),  # leaves via the trunk
        (1.00, lambda: f"4{rng.randrange(10**4):04d}"),  # nobody has it
    ]
    events: list[Event] = []
    for _ in range(calls):
        roll = rng.random()
        number = next(pick for bound, pick in pools if roll < bound)()
        caller = caller_for(rng, config.rules_for.get(number, ()))
        events.append((number, caller, local_time(rng, tz)))
    return events


def describe(config: Config, events: list[Event]) -> None:
    outcomes: dict[str, int] = {}
    for number, caller, local in events:
        result = resolve(config, number, caller, local)
        rule = "rule applied" if len(result.visits) > 1 or result.hangup == "rule" else ""
        if number in config.rules_for:
            key = rule or "rules, none applied"
        else:
            key = "trunk" if result.trunk else result.hangup or "no rules"
        outcomes[key] = outcomes.get(key, 0) + 1
    mix = ", ".join(f"{k} {v / len(events):.0%}" for k, v in sorted(outcomes.items()))
    print(f"workload: {len(events):,} calls over a week: {mix}")


def settle() -> None:
    """Collect once and move everything alive out of the GC's way, as a server would."""
    gc.collect()
    gc.freeze()


def run_resolve(config: Config, events: list[Event]) -> float:
    start = time.perf_counter()
    for number, caller, local in events:
        resolve(config, number, caller, local)
    return time.perf_counter() - start


def run_calls(config: Config, sample: list[tuple[Event, str]], tz: ZoneInfo) -> float:
    start = time.perf_counter()
    for (number, caller, now), key in sample:
        call = Call(config, called=number, caller=caller, tz=tz)
        call.start(now)
        call.dtmf(key, now)
    return time.perf_counter() - start


def rate(label: str, decisions: int, times: list[float], target: int | None = None) -> float:
    best, median = decisions / min(times), decisions / statistics.median(times)
    line = f"{label}: {best:,.0f} decisions/s ({1e9 / best:,.0f} ns each), "
    line += f"median {median:,.0f} ({1e9 / median:,.0f} ns)"
    if target is not None:
        line += f", target ≥ {target:,}: {'yes' if best >= target else 'no'}"
    print(line)
    return best


def ivr_sample(config: Config, tz: ZoneInfo, calls: int, seed: int) -> list[tuple[Event, str]]:
    """Menu numbers (with or without rules) and a key: mostly one the menu takes."""
    rng = random.Random(seed + 1)
    sample: list[tuple[Event, str]] = []
    for _ in range(calls):
        menu = rng.choice(config.menus)
        keys = [h.key for h in menu.handlers if h.key is not None]
        key = rng.choice(keys) if keys and rng.random() < 0.8 else rng.choice("0123456789*#")
        caller = caller_for(rng, config.rules_for.get(menu.number, ()))
        sample.append(((menu.number, caller, local_time(rng, tz)), key))
    return sample


def scaling(config: Config, tz: ZoneInfo, calls: int, repeat: int, seed: int) -> None:
    """Same targets, 1,000 called numbers with 0-3 rules each, more rules elsewhere."""
    rng = random.Random(seed + 2)
    called = rng.sample(sorted(config.targets), 1_000)
    base = [
        replace(rng.choice(config.rules), number=n)
        for n in called
        for _ in range(rng.randint(0, 3))
    ]
    ruled, configs = len({r.number for r in base}), []
    for extra in SCALES:  # 2 rules on each other number, "6" + 7 digits: no target has it
        others = [replace(rng.choice(config.rules), number=f"6{i // 2:07d}") for i in range(extra)]
        scaled = replace(config, rules=(*base, *others))
        assert len(scaled.rules_for) == ruled + extra // 2  # none of them on a called number
        configs.append(scaled)
    events = [(n, caller_for(rng, configs[0].rules_for.get(n, ())), local_time(rng, tz))
              for n in rng.choices(called, k=calls)]  # fmt: skip
    settle()
    times: list[list[float]] = [[] for _ in SCALES]
    for _ in range(repeat):  # interleaved, so drift in the machine's load hits all alike
        for runs, scaled in zip(times, configs, strict=True):
            runs.append(run_resolve(scaled, events))
    print(f"scaling: {len(base):,} rules on 1,000 called numbers, {calls:,} calls; "
          "more rules on other numbers:")  # fmt: skip
    rates = [
        rate(f"  {extra:>7,} other rules", calls, runs)
        for extra, runs in zip(SCALES, times, strict=True)
    ]
    spread = max(abs(r / rates[0] - 1) for r in rates)
    print(f"  flat within ±25% of the 0-rule rate: {'yes' if spread <= 0.25 else 'no'} "
          f"(largest deviation {spread:.0%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="resolve() calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()
    if args.calls < 100 or args.repeat < 1:
        parser.error("--calls must be at least 100 and --repeat at least 1")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(other processes on the machine make the figures noisy)")  # fmt: skip
    config = load_large(args.seed)
    tz = ZoneInfo(config.system.timezone or "UTC")
    events = workload(config, tz, args.calls, args.seed)
    describe(config, events)
    settle()
    times = [run_resolve(config, events) for _ in range(args.repeat)]
    rate("resolve", len(events), times, TARGET)

    sample = ivr_sample(config, tz, args.calls // 10, args.seed)
    settle()
    times = [run_calls(config, sample, tz) for _ in range(args.repeat)]
    rate("Call start + dtmf", 2 * len(sample), times, TARGET)

    scaling(config, tz, args.calls // 4, args.repeat, args.seed)


if __name__ == "__main__":
    main()
