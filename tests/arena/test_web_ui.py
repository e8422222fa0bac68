"""The web UI in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from arena_client import battle
from arena_processes import REPO, start_service, stop
from arena_support import models_file
from playwright.sync_api import expect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The committed screenshots (tests/arena/screenshots) show the UI in the docs; a run rewrites
# them only when asked (ARENASTACK_SCREENSHOTS=tests/arena/screenshots), so a test run leaves
# the tree clean. Otherwise they go under .state/ for a look after the run.
SCREENSHOTS = Path(os.environ.get("ARENASTACK_SCREENSHOTS") or REPO / ".state" / "screenshots")
JUDGE_TOKEN = "web-judge-token"
HOSTILE_NAME = '<img src=x onerror="window.pwned = 3">'


@pytest.fixture(scope="module")
def web(tmp_path_factory, model_endpoint):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run hack/apt.sh (package chromium)")
    tmp = tmp_path_factory.mktemp("web")
    service = start_service(
        f"sqlite:///{tmp / 'web.db'}",
        models_file=models_file(tmp, model_endpoint, ["alpha", "beta"]),
        judge_token=JUDGE_TOKEN,
    )
    yield service
    stop(service.proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # Root in a container: Chromium's sandbox needs user namespaces it may not have.
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def run_battle(page, base_url: str, prompt: str) -> None:
    page.goto(base_url + "/")
    page.fill("#prompt", prompt)
    page.click("#send")
    page.wait_for_selector("#votes:not([hidden])", timeout=30_000)


def test_full_battle_vote_and_leaderboard(web, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(web.url) else external.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    run_battle(page, web.url, "Which is larger, 3 or 5?")
    for side in ("a", "b"):
        body = page.inner_text(f'.body[data-side="{side}"]')
        assert "heard 1 messages: Which is larger, 3 or 5?" in body
        # Markdown rendered: the heading and bold become elements.
        assert page.locator(f'.body[data-side="{side}"] h4').count() == 1
        assert page.locator(f'.body[data-side="{side}"] strong').count() == 1
    assert page.inner_text("#answer-a h2") == "Model A"
    page.screenshot(path=str(SCREENSHOTS / "battle-before-vote.png"), full_page=True)
    page.click("button[data-winner='model_a']")
    page.wait_for_selector("#reveal:not([hidden])")
    reveal = page.inner_text("#reveal")
    assert "Alpha" in reveal and "Beta" in reveal
    winner = page.inner_text("#answer-a h2").removeprefix("Model A: ").lower()
    page.screenshot(path=str(SCREENSHOTS / "battle-after-vote.png"), full_page=True)

    # The board refreshes in the background after the vote: reload until it shows it.
    # (Locator waits, not wait_for_function: the page's CSP forbids eval, which that uses.)
    deadline = time.monotonic() + 90
    while True:
        page.goto(web.url + "/leaderboard")
        page.wait_for_selector("#summary:not(:empty)")
        if page.locator("#board tbody tr").count() >= 2 or time.monotonic() > deadline:
            break
        page.wait_for_timeout(500)
    # One vote each is too few to rank (ARENA_MIN_BATTLES): both models are preliminary.
    expect(page.locator("#preliminary tbody tr")).to_have_count(2)
    rows = page.locator("#preliminary tbody tr").all_inner_texts()
    assert any(winner in r.lower() for r in rows) and len(rows) == 2
    assert page.locator("#board tbody tr").count() == 0
    assert page.locator("#chart circle").count() == 0 and page.locator("#heatmap td").count() == 0
    assert "1 votes" in page.inner_text("#summary")
    assert page.locator("#agreement").is_hidden()
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"), full_page=True)
    # One vote is too few for the style-controlled fit: the switch shows an empty board.
    page.check("#style-control")
    expect(page.locator("#preliminary tbody tr")).to_have_count(0)
    expect(page.locator("#board tbody tr")).to_have_count(0)
    assert not external, f"page loaded assets from elsewhere: {external}"
    assert not errors, errors


def test_hostile_answers_are_inert(web, browser, model_endpoint):
    with web.admin() as admin:
        for name in ("html-one", "html-two"):
            assert (
                admin.put(
                    f"/api/admin/models/{name}", json={"endpoint": model_endpoint}
                ).status_code
                == 200
            )
        for name in ("alpha", "beta"):
            assert admin.delete(f"/api/admin/models/{name}").status_code == 200
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    run_battle(page, web.url, "show me html")
    for side in ("a", "b"):
        box = page.locator(f'.body[data-side="{side}"]')
        text = box.inner_text()
        assert "<script>window.pwned = 1</script>" in text
        assert '<img src=x onerror="window.pwned = 2">' in text
        assert box.locator("script, img, iframe").count() == 0
        assert box.locator("strong").first.inner_text() == "Bold"
        assert box.locator("li").count() == 2
        assert box.locator("a").count() == 0  # the javascript: link stays text
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert not dialogs
    page.screenshot(path=str(SCREENSHOTS / "hostile-answer.png"), full_page=True)


def judged_battle(n: int, a: str, b: str, winner: str, arena_battle_id: str | None = None) -> dict:
    return {
        "evaluation": "web/ui",
        "run": 1,
        "battleId": f"web-judged-{n}",
        "arenaBattleId": arena_battle_id,
        "source": "judge:web-judge",
        "modelA": a,
        "modelB": b,
        "turns": [{"prompt": f"question {n}", "answerA": "<b>a</b>", "answerB": "b"}],
        "judgments": [{"order": "ab", "verdict": "A", "reason": "<i>why</i>", "raw": "[[A]]"}],
        "games": [{"winner": winner, "weight": 1}],
        "consistent": None,
    }


def test_judge_board_with_agreement_and_names_as_text(web, browser):
    with web.client() as c:
        arena_id, _ = battle(c, "judged by people and the judge")
        vote = c.post(f"/api/battles/{arena_id}/vote", json={"winner": "model_a"}).json()
    people_a, people_b = vote["model_a"]["name"], vote["model_b"]["name"]
    judged = [judged_battle(0, people_a, people_b, "model_a", arena_id)]  # agrees with people
    # The judge's board: a model named with markup beats "plain" in 8 of 12 battles.
    judged += [
        judged_battle(n, HOSTILE_NAME, "plain", "model_a" if n % 3 else "model_b")
        for n in range(1, 13)
    ]
    headers = {"authorization": f"Bearer {JUDGE_TOKEN}"}
    with httpx.Client(base_url=web.url, headers=headers, timeout=30) as c:
        for body in judged:
            r = c.post("/api/judgments", json=body)
            assert r.status_code == 200 and r.json() == {"stored": True}, r.text
        deadline = time.monotonic() + 90
        while {"source": "judge:web-judge", "votes": 13} not in c.get("/api/sources").json()[
            "sources"
        ]:
            assert time.monotonic() < deadline, "the judge's board never refreshed"
            time.sleep(0.3)

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(web.url + "/leaderboard")
    page.wait_for_selector("#summary:not(:empty)")
    options = page.locator("#source option").all_inner_texts()
    assert options[0].startswith("human") and options[-1].startswith("all")
    assert "judge:web-judge (13 votes)" in options
    page.select_option("#source", "judge:web-judge")
    expect(page.locator("#agreement")).to_be_visible()
    agreement = page.inner_text("#agreement")
    assert "1 battles compared" in agreement and "100.0% with ties" in agreement
    assert "100.0% without ties" in agreement
    ranked = page.locator("#board tbody tr")
    expect(ranked).to_have_count(2)
    assert HOSTILE_NAME in ranked.first.inner_text()  # shown as text, first with 8 of 12
    assert page.locator("#board img, #chart img, #heatmap img, #preliminary img").count() == 0
    # The people's models met the judge once: preliminary, apart from the ranked ones.
    expect(page.locator("#preliminary tbody tr")).to_have_count(2)
    assert {people_a, people_b} <= set(
        " ".join(page.locator("#preliminary tbody tr").all_inner_texts()).split()
    )
    assert HOSTILE_NAME in page.inner_text("#heatmap")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.pwned") == "undefined" and not dialogs
    page.screenshot(path=str(SCREENSHOTS / "leaderboard-judge.png"), full_page=True)
    # Back to the people's board: no judge games on it, and no agreement line.
    page.select_option("#source", "human")
    expect(page.locator("#agreement")).to_be_hidden()
    assert HOSTILE_NAME not in page.inner_text("main")
    assert not errors, errors
