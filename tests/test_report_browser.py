"""The report as a reader sees it: headless Chromium opens it from disk, offline.

Debian's `chromium` (installed by .ci/run) is driven by playwright's Python package through
`executable_path`; no browser is downloaded. The screenshot is kept in reports/browser-test/.
"""

import os
import shutil
from pathlib import Path

import pytest

from harness.cli import main as cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "browser-test"


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}: .ci/run must install Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_report_opens_offline_with_every_image_and_the_expected_rows(tmp_path, chromium):
    run, gap = tmp_path / "run", tmp_path / "gap"
    assert cli(["run", "--tasks", "names", "--samplers", "factorized", "--with-ceiling", "--tokens-per-step", "1,2",
                "--limit", "200", "--out", str(run), "--no-report", "--quiet"]) == 0
    # The PC shipped for the names model, over its own window.
    assert cli(["gap", "--task", "names", "--limit", "100", "--out", str(gap), "--quiet"]) == 0
    assert cli(["report", str(run), str(gap), "--out", str(tmp_path / "report")]) == 0

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems, outside = [], []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(("file:", "data:")) else None)
    page.goto((tmp_path / "report" / "index.html").as_uri())
    page.wait_for_load_state("load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    assert problems == [] and outside == []
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert len(images) == 4 and all(loaded for _, loaded in images), images  # accuracy, gap, compute, loss curve
    rows = page.eval_on_selector_all(
        "#accuracy-table tbody tr:not(.group)",
        "trs => trs.map(tr => [...tr.cells].slice(0, 2).map(td => td.textContent.trim()))")
    assert rows == [["factorized", "1"], ["factorized", "2"], ["sequential", "2"]]
    assert "remasking low_confidence" in page.locator("p.shared").first.inner_text()  # shared by every row
    page.close()
