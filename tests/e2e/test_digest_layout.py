"""The digest fits a phone: rendered by headless Chromium at 390 and 800 CSS pixels, the page
is never wider than the screen (nothing runs off the right edge)."""
import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shot():
    spec = importlib.util.spec_from_file_location("digest_screenshot", REPO / "scripts" / "digest_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run scripts/test, which installs it", pytrace=False)
    return found


@pytest.mark.parametrize("width", [390, 800])
def test_the_digest_is_never_wider_than_the_screen(shot, chromium, tmp_path, width):
    page = shot.write_sample_digest(tmp_path)
    html = page.read_text(encoding="utf-8")
    assert "待人工处理的来信（2 封）" in html and "wang.xiaoming.dianzixinxi2022@qq.com" in html
    scroll_width, visible = shot.measure(chromium, page, width, tmp_path)
    assert visible == width
    assert scroll_width <= visible, f"the digest is {scroll_width} px wide on a {width} px screen"


def test_the_measure_catches_a_page_that_runs_off_a_phone(shot, chromium, tmp_path):
    page = tmp_path / "wide.html"
    page.write_text('<html><body><table width="720" style="width:720px"><tr><td>汇总</td></tr></table>'
                    "</body></html>", encoding="utf-8")
    scroll_width, visible = shot.measure(chromium, page, 390, tmp_path)
    assert scroll_width > visible == 390
