"""Benchmark `astpbx check` against `check-jsonschema` on a large generated configuration.

Generates a valid, seeded config (10,000 phones, 2,000 menus, 500 queues, 2,000 rules in
20 YAML files), makes sure `astpbx check --strict` and check-jsonschema find nothing in it,
then times both as subprocesses (interpreter start-up included, as a user sees it):
`astpbx check DIR` (schema + semantic rules, merged) and `check-jsonschema --schemafile
astpbx.schema.json FILE...` (schema only, file by file). Prints best and median wall time,
peak RSS per run, and the median ratio. Exits 0 unless the config is not clean.

Run:  .venv/bin/python bench/check_large.py [--runs 5] [--seed 1] [--out DIR | --keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PHONES, MENUS, QUEUES, RULES = 10_000, 2_000, 500, 2_000
PHONE_FILES, MENU_FILES, QUEUE_FILES, RULE_FILES = 10, 5, 2, 2  # + system.yaml = 20 files
FANOUT = 3  # menu i leads to menus 3i+1..3i+3 (keys 1-3): every menu reachable from 0
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPANS = ("09:00-13:00", "14:00-18:00", "22:00-06:00", "08:30-17:30", "18:00-09:00",
         "00:00-08:00", "12:00-12:45", "23:30-00:30")  # fmt: skip
TOPICS = ("приёма документов", "консультации", "статуса дела", "записи на приём",
          "оплаты пошлины", "жалоб и предложений", "справок", "выдачи документов")  # fmt: skip
PLAYLISTS = ("position-and-hint", "hold-music")


# Numbers of phone i, menu i, queue i: 6 and 5 digits, far from the trunk's 11+.
phone, menu, queue = "3{:05d}".format, "5{:04d}".format, "7{:04d}".format


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def secret(rng: random.Random, var: str) -> str:
    word = "".join(rng.choices(string.ascii_letters + string.digits, k=14))
    return q(f"${{{var}:-{word}}}") if rng.random() < 0.5 else q(word)


def system_yaml(rng: random.Random) -> str:
    # Block style: `check` rejects the spec's flow style `{url: http://…:8088}` (see report).
    return f"""system:
  timezone: Europe/Moscow
  ari:
    url: http://127.0.0.1:8088
    username: astpbx
    password: {secret(rng, "ARI_PASSWORD")}
  database: sqlite:////var/lib/astpbx/astpbx.db
  http:
    listen: 127.0.0.1:8080
  tts: {{engine: festival, voice: ru}}
  api: {{username: mfc, password: {secret(rng, "API_PASSWORD")}}}
trunks:
  - name: rt
    match: '\\+?\\d{{11,}}'
    inbound: "{menu(0)}"
    external: true
    host: sip.rt.example.net
    username: "0001"
    password: {secret(rng, "RT_PASSWORD")}
playlists:
  - id: {PLAYLISTS[0]}
    title: Номер в очереди и подсказка
    items:
      - scenario: queue_position
      - say: Чтобы заказать обратный звонок, нажмите единицу.
  - id: {PLAYLISTS[1]}
    order: random
    items:
      - say: Пожалуйста, оставайтесь на линии.
      - scenario: greet_by_name
