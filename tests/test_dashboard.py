"""The Dask dashboard in a real headless Chromium, during a real run.

Uses Debian's chromium through Playwright (never 'playwright install'). The
status page's plots are Bokeh canvases fed over a websocket, so the task
names are read from Bokeh's data in the page, not from pixels.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.synth import synth_dataset

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
STAGES = {"load", "frame", "cqt", "lcn", "write"}

# Every string in every Bokeh data source of the page.
BOKEH_STRINGS = """() => {
  const out = new Set();
  if (typeof Bokeh === 'undefined') return [];
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      const data = m.data;
      if (!data) continue;
      const cols = data instanceof Map ? Array.from(data.values()) : Object.values(data);
      for (const col of cols) {
        if (!col || typeof col === 'string' || !col[Symbol.iterator]) continue;
        for (const v of col) if (typeof v === 'string') out.add(v);
      }
    }
  }
  return Array.from(out);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory):
    """4 genres x 8 GTZAN-length clips: a run long enough to watch."""
    return synth_dataset(tmp_path_factory.mktemp("dash"), genres=4, clips=8, seed=6)


def test_dashboard_shows_the_pipeline_stages(long_dataset, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("AUDIOPREP_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed but AUDIOPREP_REQUIRE_BROWSER=1 (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(long_dataset), "-o", str(tmp_path / "o"),
                             "--workers", "2", "--dashboard-address", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set = set()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            deadline = time.time() + 120
            while time.time() < deadline:  # the dashboard comes up with the cluster
                try:
                    page.goto(f"http://127.0.0.1:{port}/status", timeout=5000)
                    break
                except Exception:
                    assert proc.poll() is None, proc.stderr.read()
                    time.sleep(0.3)
            page.wait_for_selector("canvas", timeout=60000)
            while time.time() < deadline and proc.poll() is None:
                strings = page.evaluate(BOKEH_STRINGS)
                seen |= {s.split("-")[0] for s in strings if s.split("-")[0] in STAGES}
                if seen == STAGES:
                    break
                time.sleep(0.2)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-status.png"), full_page=True)
            browser.close()
    finally:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert seen == STAGES, f"stages seen on the dashboard: {sorted(seen)}"
    assert (ARTIFACTS / "dashboard-status.png").stat().st_size > 10000


def test_dashboard_binds_to_loopback_by_default():
    """The packaged default keeps the dashboard private."""
    import dask

    import pipeline.config  # noqa: F401  (loads the packaged defaults)

    assert dask.config.get("audioprep.dashboard-address").startswith("127.0.0.1:")
