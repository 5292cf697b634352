"""Creating, reaching and starting the cluster a run computes on.

What differs between kinds is in :mod:`.kinds`; a scheduler address
(``tcp://...``) connects to a running scheduler instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import shutil
import socket
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dask.config

from ..config import JOBQUEUE_KEYS, setting
from ..exceptions import ClusterError
from ..warm import WORKER_CONFIG  # the workers' environment: pipeline.warm owns it
from .kinds import KINDS, batch_kinds

if TYPE_CHECKING:
    from distributed.deploy import Cluster

#: A batch cluster's per-run credentials in the output folder: a 0700 folder of 0600 files, removed when the
#: run ends (and by the next run on the folder if a run was killed).
CREDENTIALS_PREFIX = ".audioprep-credentials-"


def is_address(kind: str) -> bool:
    return "://" in kind


def cluster_class(kind: str):
    if kind not in KINDS:
        raise ClusterError(
            f"--cluster {kind!r} is not a cluster kind nor a scheduler address; "
            f"choose one of {', '.join(KINDS)} or give tcp://HOST:PORT"
        )
    module, name = KINDS[kind].cls.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise ClusterError(
            f"--cluster {kind} needs the package {module} ({e}); "
            f"install it with: pip install {module.replace('_', '-')}"
        ) from None


@dataclass
class ClusterSpec:
    """What cluster to use; ``None`` fields come from ``dask.config``."""

    kind: str | None = None
    jobqueue: dict = field(default_factory=dict)  # CLI overrides: cores, memory, ...
    local_directory: str | None = None
    log_directory: str | None = None
    shared_directory: str | None = None  # on a file system the compute nodes share (the output folder)
    warm: object = None  # the Params the workers get ready for (pipeline.warm); None = the defaults

    def warm_params(self):
        from ..params import Params

        return self.warm if self.warm is not None else Params()

    def resolved_kind(self) -> str:
        return setting("cluster", self.kind)

    def jobqueue_kwargs(self, kind: str) -> dict:
        """Job settings: CLI > the user's ``jobqueue.<kind>`` config > audioprep's defaults."""
        out = {}
        shipped = _jobqueue_packaged_defaults().get(kind, {})
        for key in JOBQUEUE_KEYS:
            value = self.jobqueue.get(key)
            if value is None:
                value = dask.config.get(f"jobqueue.{kind}.{key}", None)
                if value == shipped.get(key):
                    value = None  # dask-jobqueue's own default, not the user's choice
            if value is None:
                value = setting(f"jobqueue.{key}")
            if value is not None:
                out[key] = value
        record = KINDS[kind]
        for key in record.unsupported:
            out.pop(key, None)
        for ours, theirs in record.renamed.items():
            if ours in out:
                out[theirs] = out.pop(ours)
        if record.quirk is not None:
            record.quirk(out, lambda key: dask.config.get(key, None))
        from .. import warm as warming

        # The nanny preload leaves MALLOC_TRIM_THRESHOLD_ unset in the job's workers and, with warm-start, has
        # them fork from one forkserver that it starts warm (pipeline.warm).
        extra, warm = ["--preload-nanny", warming.NANNY_PRELOAD], []
        if setting("warm-start"):
            warm = [
                f"export DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="
                f"{warming.CONFIG['distributed.worker.multiprocessing-method']}",
                f"export {warming.ENV}={warming.params_env(self.warm_params())}",
            ]
        lifetime = setting("jobqueue.lifetime")
        if lifetime:
            extra += [
                "--lifetime",
                str(lifetime),
                "--lifetime-stagger",
                str(setting("jobqueue.lifetime-stagger") or "0s"),
            ]
        if extra:
            out["worker_extra_args"] = extra
        prologue = list(dask.config.get(f"jobqueue.{kind}.job-script-prologue", None) or [])
        out["job_script_prologue"] = prologue + [line for line in warm if line not in prologue]
        iface = out.get("interface")
        # Merged into the user's own jobqueue.<kind>.scheduler-options, which passing the keyword would drop.
        out["scheduler_options"] = {
            **(dask.config.get(f"jobqueue.{kind}.scheduler-options", None) or {}),
            "dashboard_address": setting("dashboard-address"),
            **({"interface": iface} if iface else {}),
        }
        if self.local_directory:
            out["local_directory"] = self.local_directory
        if self.log_directory:
            Path(self.log_directory).mkdir(parents=True, exist_ok=True)
            out["log_directory"] = self.log_directory
        return out


def _jobqueue_packaged_defaults() -> dict:
    """dask-jobqueue's own jobqueue.yaml, to tell its defaults from a user's settings."""
    import yaml

    try:
        import dask_jobqueue

        path = Path(dask_jobqueue.__file__).with_name("jobqueue.yaml")
        return (yaml.safe_load(path.read_text()) or {}).get("jobqueue", {})
    except Exception:
        return {}


def run_security():
    """TLS with fresh credentials for one run (``distributed.security.Security.temporary``), or None if turned off.

    The certificate authority, certificates and keys exist for this run only,
    in memory; only processes given them (this run's scheduler, workers and
    client) can connect.  ``audioprep.tls: false`` turns TLS off, with a
    warning on every run.
    """
    if not setting("tls"):
        logging.getLogger("audioprep").warning(
            "TLS is off (audioprep.tls: false): any user who can reach the scheduler's port can connect to it "
            "and run code as you; turn it off only where your site requires it"
        )
        return None
    from distributed.security import Security

    return Security.temporary()


def make_cluster(spec: ClusterSpec, *, security=None):
    """Create the cluster of ``spec`` (not for scheduler addresses), with ``security`` (TLS) if given."""
    kind = spec.resolved_kind()
    cls = cluster_class(kind)
    if not KINDS[kind].batch:
        workers = setting("workers") or os.cpu_count() or 1
        try:
            # Read by the scheduler and the nannies as they are created; the workers inherit it.
            scratch = {"temporary-directory": spec.local_directory} if spec.local_directory else {}
            with dask.config.set({**WORKER_CONFIG, **scratch}):
                if setting("warm-start"):
                    from ..warm import start_forkserver

                    start_forkserver(spec.warm_params())  # the nannies fork their workers from it (Connection)
                return cls(
                    n_workers=int(workers),
                    threads_per_worker=int(setting("threads-per-worker")),
                    processes=True,
                    memory_limit=setting("memory-limit"),
                    dashboard_address=setting("dashboard-address"),
                    host="127.0.0.1",
                    local_directory=spec.local_directory,
                    preload=["pipeline.worker_setup"],
                    security=security,
                )
        except Exception as e:
            raise ClusterError(f"could not start a local cluster of {workers} workers ({e})") from None
    kwargs = _with_security(spec.jobqueue_kwargs(kind), security, spec.shared_directory)
    try:
        cluster = cls(**kwargs)
    except Exception as e:
        shown = {k: v for k, v in kwargs.items() if k != "security"}
        raise ClusterError(
            f"could not create the {kind} cluster: {e}; the call was "
            f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
        ) from None
    lo, hi = setting("adapt-min"), setting("adapt-max")
    if not hi:
        lo = hi = int(setting("jobs"))
    # Adaptive even for a fixed count: workers retire before the walltime
    # ('lifetime') and the adaptive loop submits jobs to replace them.
    cluster.adapt(minimum_jobs=int(lo or 0), maximum_jobs=int(hi))
    return cluster


def job_script(spec: ClusterSpec) -> str:
    """The batch script a jobqueue cluster of ``spec`` would submit (nothing is submitted)."""
    kind = spec.resolved_kind()
    if is_address(kind) or not KINDS[kind].batch:
        raise ClusterError(f"--cluster {kind} submits no batch jobs; choose one of {', '.join(batch_kinds())}")
    cls = cluster_class(kind)
    kwargs = spec.jobqueue_kwargs(kind)
    kwargs["scheduler_options"] = {**kwargs["scheduler_options"], "dashboard_address": "127.0.0.1:0"}
    with tempfile.TemporaryDirectory(prefix=CREDENTIALS_PREFIX) as shared:
        cluster = cls(**_with_security(kwargs, run_security(), spec.shared_directory or shared))
        try:
            return cluster.job_script()
        finally:
            cluster.close()
            _release_credential_files(cluster)


def _with_security(kwargs: dict, security, shared_directory) -> dict:
    """A jobqueue cluster's keywords with TLS: the job scripts read the workers' credentials (0600 files)
    from ``shared_directory``, which the compute nodes must see."""
    if security is None:
        return kwargs
    return {**kwargs, "security": security, "shared_temp_directory": shared_directory}


def _release_credential_files(cluster) -> None:
    """Close (and so delete) the credential files dask-jobqueue wrote for the job scripts, now, not at GC time."""
    for value in list(vars(cluster).values()):
        if isinstance(value, tempfile._TemporaryFileWrapper):
            value.close()


def remove_stale_credentials(folder) -> None:
    """Remove the credentials folders a killed run left in its output ``folder`` (call it holding the lock)."""
    for stale in Path(folder).glob(CREDENTIALS_PREFIX + "*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


#: A local cluster's scratch folder in the temporary directory: ``audioprep-dask-<host>-<pid>-<random>``.
SCRATCH_PREFIX = "audioprep-dask-"


def remove_stale_scratch() -> None:
    """Remove this user's scratch folders whose run is gone (``kill -9`` leaves them) on this host.

    Only folders (not links) owned by this user, named for this host and a
    process that no longer exists, are removed.
    """
    import re

    pattern = re.compile(re.escape(SCRATCH_PREFIX + socket.gethostname()) + r"-(\d+)-[^/]+")
    with contextlib.suppress(OSError), os.scandir(tempfile.gettempdir()) as it:
        for entry in it:
            m = pattern.fullmatch(entry.name)
            if not m or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _alive(int(m.group(1))):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)


def check_client(client) -> None:
    """Refuse a client given to the run that cannot run anything: closed (or closing, or never connected)."""
    status = str(getattr(client, "status", "running"))
    if status != "running":
        raise ClusterError(
            f"the client given is {status}, not running: pass an open distributed.Client (or none, "
            "and audioprep starts a cluster)"
        )


def check_tls_address(address: str) -> None:
    """A ``tls://`` scheduler is reached with the user's own certificates (``distributed.comm.tls.*``): refuse
    the address at once when none are configured."""
    if not address.lower().startswith("tls://"):
        return
    tls = dask.config.get("distributed.comm.tls", {}) or {}
    client = tls.get("client", {}) or {}
    if not (tls.get("ca-file") and client.get("cert")):
        raise ClusterError(
            f"--cluster {address} needs the certificates of that scheduler's TLS, and none are "
            "configured: set distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
            "client.key in the dask config (DASK_DISTRIBUTED__COMM__TLS__CA_FILE=..., ...), or give "
            "its tcp:// address"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Connection:
    """A client on the cluster of ``spec`` (``with Connection(spec) as conn: conn.client``); closes what it created.

    A cluster it creates gets TLS with this run's own credentials
    (:func:`run_security`) and a scratch folder of its own (mode 0700, not a
    fixed path in /tmp); both are removed when the connection closes.
    """

    cluster: Cluster | None  # the cluster it created; None when it connected to a scheduler, or was given a client

    def __init__(self, spec: ClusterSpec, client=None):
        self.spec, self.client, self.cluster = spec, client, None
        self._stack = contextlib.ExitStack()

    def __enter__(self):

        if self.client is not None:
            return self
        kind = self.spec.resolved_kind()
        try:
            if is_address(kind):
                self._connect(kind)
            else:
                self._start(kind)
        except BaseException:
            self._stack.close()
            raise
        return self

    def _connect(self, address: str) -> None:
        from distributed import Client

        # A tls:// address uses the user's own certificates from the dask config (distributed.comm.tls.*).
        try:
            self.client = Client(address, timeout=setting("connect-timeout"))
        except Exception as e:
            raise ClusterError(f"could not reach the scheduler at {address} ({e}); is it running?") from None
        self._stack.callback(self.client.close)

    def _start(self, kind: str) -> None:
        from distributed import Client

        spec = self.spec
        batch = KINDS[kind].batch
        if not batch and spec.local_directory is None:
            remove_stale_scratch()
            scratch = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{socket.gethostname()}-{os.getpid()}-")
            self._stack.callback(shutil.rmtree, scratch, ignore_errors=True)
            spec = dataclasses.replace(spec, local_directory=scratch)
        if batch:
            where = spec.shared_directory or os.getcwd()
            shared = tempfile.mkdtemp(prefix=CREDENTIALS_PREFIX, dir=where)
            self._stack.callback(shutil.rmtree, shared, ignore_errors=True)
            spec = dataclasses.replace(spec, shared_directory=shared)
        self.spec = spec
        if not batch and setting("warm-start"):
            from ..warm import CONFIG

            # For the connection's lifetime: a nanny reads it each time it starts a worker, a replacement too.
            self._stack.enter_context(dask.config.set(CONFIG))
        self.cluster = make_cluster(spec, security=run_security())
        self._stack.callback(_release_credential_files, self.cluster)
        self._stack.callback(self.cluster.close)
        self.client = Client(self.cluster)
        self._stack.callback(self.client.close)

    @property
    def dashboard_link(self) -> str:
        """Where the dashboard is, as the user can open it (the scheduler's own link names its network address)."""
        link = self.client.dashboard_link
        if self.cluster is None or not KINDS[self.spec.resolved_kind()].batch:
            return link
        port = urllib.parse.urlsplit(link).port
        return (
            f"http://127.0.0.1:{port}/status (on {socket.gethostname()}; from elsewhere: ssh -N -L "
            f"{port}:127.0.0.1:{port} {socket.gethostname()}, then open http://localhost:{port}/status)"
        )

    def moved(self) -> str:
        """`` (port N was busy: the dashboard moved)`` when the dashboard could not take the port asked for."""
        if self.cluster is None:
            return ""
        want = str(setting("dashboard-address")).rpartition(":")[2]
        got = urllib.parse.urlsplit(self.client.dashboard_link).port
        if want.isdigit() and int(want) not in (0, got):
            return f" (port {want} was busy: the dashboard moved to {got})"
        return ""

    def wait_for_workers(self, echo) -> None:
        """Wait for the first worker of a batch-job cluster; fail clearly if none comes."""
        if self.cluster is None or not KINDS[self.spec.resolved_kind()].batch:
            return
        timeout = setting("worker-timeout")
        echo(f"waiting for the first worker (batch jobs pending; up to {timeout})")
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except Exception:
            from dask.utils import parse_timedelta

            raise ClusterError(
                f"no worker joined within {parse_timedelta(timeout):.0f} s: the batch jobs did not start or "
                f"could not reach the scheduler; check the queue (squeue / qstat), the job logs in "
                f"{self.spec.log_directory}, and the script from 'audioprep cluster job-script --cluster "
                f"{self.spec.resolved_kind()}'; raise audioprep.worker-timeout for busy queues"
            ) from None

    def __exit__(self, *exc):
        self._stack.close()  # client, then cluster, then credentials and scratch folders
