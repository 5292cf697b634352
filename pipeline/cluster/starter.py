"""Starting a run's cluster early: a local cluster starts (and its workers warm up) while the driver checks
the input."""

from __future__ import annotations

import dask.config

from ..config import setting
from ..exceptions import ClusterError
from .connect import ClusterSpec, Connection, check_client, check_tls_address, is_address, remove_stale_scratch


class Starter:
    """Starts a run's cluster, for a local cluster in a background thread while the driver checks the input.

    The workers' imports and CQT plan (:class:`~pipeline.worker_setup.Warmup`)
    are readied on the way, so the first clips do not wait for them.
    :meth:`wait` joins the thread (a progress line shows the workers
    starting) and raises what the start raised; :meth:`connection` gives the
    :class:`Connection`, starting it then if it was not started early (batch
    clusters, which need the output folder for their logs and credentials).
    """

    def __init__(self, spec: ClusterSpec, client, params, *, early: bool):
        import threading

        self.spec, self.client, self.params = spec, client, params
        if client is not None:
            check_client(client)  # a closed client is said now, before the output folder is created
        if spec.resolved_kind() == "local":
            remove_stale_scratch()  # of a killed run, also when this run finds its output up to date
        elif is_address(spec.resolved_kind()):
            check_tls_address(spec.resolved_kind())
        self._conn: Connection | None = None
        self._error: BaseException | None = None
        self._thread = None
        # Set when the start has ended. Waited on instead of the thread itself: on Python 3.11, a Ctrl-C that
        # interrupts Thread.join(timeout) marks a running thread as stopped, and a later join returns at once
        # (then the cluster still starting would be left running, its scratch folder behind).
        self._ended = threading.Event()
        if early:
            self._thread = threading.Thread(target=self._started, name="audioprep-cluster-start", daemon=True)
            self._thread.start()

    def _started(self) -> None:
        try:
            self._start()
        finally:
            self._ended.set()

    def _start(self) -> None:
        import dataclasses

        import distributed  # noqa: F401  (its config defaults first: the set below must not insert them)

        conn = Connection(dataclasses.replace(self.spec, warm=self.params), self.client)
        try:
            # Read by the scheduler as it is created (dask.config is one for the whole process).
            # A worker runs one task at a time (saturation 1.0, no task queued on it beside the running one), so
            # when a clip kills its worker, no other task is blamed for the death.
            with dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": int(setting("allowed-failures")),
                    "distributed.scheduler.worker-saturation": 1.0,
                    # A worker's memory holds no task results here (each clip is written, then let go), so waiting
                    # frees nothing: a paused worker would never run a task again and the run would wait forever.
                    # Over its limit, the nanny's terminate share ends it instead, and the run says so in one line.
                    "distributed.worker.memory.pause": False,
                }
            ):
                conn.__enter__()
        except BaseException as e:
            self._error = e
            return
        self._conn = conn
        try:
            from ..warm import check_room
            from ..worker_setup import Warmup

            conn.client.register_plugin(Warmup(self.params))
            if conn.cluster is not None and setting("warm-start"):
                # Once ready (imports, the CQT plan): a worker with no room left for one clip would be paused
                # by distributed before its first task, and the run would wait for it forever.
                check_room(conn.client, need=self.params.clip_memory())
        except BaseException as e:
            self._error = ClusterError(
                f"the workers could not get ready ({type(e).__name__}: {e}); a worker that dies while importing "
                f"and planning the CQT is usually out of memory (memory-limit {setting('memory-limit')} a "
                "worker; one needs about 300 MB): raise audioprep.memory-limit or give fewer --workers"
            )

    def wait(self, progress: bool = False) -> None:
        """Wait for an early start to finish; raise what it raised."""
        if self._thread is not None:
            from ..progress import bar as progress_bar

            with progress_bar(
                desc="starting workers (imports, CQT plan)",
                bar_format="{desc}: {elapsed}",
                enabled=progress,
                leave=False,
            ) as bar:
                while not self._ended.wait(0.25):
                    bar.refresh()
            self._thread = None
        if self._error is not None:
            raise self._error

    def connection(self, progress: bool = False) -> Connection:
        """The run's connection, started now if it was not started early."""
        self.wait(progress)
        if self._conn is None:
            self._start()
            self.wait()
        assert self._conn is not None  # _start set it, or wait() raised its error
        return self._conn

    def close(self) -> None:
        if self._thread is not None:
            self._ended.wait()
            self._thread = None
        if self._conn is not None:
            self._conn.__exit__(None, None, None)
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
