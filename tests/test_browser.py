"""The report of a real smoke run, opened in a real headless browser as a person would open it.

Needs Chromium (Debian's package; `make test` installs it where it can) and playwright (the test extra);
skipped, with the reason, where either is absent.
"""

import os
import shutil

import pytest

VIEWPORT = {"width": 1280, "height": 900}


def _chromium() -> str | None:
    return os.environ.get("FXBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page_of_smoke_report(smoke_run):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium, or set FXBENCH_CHROMIUM=/path/to/chrome)")
    _, out, proc, _ = smoke_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    problems = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
        page.goto((out / "report.html").as_uri(), wait_until="load")
        facts = page.evaluate(
            """() => {
                const imgs = [...document.images];
                const width = document.documentElement.clientWidth;
                const wide = [...document.body.querySelectorAll('*')].filter(e => {
                    if (e.closest('.scroll') && !e.classList.contains('scroll')) return false;  // scrolls in its box
                    return e.getBoundingClientRect().right > width + 1;
                }).map(e => e.tagName + (e.className ? '.' + e.className : ''));
                const answer = document.querySelector('h2');
                const firstTable = answer && [...document.querySelectorAll('table')][0];
                return {
                    images: imgs.length,
                    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt.slice(0, 60)),
                    noAlt: imgs.filter(i => !i.alt).length,
                    external: imgs.filter(i => !i.src.startsWith('data:')).length,
                    scrollWidth: document.documentElement.scrollWidth, width, wide,
                    firstHeading: answer ? answer.textContent : null,
                    firstTableTop: firstTable ? firstTable.getBoundingClientRect().top : null,
                    banner: (document.querySelector('.banner') || {}).textContent || null,
                    bannerTop: document.querySelector('.banner') ? document.querySelector('.banner').getBoundingClientRect().top : null,
                    toc: [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href')),
                    ids: [...document.querySelectorAll('h2[id]')].map(h => '#' + h.id),
                    text: document.body.innerText,
                };
            }"""
        )
        browser.close()
    return facts, problems


def test_every_image_loads_and_nothing_overflows_or_errs(page_of_smoke_report):
    facts, problems = page_of_smoke_report
    assert facts["images"] >= 5, facts["images"]
    assert facts["broken"] == [], facts["broken"]
    assert facts["noAlt"] == 0 and facts["external"] == 0, "every figure is embedded and has a text alternative"
    assert facts["scrollWidth"] <= facts["width"], (facts["scrollWidth"], facts["wide"][:10])
    assert facts["wide"] == [], facts["wide"][:10]
    assert problems == [], problems


def test_the_first_screen_answers_and_warns(page_of_smoke_report):
    facts, _ = page_of_smoke_report
    assert facts["firstHeading"] == "Which encoder?"
    assert facts["banner"] and facts["banner"].startswith("Reduced run") and facts["bannerTop"] < VIEWPORT["height"] / 2
    assert facts["firstTableTop"] is not None and facts["firstTableTop"] < VIEWPORT["height"], (
        "the pick table is on screen one"
    )
    assert facts["toc"] == facts["ids"], "the table of contents links every section"
    assert "nan" not in facts["text"].split(), "no nan reaches a person"
