"""Workers that fork warm (pipeline.warm): a local cluster's and a batch job's workers start from one process
that did the imports and built the CQT plan; checked by who built each worker's plan, never by time."""

import os
import signal
import time

import pytest
from support.data import SMALL
from support.probes import who_built_the_plan

from pipeline.cluster import ClusterSpec
from pipeline.cluster.connect import Connection
from pipeline.params import Params
from pipeline.worker_setup import Warmup

PARAMS = Params(**SMALL)


def _blosc_threads():
    from numcodecs import blosc

    return blosc.use_threads


def _probe(client):
    return list(client.run(who_built_the_plan, PARAMS).values())


def test_local_workers_fork_from_one_warm_parent_and_a_replacement_does_too():
    with Connection(ClusterSpec(kind="local", warm=PARAMS)) as conn:
        client = conn.client
        client.register_plugin(Warmup(PARAMS))
        first = _probe(client)
        assert len(first) == 2
        # one blosc thread a worker: the store's chunks are encoded in the task's thread
        assert list(client.run(_blosc_threads).values()) == [False, False]
        parents = {w["parent"] for w in first}
        assert len(parents) == 1  # one forkserver for all workers
        for w in first:
            # the plan was built once, in the parent, before the fork: the worker built none of its own
            assert w["plans"] == {"count": 1, "pid": w["parent"]} and w["forked_warm"], w
        # A worker that dies is replaced by a fork of the same warm parent.
        victim = first[0]["pid"]
        addr = next(a for a, pid in client.run(os.getpid).items() if pid == victim)
        client.run(os._exit, 1, workers=[addr], on_error="ignore")
        client.wait_for_workers(2, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = set(client.run(os.getpid).values())
            if victim not in pids and len(pids) == 2:
                break
            time.sleep(0.2)
        again = _probe(client)
        new = [w for w in again if w["pid"] != victim and w["pid"] not in {f["pid"] for f in first}]
        assert len(new) == 1 and new[0]["parent"] in parents and new[0]["plans"]["pid"] == new[0]["parent"]


def test_without_warm_start_each_worker_builds_its_own_plan(monkeypatch):
    monkeypatch.setenv("DASK_AUDIOPREP__WARM_START", "false")
    import dask.config

    dask.config.refresh()
    try:
        with Connection(ClusterSpec(kind="local", warm=PARAMS)) as conn:
            conn.client.register_plugin(Warmup(PARAMS))
            for w in _probe(conn.client):
                assert w["plans"] == {"count": 1, "pid": w["pid"]} and not w["forked_warm"], w
    finally:
        monkeypatch.delenv("DASK_AUDIOPREP__WARM_START")
        dask.config.refresh()


def test_job_script_workers_fork_warm():
    from pipeline.cluster import job_script

    script = job_script(ClusterSpec(kind="slurm", jobqueue={"processes": 4, "cores": 4}, warm=PARAMS))
    assert "--preload-nanny pipeline.warm" in script
    assert "export DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD=forkserver" in script
    line = next(x for x in script.splitlines() if x.startswith("export AUDIOPREP_WARM_PARAMS="))
    import base64
    import json

    assert Params.from_dict(json.loads(base64.urlsafe_b64decode(line.partition("=")[2]))) == PARAMS


def _maps(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


def _forkserver(proc):
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return None
    for p in kids:
        try:
            if "multiprocessing.forkserver" in " ".join(p.cmdline()):
                return p
        except psutil.Error:
            continue
    return None


def _loaded(library):
    """The driver has loaded ``library`` (it is importing the command line)."""
    return lambda proc: library in _maps(proc.pid)


def _forkserver_loaded(library):
    """The forkserver has loaded ``library``: importing (numpy) or warming up (soxr: the CQT resamples silence)."""

    def moment(proc):
        fs = _forkserver(proc)
        return fs is not None and library in _maps(fs.pid)

    return moment


def _worker_forked(proc):
    import psutil

    fs = _forkserver(proc)
    try:
        return fs is not None and bool(fs.children())
    except psutil.Error:
        return False


@pytest.mark.slow
@pytest.mark.parametrize(
    "moment,sig,code",
    [
        (_loaded("numpy"), signal.SIGINT, 130),
        (_forkserver_loaded("numpy"), signal.SIGINT, 130),
        (_forkserver_loaded("soxr"), signal.SIGINT, 130),
        (_forkserver_loaded("soxr"), signal.SIGTERM, 143),
        (_worker_forked, signal.SIGINT, 130),
    ],
    ids=["driver-imports", "forkserver-imports", "forkserver-warms", "forkserver-warms-sigterm", "worker-forked"],
)
def test_a_signal_while_the_workers_start_is_one_line(tiny_dataset, tmp_path, moment, sig, code):
    """Before: a Ctrl-C 1 to 5 s after 'audioprep run' printed the forkserver's 42 to 93 line traceback of the
    imports it interrupted (pipeline._forkserver's warm-up), and one during the driver's own imports printed
    Python's.  Each moment is observed (a library mapped into a process, a worker process forked), never timed."""
    from support.cli import assert_clean, children_alive, lines, start

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    proc = start(
        [tiny_dataset, "-o", out, "--workers", "2", "-q", "--nsamples", SMALL["nsamples"]],
        tmp_path,
        env={"TMPDIR": str(tmp)},
    )
    deadline = time.monotonic() + 240
    while not moment(proc):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the run never reached the moment to interrupt it"
        time.sleep(0.005)
    os.killpg(proc.pid, sig)
    text, _ = proc.communicate(timeout=180)
    assert proc.returncode == code, text
    assert len(lines(text)) == 1 and lines(text)[0].startswith("interrupted: "), text
    assert_clean(text)
    deadline = time.monotonic() + 15  # the resource tracker leaves a moment after the driver
    while children_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not children_alive(proc.pid), "a process of the run outlived it"
    assert not list(tmp.iterdir())  # no scratch folder
    # Before any clip: no output folder, or (a worker forked: the run may have been accepted) one the same
    # command resumes, holding no array.
    assert not out.exists() or not (out / "audio.hdf5").exists()
