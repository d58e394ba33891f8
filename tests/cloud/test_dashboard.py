"""The dashboard in real headless Chromium (Debian's), fed by a real ``veil edge`` run."""

import shutil
import subprocess
import time

import httpx
import pytest

from tests.cloud.conftest import veil_command, veil_env


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("Debian's chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1200,900"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never tries to download one.
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def test_dashboard_shows_frames_and_counts_from_a_real_edge_run(server, tokens, clip, onnx_obfuscator, browser):
    frames = 6
    env = {**veil_env(), "VEIL_TOKEN": tokens[1]["dash"]}  # the token via the environment, not argv
    run = subprocess.run(veil_command("edge", "--source", clip, "--server", server.url, "--camera", "dash",
                                      "--obfuscator", onnx_obfuscator, "--max-frames", frames, "--threads", 1),
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"sent {frames} obfuscated frames" in run.stderr
    latest = httpx.get(f"{server.url}/v1/cameras/dash/latest").json()
    assert latest["frames"] == frames

    browser.get(server.url + "/")
    script = """
        const card = document.querySelector('.camera[data-camera="dash"]');
        if (!card) return null;
        const img = card.querySelector('img');
        const line = card.querySelector('.chart polyline');
        return {people: card.dataset.people, frames: card.dataset.frames,
                label: card.querySelector('.people').textContent,
                imgWidth: img.complete ? img.naturalWidth : 0, imgHeight: img.complete ? img.naturalHeight : 0,
                boxes: card.querySelectorAll('.boxes rect').length,
                points: line ? Number(line.dataset.count) : 0,
                resources: performance.getEntriesByType('resource').map(e => e.name)};
    """
    state = None
    for _ in range(100):  # the page polls every second; wait (bounded) until it has drawn the camera
        state = browser.execute_script(script)
        if state and state["imgWidth"] and state["points"] == frames:
            break
        time.sleep(0.2)
    assert state is not None, "the dashboard shows no card for camera 'dash'"
    assert (state["imgWidth"], state["imgHeight"]) == (320, 240)  # the latest obfuscated frame is displayed
    assert int(state["people"]) == latest["people"] and state["label"] == f"{latest['people']} people"
    assert int(state["frames"]) == frames
    assert state["boxes"] == len(latest["detections"])
    assert state["points"] == frames  # one chart point per frame the edge sent
    # Everything the page loaded came from the service itself: nothing from the internet.
    assert state["resources"] and all(name.startswith(server.url) for name in state["resources"])
    assert "camera(s), updated" in browser.find_element("id", "status").text  # its last poll succeeded
