"""Where a run's Dask cluster comes from — the only module that knows.

- ``threads=True`` (what one scene needs): no cluster at all, dask's threaded
  scheduler in this process — nothing to start or stop;
- default: an embedded ``distributed.LocalCluster`` sized for this machine
  (no set-up; it lives as long as the run);
- ``scheduler="tcp://host:8786"``: an existing scheduler (started by hand, by
  dask-jobqueue on an HPC system, or by the Dask Kubernetes operator);
- ``gpu=True``: ``dask_cuda.LocalCUDACluster``, one worker per GPU.

Workers of a GPU cluster declare the resource ``GPU``; encoder tasks ask for
it (:attr:`RunCluster.encoder_resources`), so that they only run where a GPU
is. Encoders are loaded once per worker process by the tasks themselves.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

from ..errors import ClusterError, MissingDependencyError, ParameterError

__all__ = [
    "MAX_THREADS",
    "RunCluster",
    "check_cluster",
    "unseen_paths",
    "connect",
    "default_layout",
    "max_workers",
]

log = logging.getLogger(__name__)

MAX_THREADS = 256  # threads per worker
WORKER_MEMORY = 256 * 2**20  # the least a worker process needs to hold its chunks
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")  # distributed's comm backends
_HOST = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]+")  # a name, an IPv4 or an IPv6 address


@dataclass
class RunCluster:
    """A connected Dask client and what the run needs to know about its workers
    (``client`` is None for the threaded scheduler of this process)."""

    client: object | None
    kind: str  # "local", "address" or "gpu"
    address: str
    workers: int
    threads: int
    gpu: bool = False
    info: dict = field(default_factory=dict)

    @property
    def encoder_resources(self) -> dict[str, float] | None:
        """Dask resources encoder tasks must ask for (``{"GPU": 1}`` on GPU clusters)."""
        return {"GPU": 1} if self.gpu else None

    def describe(self) -> dict:
        """A JSON-able description for run.json."""
        return {
            "kind": self.kind,
            "address": self.address,
            "workers": self.workers,
            "threads": self.threads,
            "gpu": self.gpu,
            **self.info,
        }


def unseen_paths(cluster: RunCluster, paths: list[str]) -> list[str]:
    """The local ``paths`` that some worker of an existing scheduler's cluster cannot see
    (the workers of a cluster this process started run on this machine: none), so that a
    run refuses at once to hand workers paths they cannot read or write."""
    if cluster.kind != "address" or cluster.client is None or not paths:
        return []
    seen = cluster.client.run(_existing, list(paths))
    return [p for i, p in enumerate(paths) if not all(flags[i] for flags in seen.values())]


def _existing(paths: list[str]) -> list[bool]:
    return [os.path.exists(p) for p in paths]


def default_layout(cores: int | None = None) -> tuple[int, int]:
    """(worker processes, threads per worker) for a machine with ``cores`` cores.

    One thread per process up to 4 processes (numpy, OpenCV and torch release
    the GIL but keep their own thread pools; processes isolate them), then
    more threads per process.
    """
    cores = cores or os.cpu_count() or 1
    workers = min(cores, 4)
    return workers, max(1, cores // workers)


def max_workers() -> int:
    """The most worker processes this machine can hold: 8 per core, and 256 MiB each."""
    cores = os.cpu_count() or 1
    return max(1, min(8 * cores, psutil.virtual_memory().total // WORKER_MEMORY))


def check_cluster(scheduler: str | None = None, *, gpu: bool = False) -> None:
    """ParameterError for a ``scheduler`` that is not a Dask scheduler address, or that
    comes with ``gpu`` (a GPU cluster is either the user's or embedded)."""
    if scheduler is None:
        return
    reason = _address_problem(scheduler)
    if reason:
        shown = scheduler if isinstance(scheduler, str) else type(scheduler).__name__
        raise ParameterError(
            f"--scheduler must be a Dask scheduler address such as tcp://host:8786 ({reason}), "
            f"got {shown!r}"
        )
    if gpu:
        raise ParameterError(
            "--scheduler and --gpu exclude each other: a GPU cluster is either yours or embedded"
        )


def _address_problem(address: object) -> str | None:
    """Why ``address`` is not a scheduler address distributed can connect to, or None."""
    if not isinstance(address, str) or "://" not in address:
        return "no scheme://"
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as e:  # an unclosed IPv6 bracket, a port that is not a number, ...
        return str(e)
    if parts.scheme not in SCHEMES:
        return f"the scheme must be one of {', '.join(SCHEMES)}"
    if parts.scheme == "inproc":
        return None
    host = parts.hostname
    if not host:
        return "no host"
    if not _HOST.fullmatch(host):
        return "not a host name or IP address"
    if port is not None and not 1 <= port <= 65535:
        return "the port must be from 1 to 65535"
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
        return "only scheme://host:port"
    return None


@contextmanager
def connect(
    scheduler: str | None = None,
    *,
    gpu: bool = False,
    workers: int | None = None,
    threads: int | None = None,
    processes: bool = True,
    local_threads: bool = False,
    timeout: float = 10.0,
) -> Iterator[RunCluster]:
    """Yield a :class:`RunCluster`; an embedded cluster is closed on exit.

    ``local_threads``: no cluster, dask's threaded scheduler here (``threads`` of them)."""
    if local_threads:
        if scheduler or gpu or workers:
            raise ParameterError("local threads take no scheduler, GPU cluster or workers")
        n = threads or os.cpu_count() or 1
        import dask
        import dask.threaded

        with dask.config.set(scheduler=dask.threaded.get, num_workers=n):
            yield RunCluster(None, "threads", "", workers=1, threads=n)
        return

    check_cluster(scheduler, gpu=gpu)
    from distributed import Client

    _quiet_distributed()

    if scheduler:
        try:
            client = _client(Client, scheduler, timeout)
        except Exception as e:  # noqa: BLE001 - refused, timed out, or a comm it cannot use
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler} ({type(e).__name__}: {e}); "
                "check the address, or leave out --scheduler to use an embedded cluster"
            ) from None
        try:
            info = client.scheduler_info()["workers"]
            has_gpu = any(w.get("resources", {}).get("GPU") for w in info.values())
            yield RunCluster(
                client,
                "address",
                scheduler,
                workers=len(info),
                threads=sum(w.get("nthreads", 1) for w in info.values()),
                gpu=has_gpu,
            )
        finally:
            client.close()
        return

    cluster = _gpu_cluster() if gpu else _local_cluster(workers, threads, processes)
    try:
        client = Client(cluster)
        if logging.getLogger("selo").getEffectiveLevel() > logging.DEBUG:
            _quiet_workers(client)
        info = client.scheduler_info()["workers"]
        yield RunCluster(
            client,
            "gpu" if gpu else "local",
            cluster.scheduler_address,
            workers=len(info),
            threads=sum(w.get("nthreads", 1) for w in info.values()),
            gpu=gpu,
            info={"processes": processes},
        )
    finally:
        with suppress(Exception):
            client.close()
        with suppress(Exception):
            cluster.close()


