"""The page of ``mobilenetv2 serve`` in a real browser: Debian's headless Chromium driven by Playwright, the real
ImageNet MobileNetV2 behind it; a photo picked through the file input comes back as "macaw", a bad file as an error."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from mobilenetv2.cli import main

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

pytest.importorskip("uvicorn")

CHROMIUM = "chromium"  # Debian's package; Playwright's own browser download is not used
TIMEOUT_MS = 30_000


def find_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing and we are root; otherwise the test skips."""
    found = shutil.which(CHROMIUM)
    if found:
        return found
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("no chromium on PATH (and not root with apt-get to install Debian's chromium package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run("apt-get update -q && apt-get install -y -q chromium", shell=True, env=env,
                          capture_output=True, text=True, timeout=1200)
    found = shutil.which(CHROMIUM)
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"could not install chromium with apt-get (exit {done.returncode}): {last}")
    return found


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium under Playwright, for the whole module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its browser download is not needed)")
    executable = find_chromium()
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(shared_data, tmp_path_factory):
    """``mobilenetv2 serve`` on a free loopback port with the real ImageNet MobileNetV2 (converted from TFLite)."""
    tflite = shared_data / "tflite"
    checkpoint = tmp_path_factory.mktemp("browser") / "imagenet.safetensors"
    assert main(["convert", str(tflite / "mobilenet_v2_1.0_224_quant.tflite"), str(checkpoint),
                 "--labels", str(tflite / "imagenet_labels.txt")]) == 0
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mobilenetv2", "serve", str(checkpoint), "--port", str(port),
                                "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "2"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}): {process.stdout.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server was not ready within 120 s"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture
def page(browser, server):
    """A fresh page at / with the model card loaded."""
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server + "/")
        expect(page.locator("#model-line")).to_contain_text("classification")
        yield page
        assert not errors, errors  # no uncaught exception in app.js
    finally:
        context.close()


def top_label(page) -> str:
    first = page.locator("#labels li .label").first
    first.wait_for()
    return first.inner_text()


def test_a_picked_photo_is_classified(page, shared_data, tmp_path):
    from playwright.sync_api import expect

    assert page.locator("#card-table tr").count() >= 5  # task, model, backend, classes, input
    expect(page.locator("#card-table")).to_contain_text("1001: background, tench")  # ImageNet and a background class
    expect(page.locator("#card-table")).to_contain_text("224 px")
    page.set_input_files("#file", str(shared_data / "tflite" / "parrot.jpg"))
    assert top_label(page).startswith("macaw"), page.locator("#labels").inner_text()
    expect(page.locator("#labels li")).to_have_count(5)
    expect(page.locator("#status")).to_contain_text(" ms")
    expect(page.locator("#status")).not_to_have_class("error")
    # class names are set as text: no markup inside the label
    assert "<" not in page.evaluate("document.querySelector('#labels li .label').innerHTML")
    assert page.evaluate("document.querySelector('#canvas').width") > 0  # the photo is drawn
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0 and shot.read_bytes().startswith(b"\x89PNG")


def test_a_bad_upload_shows_an_error_then_a_good_one_still_works(page, shared_data, tmp_path):
    from playwright.sync_api import expect

    bad = tmp_path / "not-a-photo.jpg"
    bad.write_text("this is text, not a JPEG\n")
    page.set_input_files("#file", str(bad))
    status = page.locator("#status")
    expect(status).to_have_class("error")
    expect(status).to_contain_text("error 400")
    expect(page.locator("#labels li")).to_have_count(0)
    page.set_input_files("#file", str(shared_data / "tflite" / "parrot.jpg"))
    assert top_label(page).startswith("macaw")
    expect(status).not_to_have_class("error")
    expect(status).to_contain_text(" ms")
