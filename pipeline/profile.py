"""One stage profiler for every run: wall time and summed task time per stage.

Stages are named blocks of work (``cut``, ``sim``, ``gnt``, ``flt``,
``eval``). Inside ``with profiler.stage("flt"): ...`` the wall time of the
block is measured, and every Dask task that runs in it is recorded — from
the distributed scheduler's task stream when a client is active, else from
a local scheduler callback. A task whose key starts with a stage name
(``cut-…``, ``sim-…``, ``gnt-…``, ``flt-…``, ``eval-…``) is counted in that
stage; other tasks (reads, slicing, overlap bookkeeping) in the stage of the
block they ran in. Task names survive where graphs are computed without
low-level fusion (the embedding graphs are); a fused task counts in the stage
of its block.

In a dataflow, stages run at the same time (windows are cut while others are
embedded). A block's wall time is therefore shared among the stages whose
tasks ran in it, in proportion to their task seconds, so that the stage walls
add up to the run's wall time as in the paper's stage table; each stage also
reports its summed task seconds and its span (first task start to last end).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dask.callbacks import Callback

__all__ = ["StageProfiler", "STAGES", "key_prefix", "task_label"]

STAGES = ("cut", "sim", "gnt", "flt", "eval")


def key_prefix(key: object) -> str:
    """The name part of a dask key: ``('flt-median-3f2a', 0, 1)`` -> ``flt-median``."""
    name = key[0] if isinstance(key, tuple) else key
    name = str(name)
    head, sep, tail = name.rpartition("-")
    if sep and len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail):
        return head
    return name


def task_label(text: str) -> str:
    """``text`` made safe inside a task key: runs of characters other than letters,
    digits, ``.`` and ``_`` become ``_`` (so a label holds no ``-``, and a key such
    as ``sim-<label>-<token>`` splits back into its parts)."""
    return re.sub(r"[^A-Za-z0-9._]+", "_", text) or "_"


@contextmanager
def left_on_success(manager) -> Iterator[None]:
    """Enter ``manager`` and leave it only when the block succeeds: a report or task stream
    gathered on exit (a round trip to a busy scheduler, a second or more) is skipped when the
    block fails or is interrupted, so Ctrl-C cancels the run's work at once."""
    manager.__enter__()
    yield
    manager.__exit__(None, None, None)


@dataclass
class _Stage:
    wall: float = 0.0
    task: float = 0.0
    tasks: int = 0
    first: float = field(default=float("inf"))
    last: float = field(default=float("-inf"))

    def add(self, start: float, stop: float) -> None:
        self.task += stop - start
        self.tasks += 1
        self.first = min(self.first, start)
        self.last = max(self.last, stop)


class StageProfiler:
    """Collects wall and task seconds per stage over any number of compute calls."""

    def __init__(self, client=None) -> None:
        self.client = client
        self._stages: dict[str, _Stage] = defaultdict(_Stage)
        self._by_prefix: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a block of work as stage ``name`` and attribute the tasks run inside it."""
        start = time.perf_counter()
        if self.client is not None:
            from distributed import get_task_stream

            # the tasks the scheduler ran from here on, fetched only when the block succeeds
            # (an interrupted run cancels its work without waiting on the scheduler first)
            ts = get_task_stream(client=self.client)
            with left_on_success(ts):
                yield
            records = [
                (r["key"], s["start"], s["stop"])
                for r in ts.data
                for s in r.get("startstops", ())
                if s.get("action") == "compute"
            ]
        else:
            collector = _LocalTasks()
            with collector:
                yield
            records = collector.records
        wall = time.perf_counter() - start
        busy: dict[str, float] = defaultdict(float)
        for key, t0, t1 in records:
            prefix = key_prefix(key)
            owner = next((s for s in STAGES if prefix == s or prefix.startswith(s + "-")), name)
            self._stages[owner].add(t0, t1)
            self._by_prefix[prefix] += t1 - t0
            busy[owner] += t1 - t0
        total = sum(busy.values())
        if total <= 0:
            self._stages[name].wall += wall
        else:
            for owner, seconds in busy.items():
                self._stages[owner].wall += wall * seconds / total

    def add_wall(self, name: str, seconds: float) -> None:
        """Count ``seconds`` of wall time measured elsewhere into stage ``name``."""
        self._stages[name].wall += seconds

    def prefix_seconds(self) -> dict[str, float]:
        """Summed task seconds per task-name prefix (:func:`key_prefix`), e.g. per case
        (``flt-case-3``) or per labelled scene (``sim-0.jpg``)."""
        return dict(self._by_prefix)

    def table(self) -> dict[str, dict[str, float]]:
        """{stage: {wall, task, span, tasks}} in the order stages first appeared."""
        out = {}
        for name in [*STAGES, *self._stages]:
            st = self._stages.get(name)
            if st is None or name in out:
                continue
            span = st.last - st.first if st.tasks else 0.0
            out[name] = {"wall": st.wall, "task": st.task, "span": span, "tasks": st.tasks}
        return out


class _LocalTasks(Callback):
    """Records (key, start, stop) of tasks run by the local schedulers."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[object, float, float]] = []
        self._started: dict[object, float] = {}

    def _pretask(self, key, dsk, state):
        self._started[key] = time.time()

    def _posttask(self, key, result, dsk, state, worker_id):
        self.records.append((key, self._started.pop(key, time.time()), time.time()))
