"""Where a run's workers live: a local cluster, batch jobs through dask-jobqueue, or a running scheduler.

- :mod:`.kinds`: one record per cluster kind (class, renamed and unsupported settings, quirks);
- :mod:`.connect`: creating or reaching the cluster, TLS with per-run credentials, scratch folders;
- :mod:`.starter`: starting a local cluster (and warming its workers) while the driver checks the input.
"""

from .connect import (
    CREDENTIALS_PREFIX,
    ClusterSpec,
    Connection,
    cluster_class,
    is_address,
    job_script,
    make_cluster,
    remove_stale_credentials,
    remove_stale_scratch,
    run_security,
)
from .kinds import KINDS, ClusterKind, batch_kinds, kinds_text
from .starter import Starter

__all__ = [
    "KINDS",
    "ClusterKind",
    "ClusterSpec",
    "Connection",
    "Starter",
    "CREDENTIALS_PREFIX",
    "batch_kinds",
    "cluster_class",
    "is_address",
    "job_script",
    "kinds_text",
    "make_cluster",
    "remove_stale_credentials",
    "remove_stale_scratch",
    "run_security",
]
