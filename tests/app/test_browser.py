"""End to end in a real browser: `sketchcolor app` served on a free loopback port, driven through
Playwright with Debian's Chromium (`make test` installs it with apt where it can; no browser is
downloaded). Skipped, with the reason, where Chromium or the app's extra is missing.

Screenshots go to $SKETCHCOLOR_SCREENSHOTS when set (the README's come from here), else to the
test's temporary folder.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytest.importorskip("gradio", reason="the web app's extra is not installed (pip install 'sketchcolor[app]')")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install 'sketchcolor[app]')")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (make test installs it with apt where it can)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The app with the shipped weights; yields its URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "server.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; from sketchcolor.cli import main; sys.exit(main())",
                                 "app", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the app did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _picture(page, selector: str) -> np.ndarray:
    """The picture an image component shows, fetched from the app as the browser did."""
    src = page.get_attribute(f"{selector} img", "src")
    with urllib.request.urlopen(src, timeout=10) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def _wait_message(page, pattern: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.inner_text("#message")
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    pytest.fail(f"no message matching {pattern!r}; the page says {page.inner_text('#message')!r}")


def _upload(page, selector: str, path: Path) -> None:
    """Put a file into a file component, clearing the one it holds first (a full component shows
    the file and a Clear button instead of its file input)."""
    clear = page.locator(f"{selector} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.set_input_files(f"{selector} input[type=file]", str(path))


def _click_at(page, selector: str, x: float, y: float) -> None:
    """Click an image component at (x, y) in [0, 1] of the picture it shows."""
    img = page.locator(f"{selector} img")
    box = img.bounding_box()
    img.click(position={"x": x * box["width"], "y": y * box["height"]})


def test_colorize_inspect_hint_and_a_corrupt_upload(server: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("SKETCHCOLOR_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    # a drawing of the test split at a size of its own (not the model's square), and another drawing's colors
    drawing = Image.open(ROOT / "examples/sketches/horse.png").convert("L").resize((360, 300), Image.LANCZOS)
    drawing.save(tmp_path / "horse_360x300.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(server)
            page.wait_for_selector("#colorize", timeout=60_000)
            _upload(page, "#sketch-file", tmp_path / "horse_360x300.png")
            _wait_message(page, "drawing loaded")
            _upload(page, "#reference-file", ROOT / "examples/references/giraffe.png")
            _wait_message(page, "reference loaded")
            page.click("#colorize")
            _wait_message(page, r"colorized in \d+ ms")
            result = _picture(page, "#result")
            assert result.shape == (300, 360, 3)  # the drawing's own size
            hsv = np.asarray(Image.fromarray(result).convert("HSV"))
            assert np.mean((hsv[..., 1] > 80) & (hsv[..., 2] > 60)) > 0.05  # painted, not gray
            page.screenshot(path=str(shots / "app_result.png"))

            # where did the body's color come from: a heat map over the reference
            _click_at(page, "#result", 0.45, 0.45)
            _wait_message(page, "came from")
            heat = _picture(page, "#heat")
            assert heat.shape[:2] == (256, 256)  # the reference's size
            page.locator("#heat").scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "app_heatmap.png"))

            # a hint: the body takes its color from the giraffe's dark hooves
            page.locator("#result").screenshot(path=str(shots / "app_hint_before.png"))
            page.get_by_label("hint", exact=True).check()
            _click_at(page, "#result", 0.45, 0.45)
            _wait_message(page, "now click")
            _click_at(page, "#reference-view", 0.45, 0.85)
            text = _wait_message(page, r"1 fix\(es\) applied")
            hinted = _picture(page, "#result")
            assert hinted.shape == result.shape and np.abs(hinted.astype(int) - result).mean() > 1.0
            page.locator("#result").screenshot(path=str(shots / "app_hint_after.png"))
            (shots / "app_rerender.txt").write_text(text + "\n")

            # undo brings the first result back
            page.click("#undo")
            _wait_message(page, r"colorized in \d+ ms(?!.*fix)")
            assert np.array_equal(_picture(page, "#result"), result)

            # a corrupt upload: one line in the page, and the app goes on
            _upload(page, "#sketch-file", tmp_path / "broken.png")
            message = _wait_message(page, "error:")
            assert "broken.png" in message
            page.screenshot(path=str(shots / "app_bad_upload.png"))
            _upload(page, "#sketch-file", tmp_path / "horse_360x300.png")
            _wait_message(page, "drawing loaded")
            page.click("#colorize")
            _wait_message(page, r"colorized in \d+ ms")
        finally:
            browser.close()
