"""The live dashboard in a real browser (headless Chromium) against a real planned server under
load: every model and slice is shown, with numbers that agree with /v2/status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from planned import start_planned, two_model_repository  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHAPES = {"mlp": [1, 64], "cnn": [1, 3, 32, 32]}
MAX_LOAD_REQUESTS = 20_000  # per model: the load threads stop here at the latest


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt when missing and running as root (CI)."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, capture_output=True, timeout=600)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the dashboard test needs Chromium: install it (apt-get install -y chromium) or run as root so the "
                    "test can; looked for `chromium` on PATH and /usr/bin/chromium")
    return found


def _repository(root: Path) -> Path:
    return two_model_repository(root, mlp_slo_ms=100, cnn_slo_ms=200)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("dash")
    srv, _ = start_planned(root, _repository(root))
    yield srv
    srv.stop()


def _load(srv: RunningServer, model: str, stop: threading.Event) -> None:
    shape = SHAPES[model]
    body = json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                                   "data": np.zeros(shape).ravel().tolist()}]}).encode()
    for _ in range(MAX_LOAD_REQUESTS):
        if stop.wait(0.01):
            return
        srv.request(f"/v2/models/{model}/infer", body, timeout_s=10)


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MODELPLEX_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page_slices(page: Any) -> dict[str, dict[str, Any]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.slice')].map(s => [s.dataset.slice, {
        cores: s.dataset.cores, pid: s.dataset.pid,
        models: [...s.querySelectorAll('.chip')].map(c => c.dataset.model).sort()}]))""")


def _page_models(page: Any) -> dict[str, dict[str, str]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.model')].map(m => [m.dataset.model,
        Object.fromEntries([...m.querySelectorAll('[data-field]')].map(f => [f.dataset.field, f.dataset.value]))]))""")


def test_dashboard_shows_live_models_and_slices(planned: RunningServer, chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(planned, m, stop), daemon=True) for m in SHAPES]
    for t in threads:
        t.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://{planned.http_url}/dashboard")
            page.wait_for_function(
                """names => names.every(n => {
                    const f = document.querySelector(`.model[data-model="${n}"] [data-field="arrival_rps"]`);
                    return f && Number(f.dataset.value) > 0; })""", arg=list(SHAPES), timeout=30_000)
            page.wait_for_function("() => state.t.length >= 6", timeout=30_000)  # a few seconds of lines to see
            status = planned.get_json("/v2/status")
            slices, models = _page_slices(page), _page_models(page)
            assert "plan: elastic" in page.inner_text("#plan-state")
            assert "initial plan" in page.inner_text("#decisions")
            assert page.is_hidden("#error")
            page.wait_for_function("() => document.getElementById('plan-picture').naturalWidth > 0", timeout=30_000)
            shot = _artifacts(tmp_path) / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")
            browser.close()
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert set(slices) == {s["slice_id"] for s in status["slices"]}
    for s in status["slices"]:
        shown = slices[s["slice_id"]]
        assert shown["cores"] == ",".join(map(str, s["cpus"]))
        assert shown["pid"] == str(s["worker"]["pid"])
        assert shown["models"] == sorted(s["models"])
    assert set(models) == set(status["models"]) == set(SHAPES)
    for name, m in status["models"].items():
        assert models[name]["slices"] == ",".join(m["slices"])
        assert float(models[name]["arrival_rps"]) > 0 and float(models[name]["goodput_rps"]) > 0
        assert 0 < float(models[name]["p50_ms"]) <= float(models[name]["p99_ms"])


def test_dashboard_without_a_plan_says_so(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    srv = start_server(_repository(tmp_path), tmp_path / "state", ["--cpus", "0-1"])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://{srv.http_url}/dashboard")
            page.wait_for_function("() => document.getElementById('plan-state').textContent.includes('no plan')", timeout=30_000)
            assert page.is_hidden("#error") and page.is_hidden("#picture-section")
            assert page.locator(".model").count() == len(SHAPES)
            browser.close()
        doc = srv.get_json("/v2/dashboard/data")
        assert doc["plan"] is None and set(doc["models"]) == set(SHAPES)
        assert sorted(s["slice_id"] for d in doc["devices"] for s in d["slices"]) == sorted(
            s["slice_id"] for s in srv.get_json("/v2/status")["slices"])
        status, body = srv.request("/v2/dashboard/plan.png")
        assert status == 404 and b"no plan" in body
        status, page = srv.request("/dashboard")
        assert status == 200 and b"dashboard.js" in page
        assert srv.request("/v2/dashboard/data?after=x")[0] == 400
    finally:
        srv.stop()
