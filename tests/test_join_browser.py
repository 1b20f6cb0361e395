"""The sign-up form in a real headless Chromium: an Italian fan texts, says YES, opens the link from the
confirmation, makes a mistake, sees it next to the field with everything typed kept, fixes it, and
lands on the thanks page; the confirmation text with the contact card follows."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from .test_simulator_browser import browser_page  # noqa: F401  (the fixture)

FAN = "+393471234567"
SANDBOX = "+12025550100"


def _thread(base: str) -> list[dict[str, object]]:
    response = httpx.get(f"{base}/simulator/thread", params={"phone": FAN, "to": SANDBOX}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()
    return result


def _wait_for(base: str, pattern: str, within: float = 15) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for message in _thread(base):
            found = re.search(pattern, str(message["body"]))
            if message["direction"] == "outbound" and found:
                return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no text matching {pattern!r}: {_thread(base)}")


# WCAG 2.2 contrast, as the browser renders the page: 4.5:1 for text (1.4.3), 3:1 for the edges of
# fields and buttons (1.4.11). A text's background is the first opaque one among its ancestors.
_LOW_CONTRAST = r"""() => {
  const channel = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const rgba = (css) => css.match(/[\d.]+/g).map(Number);
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const ratio = (a, b) => {
    const [x, y] = [luminance(a), luminance(b)];
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none" || !el.getClientRects().length) continue;
    const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const what = `${el.tagName.toLowerCase()} ${JSON.stringify(el.textContent.trim().slice(0, 40))}`;
    if (text && ratio(rgba(style.color), behind(el)) < 4.5) low.push(`${what}: text`);
    const edged = el.matches("input, select, button");
    if (edged && ratio(rgba(style.borderTopColor), behind(el.parentElement)) < 3) low.push(`${what}: edge`);
  }
  return low;
}"""


def test_an_italian_fan_fills_in_the_form_fixes_a_mistake_and_is_thanked(
    browser_page: tuple[object, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import Page, expect

    page, base = browser_page
    assert isinstance(page, Page)
    for body in ("Ciao Ashton! Sono una tua grande fan", "Sì"):
        httpx.post(f"{base}/simulator/send", json={"from": FAN, "to": SANDBOX, "body": body}, timeout=5)
        time.sleep(0.3)  # answered in order
    link = _wait_for(base, r"https?://\S+/join/[\w.-]+")

    page.goto(link)
    expect(page.locator("html")).to_have_attribute("lang", "it")
    expect(page.get_by_role("heading", level=1)).to_have_text("Racconta qualcosa di te a Ashton")
    page.get_by_label("Nome").fill("Giulia")
    page.get_by_label("Città").fill("Milano")
    page.get_by_label("Data di nascita").fill("2999-01-01")  # a mistake: a birthday in the future
    # The keyboard goes through the fields in reading order.
    page.get_by_label("Nome").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Città")).to_be_focused()
    page.screenshot(path=str(tmp_path / "join-filled.png"), full_page=True)
    page.get_by_role("button", name="Invia").click()

    birthday = page.get_by_label("Data di nascita")
    expect(page.locator("#f-birthday-error")).to_have_text("Errore: Questa data è nel futuro.")
    expect(birthday).to_have_attribute("aria-invalid", "true")
    expect(birthday).to_have_accessible_description(re.compile("Questa data è nel futuro"))
    expect(page.get_by_role("alert")).to_contain_text("Data di nascita: Questa data è nel futuro.")
    # Nothing typed was lost.
    expect(page.get_by_label("Nome")).to_have_value("Giulia")
    expect(page.get_by_label("Città")).to_have_value("Milano")
    expect(birthday).to_have_value("2999-01-01")
    page.screenshot(path=str(tmp_path / "join-mistake.png"), full_page=True)
    assert page.evaluate(_LOW_CONTRAST) == []  # hints, errors, the disclosure and the fields included

    birthday.fill("1990-05-31")
    page.get_by_role("button", name="Invia").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Grazie!")
    expect(page.get_by_role("link", name="Aggiungi Ashton ai tuoi contatti")).to_have_attribute(
        "href", "/card/default.vcf"
    )
    page.screenshot(path=str(tmp_path / "join-thanks.png"), full_page=True)
    assert page.evaluate(_LOW_CONTRAST) == []

    card = _wait_for(base, r"https?://\S+/card/default\.vcf")
    assert "BEGIN:VCARD" in httpx.get(card, timeout=5).text
    # The link is used up now.
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Questo link è già stato usato")
