"""The whole story in a real headless Chromium against `openline serve`: the owner sets up the dashboard;
a fan texts from the phone simulator and appears as pending; confirms, fills the sign-up form and
appears as a member; the owner replies from the inbox and the fan sees it; the owner broadcasts to a
segment and the fan receives the personalised text. Screenshots of each step are kept in
test-artifacts/dashboard-story/."""

from __future__ import annotations

import re
from pathlib import Path

from .test_join_browser import SANDBOX, _wait_for
from .test_simulator_browser import browser_page  # noqa: F401  (the fixture)

FAN = "+393471234567"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "dashboard-story"


def test_from_first_text_to_a_personalised_broadcast(browser_page: tuple[object, str]) -> None:  # noqa: F811
    from playwright.sync_api import Page, expect

    owner, base = browser_page
    assert isinstance(owner, Page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    # The first start asks for the owner's account.
    owner.goto(f"{base}/inbox")
    expect(owner).to_have_url(re.compile(r"/setup$"))
    owner.get_by_label("Your name").fill("Ashton")
    owner.get_by_label("E-mail address").fill("owner@example.org")
    owner.get_by_label("Password", exact=True).fill("a long owner passphrase")
    owner.get_by_label("Password again").fill("a long owner passphrase")
    shot(owner, "01-setup")
    owner.get_by_role("button", name=re.compile("Create")).click()
    expect(owner).to_have_url(re.compile(r"/inbox$"))

    # A fan texts the number from the simulator (another tab) and gets the autotext once.
    assert owner.context.browser is not None
    fan = owner.context.browser.new_page()  # the fan: a browser of their own, no owner cookie
    fan.goto(f"{base}/simulator")
    fan.fill("#phone", FAN)
    fan.dispatch_event("#phone", "change")

    def text(body: str, answers: int) -> None:
        fan.fill("#body", body)
        fan.click("button[type=submit]")
        expect(fan.locator("#thread .bubble.outbound")).to_have_count(answers, timeout=15_000)

    text("Ciao! Sono una tua grande fan", 1)
    shot(fan, "02-fan-autotext")

    # The owner sees them among the pending, apart from members.
    owner.goto(f"{base}/inbox?view=pending")
    expect(owner.locator("#conversations")).to_contain_text(FAN)
    shot(owner, "03-pending")

    # The fan confirms and fills the sign-up form from the link.
    text("Sì", 2)
    join = _wait_for(base, r"https?://\S+/join/[\w.-]+")
    form = owner.context.browser.new_page()
    form.goto(join)
    form.get_by_label("Nome").fill("Giulia")
    form.get_by_label("Città").fill("Milano")
    form.get_by_role("button", name="Invia").click()
    expect(form.get_by_role("heading", level=1)).to_have_text("Grazie!")
    form.close()

    # Now a member.
    owner.goto(f"{base}/members")
    expect(owner.locator("main")).to_contain_text("Giulia")
    shot(owner, "04-members")

    # The owner keeps a saved reply, then answers from the inbox with it; the fan's phone shows it.
    owner.goto(f"{base}/settings#replies")
    replies = owner.locator("#replies")
    replies.get_by_label("Name").fill("grazie")
    replies.get_by_label("Text").fill("Grazie Giulia, a presto!")
    replies.get_by_role("button", name="Save reply").click()
    owner.goto(f"{base}/inbox")
    owner.get_by_role("link", name="Giulia").click()
    owner.get_by_label("Saved reply").select_option("grazie")
    expect(owner.get_by_label(re.compile("^Text to Giulia"))).to_have_value("Grazie Giulia, a presto!")
    expect(owner.locator("#reply-count")).to_contain_text("1 segment")
    shot(owner, "05-reply")
    owner.get_by_role("button", name="Send reply").click()
    expect(fan.locator("#thread .bubble.outbound").last).to_contain_text("Grazie Giulia, a presto!", timeout=15_000)
    shot(fan, "06-fan-reply")

    # A broadcast to the segment, estimated, confirmed, received personalised.
    owner.goto(f"{base}/broadcasts/new")
    owner.get_by_label("Name").fill("milano")
    owner.get_by_label("Text", exact=True).fill('Ciao {{ first_name | default("amico") }}! Concerto a Milano sabato.')
    owner.get_by_label("Filter").fill("city = Milano")
    owner.get_by_role("button", name="Save draft").click()
    expect(owner.get_by_role("heading", level=1)).to_have_text("milano")
    expect(owner.locator("main")).to_contain_text("1 recipient,")
    shot(owner, "07-estimate")
    owner.get_by_role("button", name="Send…").click()
    expect(owner.get_by_role("heading", name=re.compile("Send to 1 person now"))).to_be_visible()
    owner.get_by_role("button", name="Yes, send it now").click()
    expect(fan.locator("#thread .bubble.outbound").last).to_contain_text(
        "Ciao Giulia! Concerto a Milano sabato.", timeout=20_000
    )
    shot(fan, "08-fan-broadcast")
    assert _wait_for(base, r"Ciao Giulia! Concerto a Milano sabato\.") and SANDBOX
