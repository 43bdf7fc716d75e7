"""The operator page in a real browser (Debian's Chromium driven by Playwright) against
`astpbx run` on the Asterisk sandbox: real calls reach the page live.

Phones are Local channels scripted in the dialplan: 2002 (the operator's) rings 2 s,
answers and talks 8 s; 2009 (the manager's) answers and listens. Callers come from
`tests.live_engine.Callers`; the caller +79001112233 is Петрова Анна Сергеевна in the
demo directory (examples/mfc/directory). Screenshots of the main pages are written to
$ASTPBX_ARTIFACTS (default: artifacts/ in the checkout).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from ast_pbx.engine.engine import Engine
from ast_pbx.storage.callbacks import CallbackStore
from ast_pbx.storage.db import open_database
from ast_pbx.storage.interactions import InteractionStore
from ast_pbx.web.auth import hash_password
from tests.conftest import EXAMPLE, ROOT
from tests.live_engine import Callers, LiveEngine, eventually
from tests.sandbox_fixture import SandboxInfo

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ASTPBX_ARTIFACTS", ROOT / "artifacts"))
PASSWORDS = {"oper": "oper-password-1", "boss": "boss-password-1", "root": "root-password-1"}
CITIZEN = "+79001112233"  # Петрова Анна Сергеевна in the demo directory

DIALPLAN = """\
[astpbx-test-phones]
exten => 2002,1,Wait(2)
 same => n,Answer()
 same => n,Wait(8)
 same => n,Hangup()
exten => 2009,1,Answer()
 same => n,Wait(20)
 same => n,Hangup()
exten => _X!,1,Answer()
 same => n,Wait(5)
 same => n,Hangup()
"""


def _config(sandbox: SandboxInfo, base: Path) -> Path:
    config = base / "config"
    config.mkdir()
    directory = base / "mfc-demo.db"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "directory" / "create.py"), str(directory)], check=True
    )
    queries = (EXAMPLE / "directory.yaml").read_text(encoding="utf-8")
    queries = queries.replace(
        '"${MFC_DB_URL:-sqlite:////var/lib/astpbx/mfc-demo.db}"', f'"sqlite:///{directory}"'
    )
    (config / "directory.yaml").write_text(queries, encoding="utf-8")
    system = sandbox.system_yaml(
        base, 'phone_dial: "Local/{number}@astpbx-test-phones", presence: always'
    )
    (config / "system.yaml").write_text(system, encoding="utf-8")
    users = "\n".join(
        f'  - {{login: {login}, role: {role}, name: "{name}",\n'
        f'     password_hash: "{hash_password(PASSWORDS[login])}"}}'
        for login, role, name in (
            ("oper", "operator", "Оператор Олег"),
            ("boss", "manager", "Менеджер Мария"),
            ("root", "admin", "Админ Антон"),
        )
    )
    (config / "pbx.yaml").write_text(
        f"""\
phones:
  - {{number: "2002", password: "secret-for-tests"}}
  - {{number: "2009", password: "secret-for-tests"}}
users:
{users}
queues:
  - {{number: "93100", members: ["2002"], ring_timeout: 15}}
