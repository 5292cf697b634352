"""The Dask dashboard in a real headless Chromium, during a real run.

Uses Debian's chromium through Playwright (never 'playwright install'). The
status page's plots are Bokeh canvases fed over a websocket, so the task
names are read from Bokeh's data in the page, not from pixels.
"""

import os
import re
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
STAGES = {"load", "frame", "cqt", "lcn", "write"}  # timed inside each task (fine performance metrics)

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
    """4 genres x 8 GTZAN-length clips."""
    return synth_dataset(tmp_path_factory.mktemp("dash"), genres=4, clips=8, seed=6)


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"])


def strings_on(page, url: str, want, timeout: float = 60) -> set:
    """The strings of the page's Bokeh data that ``want`` accepts, once some are there (or the time is up)."""
    page.goto(url, timeout=30000)
    page.wait_for_selector("canvas", timeout=30000)
    deadline, seen = time.time() + timeout, set()
    while time.time() < deadline:
        seen = {s for s in page.evaluate(BOKEH_STRINGS) if want(s)}
        if seen:
            break
        time.sleep(0.3)
    return seen


def test_dashboard_shows_the_stages_and_the_clips(long_dataset, tmp_path):
    """A run against a scheduler that outlives it: its dashboard then shows the run's metrics at leisure.

    The fine-performance-metrics page names the stages (load, frame, cqt, lcn,
    write) measured inside the tasks; the task stream names the tasks after
    their clips and end with the run's token (``clips-blues.00000-00007-3f9a2c1d``).
    """
    if not Path(CHROMIUM).exists():
        if os.environ.get("AUDIOPREP_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed but AUDIOPREP_REQUIRE_BROWSER=1 (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from distributed import LocalCluster
    from playwright.sync_api import sync_playwright

    port = free_port()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=f"127.0.0.1:{port}", local_directory=str(tmp_path / "scratch")) as cluster:
        with sync_playwright() as pw:
            browser = launch(pw)
            stream = browser.new_page(viewport={"width": 1400, "height": 900})
            stream.goto(f"http://127.0.0.1:{port}/individual-task-stream", timeout=30000)  # it records from now on
            stream.wait_for_selector("canvas", timeout=30000)
            proc = subprocess.run([sys.executable, "-m", "pipeline", "run", str(long_dataset), "-o",
                                   str(tmp_path / "o"), "--cluster", cluster.scheduler_address, "-q"],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr
            tasks = strings_on(stream, stream.url,
                               lambda s: re.fullmatch(r"clips-[a-z]+\.\d{5}(-\d{5})?-[0-9a-f]{8}", s) is not None)
            ARTIFACTS.mkdir(exist_ok=True)
            stream.screenshot(path=str(ARTIFACTS / "dashboard-task-stream.png"), full_page=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            stages = strings_on(page, f"http://127.0.0.1:{port}/individual-fine-performance-metrics",
                                lambda s: s in STAGES)
            deadline = time.time() + 60
            while stages != STAGES and time.time() < deadline:  # the page refreshes its data every 500 ms
                stages |= {s for s in page.evaluate(BOKEH_STRINGS) if s in STAGES}
                time.sleep(0.3)
            page.screenshot(path=str(ARTIFACTS / "dashboard-fine-metrics.png"), full_page=True)
            browser.close()
    assert stages == STAGES, f"stages seen on the fine-performance-metrics page: {sorted(stages)}"
    assert tasks and {t.split("-")[1].split(".")[0] for t in tasks} <= {"blues", "classical", "country", "disco"}, tasks
    assert (ARTIFACTS / "dashboard-fine-metrics.png").stat().st_size > 10000


def test_dashboard_of_a_local_run_comes_up_on_loopback(long_dataset, tmp_path):
    """audioprep's own cluster: its dashboard answers on the loopback port asked for while the run is on."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("AUDIOPREP_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed but AUDIOPREP_REQUIRE_BROWSER=1 (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", str(long_dataset), "-o", str(tmp_path / "o"),
                             "--workers", "2", "--dashboard-address", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    title = None
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:  # the dashboard comes up with the cluster
                try:
                    page.goto(f"http://127.0.0.1:{port}/status", timeout=5000)
                    title = page.title()
                    break
                except Exception:
                    time.sleep(0.2)
            browser.close()
    finally:
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert title and "Dask" in title, title
    assert f"dashboard: http://127.0.0.1:{port}/status" in err


def test_dashboard_binds_to_loopback_by_default():
    """The packaged default keeps the dashboard private."""
    import dask

    import pipeline.config  # noqa: F401  (loads the packaged defaults)

    assert dask.config.get("audioprep.dashboard-address").startswith("127.0.0.1:")
