"""The dashboard in real headless Chromium (Debian's), fed by a real ``veil edge`` run: sign-in with a
viewer token, live updates without a reload, the polling fallback, and no CSP violation."""

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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations land in the console
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1200,900"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never tries to download one.
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


CARD = """
    const card = document.querySelector('.camera[data-camera="dash"]');
    if (!card) return null;
    const img = card.querySelector('img');
    const line = card.querySelector('.chart polyline');
    return {people: card.dataset.people, frames: Number(card.dataset.frames),
            label: card.querySelector('.people').textContent, src: img.getAttribute('src') || '',
            imgWidth: img.complete ? img.naturalWidth : 0, imgHeight: img.complete ? img.naturalHeight : 0,
            boxes: card.querySelectorAll('.boxes rect').length,
            points: line ? Number(line.dataset.count) : 0, mode: document.body.dataset.mode,
            cards: document.querySelectorAll('.camera').length,
            status: document.getElementById('status').textContent, marker: window.veilTestMarker || null,
            resources: performance.getEntriesByType('resource').map(e => e.name)};
"""


def wait_for(browser, until, timeout=30.0):
    """Poll the page (bounded) until ``until(state)``; return the last state."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = browser.execute_script(CARD)
        if state and until(state):
            break
        time.sleep(0.2)
    return state


def sign_in(browser, url, token):
    browser.get(url + "/")
    form = browser.find_element("id", "login")
    assert form.is_displayed()  # no token yet: the page asks for one and shows nothing else
    assert browser.find_elements("css selector", ".camera") == []
    browser.find_element("id", "token").send_keys(token)
    form.submit()


def upload(server, token, jpeg):
    r = httpx.post(f"{server.url}/v1/cameras/dash/frames", content=jpeg, timeout=60,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def dash_viewer(tokens):
    """A viewer token granted only camera 'dash'."""
    from veil.cloud.auth import issue_token
    from veil.cloud.state import SharedState

    return issue_token(SharedState(tokens[0]), "viewer", ["dash"])[1]


def test_dashboard_shows_frames_and_counts_from_a_real_edge_run(server, tokens, clip, onnx_obfuscator, browser,
                                                                dash_viewer):
    frames = 6
    env = {**veil_env(), "VEIL_TOKEN": tokens[1]["dash"]}  # the token via the environment, not argv
    run = subprocess.run(veil_command("edge", "--source", clip, "--server", server.url, "--camera", "dash",
                                      "--obfuscator", onnx_obfuscator, "--max-frames", frames, "--threads", 1),
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert f"sent {frames} obfuscated frames" in run.stderr
    latest = httpx.get(f"{server.url}/v1/cameras/dash/latest", timeout=30,
                       headers={"Authorization": f"Bearer {dash_viewer}"}).json()
    assert latest["frames"] == frames

    sign_in(browser, server.url, dash_viewer)
    state = wait_for(browser, lambda s: s["imgWidth"] and s["points"] == frames)
    assert state is not None, "the dashboard shows no card for camera 'dash'"
    assert (state["imgWidth"], state["imgHeight"]) == (320, 240)  # the latest obfuscated frame is displayed
    assert state["src"].startswith("blob:")  # fetched with the Authorization header, shown as a blob
    assert int(state["people"]) == latest["people"] and state["label"] == f"{latest['people']} people"
    assert state["frames"] == frames
    assert state["boxes"] == len(latest["detections"])
    assert state["points"] == frames  # one chart point per frame the edge sent
    assert state["cards"] == 1  # the token reads 'dash' only: no other camera shows
    # Everything the page loaded came from the service itself, and the token is in no URL.
    assert state["resources"] and all(name.startswith(server.url) for name in state["resources"])
    secret = dash_viewer.split(".")[1]
    assert not any(secret in name for name in state["resources"]) and secret not in browser.current_url
    assert "camera(s), updated" in browser.find_element("id", "status").text  # its last update succeeded
    assert not [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]


def test_an_upload_appears_live_without_a_reload(server, tokens, browser, clip, dash_viewer):
    import cv2

    from tests.cloud.conftest import clip_frames

    jpeg = cv2.imencode(".jpg", cv2.cvtColor(clip_frames(clip)[20], cv2.COLOR_RGB2BGR))[1].tobytes()
    if browser.execute_script(CARD) is None:  # run alone: sign in first
        upload(server, tokens[1]["dash"], jpeg)
        sign_in(browser, server.url, dash_viewer)
    state = wait_for(browser, lambda s: s["mode"] == "live" and s["frames"] > 0)
    assert state["mode"] == "live", state  # the event stream is up
    browser.execute_script("window.veilTestMarker = 'same page';")  # a reload would lose it
    before = state["frames"]
    upload(server, tokens[1]["dash"], jpeg)
    state = wait_for(browser, lambda s: s["frames"] == before + 1 and s["points"] == before + 1, timeout=15)
    assert state["frames"] == before + 1 and state["marker"] == "same page" and state["mode"] == "live"
    assert (state["imgWidth"], state["imgHeight"]) == (320, 240)


def test_dashboard_polls_while_the_stream_is_down(server, tokens, browser, clip, dash_viewer):
    """kill -9 the server under the open page: it falls back to polling, then the stream comes back."""
    import cv2

    from tests.cloud.conftest import clip_frames

    jpeg = cv2.imencode(".jpg", cv2.cvtColor(clip_frames(clip)[25], cv2.COLOR_RGB2BGR))[1].tobytes()
    if browser.execute_script(CARD) is None:
        upload(server, tokens[1]["dash"], jpeg)
        sign_in(browser, server.url, dash_viewer)
    assert wait_for(browser, lambda s: s["mode"] == "live")["mode"] == "live"
    server.kill()
    try:
        state = wait_for(browser, lambda s: s["mode"] == "polling" and "cannot reach" in s["status"], timeout=20)
        assert state["mode"] == "polling" and "cannot reach the service" in state["status"]
    finally:
        server.start()
    before = state["frames"]
    upload(server, tokens[1]["dash"], jpeg)
    state = wait_for(browser, lambda s: s["frames"] == before + 1 and s["mode"] == "live", timeout=30)
    assert state["frames"] == before + 1 and state["mode"] == "live"  # caught up, and live again
    assert "Traceback" not in server.log.read_text()


def test_a_camera_token_cannot_sign_in(server, tokens, browser):
    browser.get(server.url + "/")
    browser.execute_script("sessionStorage.clear()")
    sign_in(browser, server.url, tokens[1]["cam1"])
    error = browser.find_element("id", "login-error")
    deadline = time.monotonic() + 15
    while not error.text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "cannot read" in error.text and browser.find_element("id", "login").is_displayed()