"""


def phone_item(rng: random.Random, i: int) -> str:
    return (
        f'  - number: "{phone(i)}"\n    password: {secret(rng, f"SIP_{phone(i)}")}\n'
        f"    name: Оператор {i}, окно {rng.randint(1, 60)}\n    type: simple\n"
    )


def menu_handlers(rng: random.Random, i: int) -> list[tuple[str, str]]:
    """(handler, what the prompt says of it) pairs: 3-5 handlers, the last a timeout."""
    children = [c for c in range(FANOUT * i + 1, FANOUT * i + FANOUT + 1) if c < MENUS]
    found = [
        (f'key: "{k}", goto: "{menu(c)}"', f"Для {rng.choice(TOPICS)} нажмите {k}.")
        for k, c in enumerate(children, 1)
    ]
    extras = [
        (f'key: "0", goto: "{menu((i - 1) // FANOUT if i else 0)}"', "Для возврата нажмите 0."),
        (f'key: "9", goto: "{queue(rng.randrange(QUEUES))}"', "Оператор: нажмите 9."),
        (
            f"digits: '\\*3[0-9]{{5}}#', goto: \"{phone(rng.randrange(PHONES))}\"",
            "Или наберите звёздочку, добавочный номер и решётку.",
        ),
        ('key: "#"', "Чтобы завершить звонок, нажмите решётку."),
    ]
    rng.shuffle(extras)
    found += extras[: max(0, rng.randint(2, 4) - len(found))]
    timeout = f'timeout: {rng.choice((10, 15, 20, 30))}, goto: "{queue(rng.randrange(QUEUES))}"'
    return [*found, (timeout, "Или оставайтесь на линии.")]


def menu_item(rng: random.Random, i: int) -> str:
    handlers = menu_handlers(rng, i)
    say = " ".join([f"Вы в разделе {rng.choice(TOPICS)}.", *(why for _, why in handlers)])
    lines = [f'  - number: "{menu(i)}"', f"    name: Меню {i}", f"    say: {q(say)}"]
    lines += ["    entry: true"] if i % 97 == 0 else []
    lines += ["    on:"] + [f"      - {{{h}}}" for h, _ in handlers]
    return "\n".join(lines) + "\n"


def queue_item(rng: random.Random, i: int) -> str:
    members = ", ".join(q(phone(m)) for m in rng.sample(range(PHONES), rng.randint(5, 20)))
    wait = rng.choice((300, 600, 900))
    return (
        f'  - number: "{queue(i)}"\n    name: Очередь {i}\n    members: [{members}]\n'
        f"    ring_at_once: {rng.randint(1, 3)}\n    ring_timeout: {rng.choice((5, 10, 20))}\n"
        f"    playlist: {rng.choice(PLAYLISTS)}\n"
        f"    leave_when_empty: {str(rng.random() < 0.2).lower()}\n"
        f"    sticky: {str(rng.random() < 0.3).lower()}\n    on:\n"
        f'      - {{key: "1", goto: "{menu(rng.randrange(MENUS))}"}}\n'
        f'      - {{timeout: {wait}, goto: "{menu(rng.randrange(MENUS))}"}}\n'
    )


def rule_numbers(rng: random.Random) -> Iterator[tuple[str, str]]:
    """(number, goto) pairs: rules only on odd menus/queues, gotos only to numbers without
    rules (even menus/queues, phones), so no chain of rules can loop."""
    sources = [menu(i) for i in range(1, MENUS, 2)] + [queue(i) for i in range(1, QUEUES, 2)]
    kinds = ((menu, MENUS, 2), (menu, MENUS, 2), (queue, QUEUES, 2), (queue, QUEUES, 2))
    for k in range(RULES):
        kind, count, step = rng.choice((*kinds, (phone, PHONES, 1)))
        yield sources[k % len(sources)], kind(rng.randrange(0, count, step))


def rule_item(rng: random.Random, number: str, goto: str) -> str:
    lines = [f'  - number: "{number}"']
    if rng.random() < 0.3:
        callers = (q(f"+7918{rng.randrange(10**7):07d}") for _ in range(rng.randint(1, 3)))
        lines.append(f"    callers: [{', '.join(callers)}]")
    if rng.random() < 0.2:
        lines.append(f"    caller_patterns: ['\\+79{rng.randint(10, 99)}\\d{{7}}']")
    if rng.random() < 0.7:
        days = sorted(rng.sample(range(7), rng.randint(1, 5)))
        lines.append(f"    days: [{', '.join(DAYS[d] for d in days)}]")
    if rng.random() < 0.6:
        spans = rng.sample(SPANS, rng.randint(1, 2))
        lines.append(f"    hours: [{', '.join(q(s) for s in spans)}]")
    lines.append(f'    goto: "{goto}"')
    return "\n".join(lines) + "\n"


def write_section(out: Path, stem: str, section: str, items: list[str], files: int) -> None:
    per_file = -(-len(items) // files)
    for n in range(files):
        chunk = items[n * per_file : (n + 1) * per_file]
        (out / f"{stem}-{n:02d}.yaml").write_text(f"{section}:\n" + "".join(chunk), "utf-8")


def generate(out: Path, seed: int) -> None:
    rng = random.Random(seed)
    (out / "system.yaml").write_text(system_yaml(rng), "utf-8")
    write_section(out, "phones", "phones", [phone_item(rng, i) for i in range(PHONES)], PHONE_FILES)
    write_section(out, "menus", "menus", [menu_item(rng, i) for i in range(MENUS)], MENU_FILES)
    write_section(out, "queues", "queues", [queue_item(rng, i) for i in range(QUEUES)], QUEUE_FILES)
    rules = [rule_item(rng, n, g) for n, g in rule_numbers(rng)]
    write_section(out, "rules", "rules", rules, RULE_FILES)


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def must_be_clean(cmd: list[str], expect: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0 or expect not in output:
        sys.exit(f"NOT CLEAN (exit {done.returncode}): {' '.join(cmd[:3])} ...\n{output}")


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mib: float


def timed(cmd: list[str]) -> Run:
    """Wall time and peak RSS (wait4 rusage, Linux KiB) of one run of cmd."""
    with tempfile.TemporaryFile() as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sink.seek(0)
            sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{sink.read().decode()}")
    return Run(elapsed, usage.ru_maxrss / 1024)


def report(label: str, runs: list[Run]) -> float:
    times = [r.seconds for r in runs]
    median = statistics.median(times)
    peak = max(r.rss_mib for r in runs)
    print(f"{label:<18} best {min(times):.2f} s  median {median:.2f} s  peak RSS {peak:.0f} MiB")
    print("  runs: " + ", ".join(f"{r.seconds:.2f} s/{r.rss_mib:.0f} MiB" for r in runs))
    return median


def describe(config: Path) -> str:
    files = sorted(config.glob("*.yaml"))
    lines = sum(f.read_text("utf-8").count("\n") for f in files)
    kib = sum(f.stat().st_size for f in files) / 1024
    return (
        f"config: {PHONES} phones, {MENUS} menus, {QUEUES} queues, {RULES} rules in "
        f"{len(files)} files ({lines} lines, {kib:.0f} KiB) at {config}"
    )


def bench(config: Path, runs: int) -> None:
    astpbx, cjs = tool("astpbx"), tool("check-jsonschema")
    schema = config.parent / "astpbx.schema.json"
    subprocess.run([astpbx, "schema", "-o", str(schema)], check=True)
    files = [str(f) for f in sorted(config.glob("*.yaml"))]
    ours = [astpbx, "check", str(config)]
    theirs = [cjs, "--schemafile", str(schema), *files]
    must_be_clean([astpbx, "check", "--strict", str(config)], "0 errors, 0 warnings")
    must_be_clean(theirs, "ok -- validation done")
    print(describe(config))
    pairs = [(timed(ours), timed(theirs)) for _ in range(runs)]  # alternate: fair to drift
    mine = report("astpbx check", [a for a, _ in pairs])
    other = report("check-jsonschema", [b for _, b in pairs])
    under = "yes" if mine < 3.0 else "no"
    print(f"ratio (astpbx / check-jsonschema, median): {mine / other:.2f}", end="")
    print(f"  — target < 1.0; astpbx under 3 s: {under}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="generate into DIR (kept) instead of a temp dir"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="astpbx-bench-")) if args.out is None else None
    config = args.out.resolve() if root is None else root / "config"
    if any(config.glob("*.y*ml")):
        parser.error(f"{config} already holds YAML files; give an empty or new directory")
    try:
        config.mkdir(parents=True, exist_ok=True)
        generate(config, args.seed)
        bench(config, args.runs)
    finally:
        if root is not None and not args.keep:
            shutil.rmtree(root)
        elif root is not None:
            print(f"kept {root}")


if __name__ == "__main__":
    main()
