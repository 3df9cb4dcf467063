"""The HTML verify report opened in a real browser: headless Chromium, no network.

CI installs Debian's ``chromium`` (see .ci/run); elsewhere ``apt-get install chromium``
(README, "Running the tests"). Without a browser the test is skipped and says so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.test_verify_html import SAMPLES, broken_iris_onnx, iris_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for found in map(shutil.which, BROWSERS) if found), None)

pytestmark = pytest.mark.skipif(
    BROWSER is None, reason=f"no headless browser found (looked for {', '.join(BROWSERS)}); install one with `apt-get install chromium`"
)


def open_in_browser(page: Path, screenshot: Path, profile: Path, width: int = 1000, height: int = 1400) -> str:
    """Render ``page`` in headless Chromium: write a screenshot, return the DOM as the browser built it."""
    assert BROWSER is not None
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # the page must need no network: any lookup would fail
        f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={screenshot}", "--dump-dom",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    image = matplotlib.image.imread(path)  # PNG: floats in [0, 1], RGB or RGBA
    return np.asarray(image)[..., :3]


def _share_of_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: float = 0.06) -> float:
    return float(np.all(np.abs(pixels - np.array(rgb) / 255) < tolerance, axis=-1).mean())


@pytest.mark.parametrize("broken", [False, True], ids=["passing", "failing"])
def test_report_renders_in_headless_chromium(tmp_path, broken):
    report = iris_report(broken_iris_onnx(tmp_path, 1) if broken else SAMPLES / "iris_mlp.onnx")
    page = tmp_path / "report.html"
    report.to_html(page)
    dom = open_in_browser(page, tmp_path / "shot.png", tmp_path / "profile")
    verdict = "FAILED" if broken else "PASSED"
    assert f"nnconvert verify: {verdict}" in dom
    assert 'class="diagram"' in dom and 'class="hist"' in dom
    pixels = _pixels(tmp_path / "shot.png")
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 900
    # not blank: much is drawn, and the verdict box has its colour (CSS applied)
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.03
    assert pixels.std() > 0.05
    box = pixels[:200]
    assert _share_of_colour(box, (253, 236, 234) if broken else (233, 247, 236)) > 0.05
    if broken:  # the faulty layer's box is drawn in the failure colour
        assert _share_of_colour(pixels, (255, 211, 208)) > 0.002
