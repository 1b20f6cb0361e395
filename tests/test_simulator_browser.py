"""The newcomer's first minutes, in a real headless Chromium: three people text the sandbox number from
/simulator in English, Italian and Hindi, and each gets the autotext once, confirms, stops and restarts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_cli import free_port, start, stop, wait_healthy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[object, str]]:
    if CHROMIUM is None:
        reason = "the browser test needs Chromium (Debian: apt-get install chromium)"
        if os.environ.get("OPENLINE_TEST_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = start(tmp_path, "serve", "--port", str(port), env={"OPENLINE_COMMUNITY_NAME": "Ashton"})
    try:
        wait_healthy(port, server, within=15)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                ],
            )
            page = browser.new_page()
            yield page, f"http://127.0.0.1:{port}"
            browser.close()
    finally:
        stop(server)


def test_three_people_join_stop_and_restart_in_three_languages(
    browser_page: tuple[object, str], tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page, base = browser_page
    assert isinstance(page, Page)
    page.goto(f"{base}/simulator")
    expect(page.locator("#to option")).to_have_count(1)
    people = [
        ("+12025550143", ["hey Ashton, huge fan of your music", "YES", "STOP", "START"], "autotext"),
        ("+393471234567", ["Ciao Ashton! Sono una tua grande fan", "Sì", "BASTA", "START"], "messaggio automatico"),
        ("+919876543210", ["नमस्ते, मैं आपका बहुत बड़ा प्रशंसक हूँ", "हाँ", "रोकें", "START"], "स्वचालित संदेश"),
    ]
    for phone, texts, autotext_words in people:
        page.fill("#phone", phone)
        page.dispatch_event("#phone", "change")
        expect(page.locator("#thread .bubble")).to_have_count(0)
        for sent, text in enumerate(texts, start=1):
            page.fill("#body", text)
            page.click("button[type=submit]")
            # Each text gets exactly one answer: autotext, confirmation, STOP confirmation, confirmation.
            expect(page.locator("#thread .bubble.outbound")).to_have_count(sent, timeout=10_000)
            expect(page.locator("#thread .bubble.inbound")).to_have_count(sent)
        answers = page.locator("#thread .bubble.outbound").all_inner_texts()
        assert autotext_words in answers[0]
        assert "/join/" in answers[1] and "/join/" in answers[3]
        assert "Ashton" in answers[2]
        # Nothing more arrives later: one autotext, one answer per text.
        page.wait_for_timeout(1200)
        expect(page.locator("#thread .bubble.outbound")).to_have_count(4)
    page.screenshot(path=str(tmp_path / "simulator.png"))
