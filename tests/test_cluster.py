"""Cluster kinds: job scripts everywhere; real one-node SLURM and SGE where they run.

.ci/run starts both schedulers and sets AUDIOPREP_REQUIRE_SCHEDULERS=1, so
there a missing scheduler fails these tests instead of skipping them.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from support.cli import audioprep
from support.compare import assert_same_output
from support.data import SMALL_ARGS

from pipeline import ClusterError
from pipeline.cluster import KINDS, ClusterSpec, cluster_class, job_script

REQUIRE = os.environ.get("AUDIOPREP_REQUIRE_SCHEDULERS") == "1"
SLURM_CONF = os.environ.get("SLURM_CONF", "/tmp/audioprep-slurm/slurm.conf")


def test_registry_feeds_the_cli_choices_the_help_and_the_packaged_yaml():
    """Every cluster kind is one record of KINDS: the --cluster rule, its help and audioprep.yaml's comment
    (so 'audioprep config') list exactly the records, in their order."""
    from click.testing import CliRunner

    from pipeline import ParameterError, config
    from pipeline.cli import main

    kinds = list(KINDS)
    assert kinds[0] == "local" and {"slurm", "pbs", "sge", "lsf", "htcondor"} <= set(kinds)
    listed = ", ".join(kinds)
    assert config.comments()["audioprep.cluster"].startswith(f"where to run: {listed}, or a scheduler address")
    assert f"# where to run: {listed}, or" in CliRunner().invoke(main, ["config"]).output
    run_help = {p.name: getattr(p, "help", None) for p in main.commands["run"].params}["cluster"]
    assert run_help.startswith(f"Where to run: {listed}, or a scheduler address")
    rule = config.RUNTIME_RULES["cluster"]
    for kind in kinds:
        assert rule("cluster", kind.upper()) == kind
    assert rule("cluster", "tls://10.0.0.5:8786") == "tls://10.0.0.5:8786"
    with pytest.raises(ParameterError, match=rf"cluster=torque must be one of {listed}, or a scheduler address"):
        rule("cluster", "torque")
    assert cluster_class("slurm").__name__ == "SLURMCluster"
    with pytest.raises(ClusterError, match=r"--cluster 'torque' is not a cluster kind.*tcp://HOST:PORT"):
        cluster_class("torque")


@pytest.mark.parametrize(
    "kind,expect",
    [
        (
            "slurm",
            [
                "#SBATCH -p long",
                "#SBATCH -A proj42",
                "#SBATCH --cpus-per-task=4",
                "#SBATCH -t 02:00:00",
                "--nthreads 2",
                "--nworkers 2",
                "--lifetime 55m",
            ],
        ),
        ("pbs", ["#PBS -q long", "#PBS -A proj42", "#PBS -l walltime=02:00:00", "ncpus=4"]),
        ("sge", ["#$ -q long", "#$ -P proj42", "#$ -l h_rt=02:00:00"]),
        ("lsf", ["#BSUB -q long", '#BSUB -P "proj42"', "#BSUB -n 4", "#BSUB -W 02:00\n"]),
        ("htcondor", ["RequestCpus = MY.DaskWorkerCores", "--lifetime 55m"]),
    ],
)
def test_job_script_text(kind, expect):
    spec = ClusterSpec(
        kind=kind,
        jobqueue={
            "cores": 4,
            "processes": 2,
            "memory": "8GiB",
            "walltime": "02:00:00",
            "queue": "long",
            "account": "proj42",
        },
    )
    script = job_script(spec)
    for line in expect:
        assert line in script, (line, script)


def test_job_script_command_and_config_precedence(tmp_path):
    out = audioprep("cluster", "job-script", "--cluster", "slurm", "--memory", "3GiB").stdout
    assert "#SBATCH --mem=" in out and "--memory-limit 3.00GiB" in out
    # the packaged default (2GiB) applies when neither option nor user config sets it
    default = audioprep("cluster", "job-script", "--cluster", "slurm").stdout
    assert "--memory-limit 2.00GiB" in default
    assert "#SBATCH -t 01:00:00" in default  # audioprep's walltime, not dask-jobqueue's 00:30:00
    # a user's jobqueue.yaml (here via DASK_ environment variables) wins over audioprep's default
    env_out = subprocess.run(
        ["python", "-m", "pipeline", "cluster", "job-script", "--cluster", "slurm"],
        capture_output=True,
        text=True,
        env={**os.environ, "DASK_JOBQUEUE__SLURM__MEMORY": "5GiB"},
    ).stdout
    assert "--memory-limit 5.00GiB" in env_out
    p = audioprep("cluster", "job-script", "--cluster", "local", check=False)
    assert p.returncode == 1 and "submits no batch jobs" in p.stderr


def slurm_running() -> bool:
    if not shutil.which("sinfo") or not Path(SLURM_CONF).exists():
        return False
    p = subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env={**os.environ, "SLURM_CONF": SLURM_CONF}
    )
    return p.returncode == 0 and any(s in p.stdout for s in ("idle", "mix", "alloc"))


def sge_running() -> bool:
    if not shutil.which("qstat"):
        return False
    env = {
        **os.environ,
        "SGE_ROOT": os.environ.get("SGE_ROOT", "/var/lib/gridengine"),
        "SGE_CELL": os.environ.get("SGE_CELL", "default"),
    }
    p = subprocess.run(["qstat", "-f"], capture_output=True, text=True, env=env)
    return p.returncode == 0 and "all.q@" in p.stdout


def need(running: bool, what: str, how: str):
    if running:
        return
    if REQUIRE:
        pytest.fail(f"{what} is not running but AUDIOPREP_REQUIRE_SCHEDULERS=1; start it with {how}")
    pytest.skip(f"{what} is not running (start it with {how})")


@pytest.fixture(scope="module")
def local_output(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    audioprep("run", tiny_dataset, "-o", out, "--workers", "2", *SMALL_ARGS, cwd=out)
    return out / "audio.hdf5"


def run_on(kind, extra, tiny_dataset, tmp_path, env):
    out = tmp_path / kind
    p = subprocess.run(
        [
            "python",
            "-m",
            "pipeline",
            "run",
            str(tiny_dataset),
            "-o",
            str(out),
            "--cluster",
            kind,
            "--jobs",
            "2",
            "--cores",
            "1",
            "--memory",
            "1GiB",
            "--walltime",
            "00:10:00",
            "--interface",
            "lo",
            *extra,
            *SMALL_ARGS,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.slurm
def test_pipeline_on_real_slurm_equals_local(tiny_dataset, local_output, tmp_path):
    need(slurm_running(), "a one-node SLURM", "bash cluster/slurm-up.sh")
    out = run_on("slurm", ["--queue", "debug"], tiny_dataset, tmp_path, {"SLURM_CONF": SLURM_CONF})
    assert_same_output(out / "audio.hdf5", local_output)
    summary = json.loads((out / "audio.summary.json").read_text())
    assert summary["workers"] and all(w.startswith("SLURMCluster-") for w in summary["workers"])
    # two batch jobs were submitted, each with its own log
    assert len(list((out / "logs").glob("*.err"))) == 2


@pytest.mark.slurm
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_an_outsider_cannot_connect_to_a_run_on_slurm(many_clips, tmp_path):
    """The scheduler (in the driver, on the login node) and the workers (in batch jobs) all refuse an outsider."""
    from distributed.security import Security
    from support.cli import start
    from support.probes import batch_worker_pids, probe_run

    need(slurm_running(), "a one-node SLURM", "bash cluster/slurm-up.sh")
    out = tmp_path / "out"
    proc = start(
        [
            many_clips,
            "-o",
            out,
            "--cluster",
            "slurm",
            "--jobs",
            "2",
            "--cores",
            "1",
            "--memory",
            "1GiB",
            "--walltime",
            "00:10:00",
            "--interface",
            "lo",
            "--queue",
            "debug",
        ],
        tmp_path,
        env={"SLURM_CONF": SLURM_CONF},
    )
    try:
        reached = probe_run(proc, out, Security.temporary(), batch=True)
        workers = [" ".join(psutil.Process(pid).cmdline()) for pid in batch_worker_pids()]
    finally:
        text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text
    assert not any(reached.values()), [k for k, v in reached.items() if v]
    assert workers and all("tls://" in w and "--tls-key" in w for w in workers), workers
    assert not list(out.glob(".audioprep-credentials-*"))  # the workers' credentials are gone with the run


@pytest.mark.sge
def test_pipeline_on_real_sge_equals_local(tiny_dataset, local_output, tmp_path):
    need(sge_running(), "a one-node Grid Engine", "bash cluster/sge-up.sh")
    env = {
        "SGE_ROOT": os.environ.get("SGE_ROOT", "/var/lib/gridengine"),
        "SGE_CELL": os.environ.get("SGE_CELL", "default"),
    }
    out = run_on("sge", ["--queue", "all.q"], tiny_dataset, tmp_path, env)
    assert_same_output(out / "audio.hdf5", local_output)
    summary = json.loads((out / "audio.summary.json").read_text())
    assert summary["workers"] and all(w.startswith("SGECluster-") for w in summary["workers"])
    # Which of the jobs did the work is the scheduler's business (a busy machine may leave it to one):
    # the promise is the output above, made by SGE's workers.


def test_unreachable_scheduler_address_is_a_clear_error(tiny_dataset, tmp_path):
    env = {**os.environ, "DASK_AUDIOPREP__CONNECT_TIMEOUT": "2s"}
    p = subprocess.run(
        [
            "python",
            "-m",
            "pipeline",
            "run",
            str(tiny_dataset),
            "-o",
            str(tmp_path),
            "--cluster",
            "tcp://127.0.0.1:9",
            *SMALL_ARGS,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "could not reach the scheduler at tcp://127.0.0.1:9" in p.stderr


@pytest.mark.slow
def test_running_scheduler_address(tiny_dataset, local_output, tmp_path):
    """--cluster tcp://... uses a scheduler someone else started."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as lc:
        audioprep(
            "run", tiny_dataset, "-o", tmp_path / "o", "--cluster", lc.scheduler_address, *SMALL_ARGS, cwd=tmp_path
        )
    assert_same_output(tmp_path / "o" / "audio.hdf5", local_output)