def _client(client_class, address: str, timeout: float):
    """A client of the scheduler at ``address``. A client that fails to connect has already
    made itself dask's default (the ``scheduler`` setting, and distributed's global client,
    which ``get_client()`` and every later compute in this process would then wait on);
    both are put back as they were."""
    import dask
    from distributed import client as module

    keys = ("scheduler", "shuffle")
    before = {k: dask.config.config[k] for k in keys if k in dask.config.config}
    known = {id(c) for c in module._global_clients.values()}
    try:
        return client_class(address, timeout=timeout)
    except BaseException:
        for k in keys:
            if k in before:
                dask.config.config[k] = before[k]
            else:
                dask.config.config.pop(k, None)
        for c in list(module._global_clients.values()):  # (distributed has no public way)
            if id(c) not in known:
                module._del_global_client(c)
        raise


class _TaskFailures(logging.Filter):
    """Drops a worker's "Compute Failed" report (the task, its exception and traceback):
    the client raises the task's exception itself, so the user sees it once, as one
    line for a :class:`~selo.errors.SeloError` (``--debug`` shows the report)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


_TASK_FAILURES = _TaskFailures()


def _quiet_workers(client) -> None:
    """Drop "Compute Failed" reports in the workers of an embedded cluster too (the logs
    of worker processes go straight to the terminal), also of workers started later."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class QuietTaskFailures(WorkerPlugin):
        name = "selo-quiet-task-failures"
        idempotent = True

        def setup(self, worker) -> None:
            from .connect import _TASK_FAILURES

            logging.getLogger("distributed.worker").addFilter(_TASK_FAILURES)

    client.register_plugin(QuietTaskFailures())


def _quiet_distributed() -> None:
    """Keep distributed's start/stop chatter and its task failure reports out of the
    user's terminal (unless debugging)."""
    debugging = logging.getLogger("selo").getEffectiveLevel() <= logging.DEBUG
    worker = logging.getLogger("distributed.worker")
    if debugging:
        worker.removeFilter(_TASK_FAILURES)
        return
    worker.addFilter(_TASK_FAILURES)
    # an embedded cluster's HTTP server moves to another port when 8787 is taken; fine here
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.ERROR)


def _local_cluster(workers: int | None, threads: int | None, processes: bool):
    from distributed import LocalCluster

    default_workers, default_threads = default_layout()
    n = workers or (default_workers if processes else 1)
    t = threads or (default_threads if processes else (os.cpu_count() or 1))
    memory = int(psutil.virtual_memory().total * 0.8 / n)
    # worker processes get thread-pool sizes that match their thread count
    extra = {}
    if processes:
        extra["env"] = {
            v: str(t) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        }
    log.debug("starting a local Dask cluster: %d workers x %d threads", n, t)
    try:
        return LocalCluster(
            n_workers=n,
            threads_per_worker=t,
            processes=processes,
            memory_limit=memory if processes else 0,
            # no dashboard, and the scheduler's HTTP server on a free port (not 8787,
            # which another cluster on the machine may hold: no port warning)
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
            **extra,
        )
    except OSError as e:
        raise ClusterError(f"cannot start a local Dask cluster ({e})") from None


def _gpu_cluster():
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise MissingDependencyError(
            "--gpu needs dask-cuda on a machine with NVIDIA GPUs: "
            "pip install 'selo[gpu]' (or pip install dask-cuda)"
        ) from None
    try:
        return LocalCUDACluster(
            resources={"GPU": 1},
            dashboard_address=":0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.ERROR,
        )
    except Exception as e:  # noqa: BLE001 - dask-cuda raises many kinds when no GPU is usable
        raise ClusterError(
            f"cannot start a GPU cluster with dask-cuda ({type(e).__name__}: {e})"
        ) from None
