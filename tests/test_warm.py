"""Workers that fork warm (pipeline.warm): a local cluster's and a batch job's workers start from one process
that did the imports and built the CQT plan; checked by who built each worker's plan, never by time."""

import os
import time

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