def readme_block(marker: str) -> str:
    """The shell block that follows ``<!-- marker -->`` in the clusters page of the docs."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "clusters.md").read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```bash", 1)[1].split("```", 1)[0]


@pytest.mark.slurm
def test_readme_slurm_recipe_works_as_written(tmp_path):
    need(slurm_running(), "a one-node SLURM", "bash cluster/slurm-up.sh")
    repo = Path(__file__).resolve().parent.parent
    (tmp_path / "cluster").symlink_to(repo / "cluster")  # the recipe runs from a checkout's root
    script = readme_block("slurm-recipe")
    assert "--config cluster/slurm.yaml" in script
    p = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, p.stdout + p.stderr
    import h5py

    with h5py.File(tmp_path / "data" / "slurm" / "audio.hdf5") as f:
        assert f["Xs"].shape[:3] == (10, 2, 644) and f["valid"][...].all()
    summary = json.loads((tmp_path / "data" / "slurm" / "audio.summary.json").read_text())
    assert all(w.startswith("SLURMCluster-") for w in summary["workers"])


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    """10 genres x 120 four-second clips: about 15 s of work on two one-core batch jobs, several lifetimes."""
    from pipeline.synth import synth_dataset

    return synth_dataset(tmp_path_factory.mktemp("short"), genres=10, clips=120, seconds=4.0, seed=12)


@pytest.mark.slurm
def test_runs_outlive_the_walltime_on_slurm(short_clips, tmp_path):
    """Workers retire at 'lifetime' (6 s) long before the 2-minute walltime; new jobs replace them.

    The work (about 15 s on two one-core jobs, a worker's start-up aside) outlasts a lifetime several
    times over, so more jobs than the two at a time do it, and the output equals a local run's.
    """
    need(slurm_running(), "a one-node SLURM", "bash cluster/slurm-up.sh")
    args = ["--nsamples", str(4 * 22050)]
    audioprep("run", short_clips, "-o", tmp_path / "local", "--workers", "2", *args, cwd=tmp_path)
    env = {
        **os.environ,
        "SLURM_CONF": SLURM_CONF,
        "DASK_AUDIOPREP__JOBQUEUE__LIFETIME": "6s",
        "DASK_AUDIOPREP__JOBQUEUE__LIFETIME_STAGGER": "1s",
    }
    out = tmp_path / "slurm"
    p = subprocess.run(
        [
            "python",
            "-m",
            "pipeline",
            "run",
            str(short_clips),
            "-o",
            str(out),
            "--cluster",
            "slurm",
            "--jobs",
            "2",
            "--cores",
            "1",
            "--memory",
            "1GiB",
            "--walltime",
            "00:02:00",
            "--interface",
            "lo",
            "--queue",
            "debug",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    jobs = sorted(out.glob("logs/*.err"))
    # two jobs at a time, each retiring after about 6 s: replacements did part of the work
    assert len(jobs) >= 3, [j.name for j in jobs]
    assert_same_output(out / "audio.hdf5", tmp_path / "local" / "audio.hdf5")


@pytest.mark.slurm
def test_a_slurm_jobs_workers_get_ready_from_one_warm_parent(tmp_path, monkeypatch):
    """One batch job of 2 worker processes (--nworkers 2): both fork from the one forkserver that the job's
    nanny preload started warm, so neither builds a CQT plan of its own."""
    need(slurm_running(), "a one-node SLURM", "bash cluster/slurm-up.sh")
    import cloudpickle
    from support import probes
    from support.data import SMALL
    from support.probes import who_built_the_plan

    from pipeline.cluster.connect import Connection
    from pipeline.params import Params

    monkeypatch.setenv("SLURM_CONF", SLURM_CONF)
    params = Params(**SMALL)
    spec = ClusterSpec(
        kind="slurm",
        jobqueue={
            "cores": 2,
            "processes": 2,
            "memory": "2GiB",
            "walltime": "00:10:00",
            "queue": "debug",
            "interface": "lo",
        },
        log_directory=str(tmp_path / "logs"),
        shared_directory=str(tmp_path),
        warm=params,
    )
    import dask.config

    cloudpickle.register_pickle_by_value(probes)  # the batch job's workers cannot import the tests' modules
    with dask.config.set({"audioprep.jobs": 1}), Connection(spec) as conn:
        conn.client.wait_for_workers(2, timeout=120)
        workers = list(conn.client.run(who_built_the_plan, params).values())
    assert len(workers) == 2
    parents = {w["parent"] for w in workers}
    assert len(parents) == 1
    for w in workers:
        assert w["plans"] == {"count": 1, "pid": w["parent"]} and w["forked_warm"], w


@pytest.mark.parametrize("kind", ["slurm", "pbs", "sge", "lsf", "htcondor"])
def test_the_job_scripts_environment_lines_set_only_real_values(kind):
    """Before: 'export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None', a literal None.
    Now the nanny preload (pipeline.warm) leaves the variable unset, and the script exports only what is set."""
    import re

    from pipeline.params import Params

    script = job_script(ClusterSpec(kind=kind, warm=Params()))
    exports = re.findall(r"export (\w+)=([^;\s'\"]*)", script)  # a script's lines, or HTCondor's Arguments
    assert [name for name, _ in exports] == [
        "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD",
        "AUDIOPREP_WARM_PARAMS",
    ], exports
    assert exports[0][1] == "forkserver" and len(exports[1][1]) > 100
    assert not any(value in ("None", "null", "") for _, value in exports)
    assert "MALLOC_TRIM_THRESHOLD_" not in script and "--preload-nanny pipeline.warm" in script
