"""One record per cluster kind: its class, how it names our settings, which it lacks, and its quirks.

The CLI's ``--cluster`` rule and help, and the packaged ``audioprep.yaml``'s
comment, are derived from :data:`KINDS`; a new kind is a new record here.
Nothing here imports dask-jobqueue: a kind's class is imported when it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _lsf(kwargs: dict, config) -> None:
    """LSF's -W takes [hours:]minutes, not HH:MM:SS."""
    if str(kwargs.get("walltime", "")).count(":") == 2:
        kwargs["walltime"] = str(kwargs["walltime"]).rsplit(":", 1)[0]


def _htcondor(kwargs: dict, config) -> None:
    """HTCondor requires a disk request: as much as the memory, unless the user's jobqueue config gives one."""
    if config("jobqueue.htcondor.disk") is None:
        kwargs["disk"] = kwargs.get("memory", "2GiB")


@dataclass(frozen=True)
class ClusterKind:
    """What differs between the places a run's workers can live."""

    name: str
    cls: str  # "module:Class", imported only when used
    batch: bool  # submits batch jobs (dask-jobqueue), with job settings and job logs
    renamed: dict = field(default_factory=dict)  # our job setting -> the scheduler's word for it
    unsupported: tuple = ()  # job settings the scheduler has no such thing for (dropped)
    quirk: Callable | None = None  # quirk(kwargs, config_get): adjust the cluster's keywords in place


#: The kinds, in the order the help lists them.
KINDS = {
    k.name: k
    for k in (
        ClusterKind("local", "distributed:LocalCluster", batch=False),
        ClusterKind("slurm", "dask_jobqueue:SLURMCluster", batch=True),
        ClusterKind("pbs", "dask_jobqueue:PBSCluster", batch=True),
        ClusterKind("sge", "dask_jobqueue:SGECluster", batch=True, renamed={"account": "project"}),
        ClusterKind("lsf", "dask_jobqueue:LSFCluster", batch=True, renamed={"account": "project"}, quirk=_lsf),
        ClusterKind(
            "htcondor",
            "dask_jobqueue:HTCondorCluster",
            batch=True,
            unsupported=("queue", "account", "walltime"),
            quirk=_htcondor,
        ),
    )
}


def batch_kinds() -> list:
    return [k for k, v in KINDS.items() if v.batch]


def kinds_text() -> str:
    """The kinds as the help and the packaged YAML's comment list them."""
    return ", ".join(KINDS)
