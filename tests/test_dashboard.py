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
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )


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
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=f"127.0.0.1:{port}",
        local_directory=str(tmp_path / "scratch"),
    ) as cluster:
        with sync_playwright() as pw:
            browser = launch(pw)
            stream = browser.new_page(viewport={"width": 1400, "height": 900})
            stream.goto(f"http://127.0.0.1:{port}/individual-task-stream", timeout=30000)  # it records from now on
            stream.wait_for_selector("canvas", timeout=30000)
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "run",
                    str(long_dataset),
                    "-o",
                    str(tmp_path / "o"),
                    "--cluster",
                    cluster.scheduler_address,
                    "-q",
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, proc.stderr
            tasks = strings_on(
                stream, stream.url, lambda s: re.fullmatch(r"clips-[a-z]+\.\d{5}(-\d{5})?-[0-9a-f]{8}", s) is not None
            )
            ARTIFACTS.mkdir(exist_ok=True)
            stream.screenshot(path=str(ARTIFACTS / "dashboard-task-stream.png"), full_page=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            stages = strings_on(
                page, f"http://127.0.0.1:{port}/individual-fine-performance-metrics", lambda s: s in STAGES
            )
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
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(long_dataset),
            "-o",
            str(tmp_path / "o"),
            "--workers",
            "2",
            "--dashboard-address",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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


def test_dashboard_binds_to_loopback_by_default(tiny_dataset, tmp_path):
    """A run with the packaged default's host (on a free port, not 8787) listens on 127.0.0.1 only: every socket of
    the run's processes, the dashboard's among them, read from the kernel while the run is stopped on its dashboard
    line; from the machine's other addresses the dashboard cannot be reached."""
    import signal

    import psutil
    import yaml

    import pipeline

    packaged = yaml.safe_load((Path(pipeline.__file__).parent / "audioprep.yaml").read_text())
    host = packaged["audioprep"]["dashboard-address"].rpartition(":")[0]
    env = {**os.environ, "DASK_AUDIOPREP__DASHBOARD_ADDRESS": f"{host}:0", "DASK_TEMPORARY_DIRECTORY": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            str(tiny_dataset),
            "-o",
            str(tmp_path / "o"),
            "--nsamples",
            str(1024 * 64 + 600),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    said, listening, port = [], set(), None
    try:
        for line in proc.stdout:
            said.append(line)
            if line.startswith("dashboard: "):
                os.killpg(proc.pid, signal.SIGSTOP)  # the cluster and its dashboard are up: hold them there
                port = int(re.match(r"dashboard: http://[^:/]+:(\d+)/", line)[1])
                for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
                    listening |= {
                        (c.laddr.ip, c.laddr.port) for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN
                    }
                others = [
                    a.address
                    for addrs in psutil.net_if_addrs().values()
                    for a in addrs
                    if a.family == socket.AF_INET and not a.address.startswith("127.")
                ]
                reachable = []
                for address in others:
                    with socket.socket() as s:
                        s.settimeout(2)
                        if s.connect_ex((address, port)) == 0:
                            reachable.append(address)
                break
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    said.append(proc.communicate(timeout=300)[0])
    assert proc.returncode == 0, "".join(said)
    assert port is not None and port != 8787, said
    assert ("127.0.0.1", port) in listening, listening
    assert len(listening) >= 5 and {ip for ip, _ in listening} == {"127.0.0.1"}, listening  # scheduler, workers too
    assert reachable == [], reachable