menus:
  - {{number: "96200", scenario: callback_request}}
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def live(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    config = _config(sandbox, tmp_path_factory.mktemp("browser"))
    engine = LiveEngine(config)
    with sandbox.applied(config, DIALPLAN):
        engine.start()
        try:
            yield engine
        finally:
            engine.stop()


def engine_of(live: LiveEngine) -> Engine:
    assert live.engine is not None
    return live.engine


@pytest.fixture(scope="module")
def browser(live: LiveEngine) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def callers(live: LiveEngine, sandbox: SandboxInfo) -> Iterator[Callers]:
    with live.callers(sandbox) as callers:
        yield callers


def base_url(live: LiveEngine) -> str:
    return f"http://{engine_of(live).current.config.system.http_listen}"


def signed_in(browser: Any, live: LiveEngine, login: str) -> Any:
    """A page of a new browser context, signed in as `login`."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    page = context.new_page()
    page.goto(base_url(live) + "/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORDS[login])
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def bind_phone(live: LiveEngine, page: Any, callers: Callers, phone: str) -> None:
    """Bind `phone` to the page's user the way an operator does: the code, then dial it."""
    page.click("#bind")
    code = page.locator("#bind-code")
    code.wait_for(state="visible")
    digits = re.sub(r"\D", "", code.inner_text())[1:]  # "1*12345" → "12345"
    channel = live.run(callers.dial(f"1*{digits}", caller=phone))
    live.run(callers.ended(channel))
    page.wait_for_selector(f"#phone-number:text('{phone}')")


def test_each_role_signs_in_to_its_page(browser: Any, live: LiveEngine) -> None:
    for login, path in (
        ("oper", "/operator"),
        ("boss", "/manager/calls"),
        ("root", "/manager/calls"),
    ):
        page = signed_in(browser, live, login)
        assert page.url.endswith(path), (login, page.url)
        assert page.locator("#topbar").inner_text().count("Выйти") == 1
        screenshot(page, f"home-{login}")
        page.context.close()
    wrong = browser.new_page()
    wrong.goto(base_url(live) + "/login")
    wrong.fill("input[name=login]", "oper")
    wrong.fill("input[name=password]", "not-the-password")
    wrong.click("button[type=submit]")
    assert wrong.locator("#login-message").is_visible()
    wrong.close()


def test_a_queued_call_pops_up_with_the_applicant_and_starts_a_history_entry(
    browser: Any, live: LiveEngine, callers: Callers
) -> None:
    page = signed_in(browser, live, "oper")
    bind_phone(live, page, callers, "2002")
    call = live.run(callers.dial("93100", caller=CITIZEN))
    # 2002 rings for 2 s: the caller's number and the applicant come up at once.
    page.wait_for_selector(
        f"#op-phone[value='{CITIZEN}'], #op-call-state:has-text('{CITIZEN}')", timeout=5000
    )
    page.wait_for_selector("#op-applicants:has-text('Петрова Анна Сергеевна')", timeout=5000)
    # The operator picks up: the history entry for the number appears.
    page.wait_for_selector("#op-history .history-entry", timeout=10000)
    name = page.locator("#op-history .history-entry input[name=caller_name]").first
    assert name.input_value() == "Петрова Анна Сергеевна"
    screenshot(page, "operator-call")
    live.run(callers.ended(call, 20))
    with open_database(engine_of(live).current.config.system.database_url) as database:
        [entry] = InteractionStore(database).for_phone(CITIZEN)
        assert (entry.operator, entry.direction, entry.call_id) == ("oper", "in", call)
    page.context.close()


def test_a_callback_request_shows_up_and_call_rings_the_operator(
    browser: Any, live: LiveEngine, callers: Callers
) -> None:
    engine = engine_of(live)
    page = signed_in(browser, live, "oper")
    if page.locator("#phone-bound").is_hidden():
        bind_phone(live, page, callers, "2002")
    page.goto(base_url(live) + "/callbacks")
    request = live.run(callers.dial("96200", caller="+79181234567"))
    live.run(callers.ended(request, 30))
    row = page.locator("tr[data-callback]:has-text('+79181234567')")
    row.wait_for(timeout=10000)  # live, without reloading
    screenshot(page, "callbacks")
    row.locator("text=Позвонить").click()
    page.locator("#cb-dialog").wait_for(state="visible")
    page.locator("#cb-dialog button:has-text('Позвонить')").click()
    with open_database(engine.current.config.system.database_url) as database:
        store = CallbackStore(database)
        called = eventually(
            lambda: next(
                (c for c in store.list() if c.caller == "+79181234567" and c.called_at), None
            ),
            20,
        )
    assert called.operator == "oper"
    page.context.close()


def test_a_manager_sees_the_active_call_and_listens_in(
    browser: Any, live: LiveEngine, callers: Callers
) -> None:
    engine = engine_of(live)
    page = signed_in(browser, live, "boss")
    bind_phone(live, page, callers, "2009")
    page.goto(base_url(live) + "/manager/calls")
    call = live.run(callers.dial("93100", caller=CITIZEN))
    row = page.locator(f"tr[data-call='{call}']")
    row.wait_for(timeout=10000)
    page.wait_for_selector(f"tr[data-call='{call}']:has-text('Разговор')", timeout=15000)
    screenshot(page, "manager-calls")
    row.locator("button:has-text('Подключиться')").click()
    eventually(lambda: any(x.call == call for x in engine.monitor.listening.values()), 10)
    live.run(callers.ended(call, 30))
    page.context.close()


def test_a_chat_message_reaches_the_other_user_live(browser: Any, live: LiveEngine) -> None:
    boss = signed_in(browser, live, "boss")
    oper = signed_in(browser, live, "oper")
    boss.goto(base_url(live) + "/chat")
    boss.click("button.chat-contact[data-login='oper']")
    boss.fill("#chat-text", "Зайдите ко мне после звонка")
    boss.click("#chat-form button[type=submit]")
    oper.wait_for_selector("#chat-badge:not([hidden])", timeout=10000)
    oper.goto(base_url(live) + "/chat")
    oper.click("button.chat-contact[data-login='boss']")
    oper.wait_for_selector("#chat-messages:has-text('Зайдите ко мне после звонка')", timeout=5000)
    screenshot(oper, "chat")
    boss.context.close()
    oper.context.close()


def test_reports_download_and_open(browser: Any, live: LiveEngine, tmp_path: Path) -> None:
    page = signed_in(browser, live, "boss")
    page.goto(base_url(live) + "/manager/reports")
    screenshot(page, "reports")
    for form in page.locator("form.report").all():
        with page.expect_download() as download:
            form.locator("button[type=submit]").click()
        target = tmp_path / download.value.suggested_filename
        download.value.save_as(target)
        assert load_workbook(target).active.max_row >= 2
    page.goto(base_url(live) + "/manager/history")
    screenshot(page, "history")
    page.context.close()


def test_main_pages_load_quickly(browser: Any, live: LiveEngine) -> None:
    """Recorded, not a pass/fail speed limit: the figures go to the artifacts."""
    page = signed_in(browser, live, "root")
    lines = []
    for path in (
        "/operator",
        "/callbacks",
        "/manager/calls",
        "/manager/history",
        "/manager/reports",
        "/chat",
    ):
        started = time.perf_counter()
        page.goto(base_url(live) + path, wait_until="load")
        lines.append(f"{path}\t{(time.perf_counter() - started) * 1000:.0f} ms")
        assert page.locator("#content").is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-load.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    page.context.close()
