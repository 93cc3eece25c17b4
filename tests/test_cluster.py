"""cluster/: embedded clusters, encoder once per worker, GPU resource routing (simulated)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from distributed import Client, get_task_stream
from scenes import colour_scene, write_geotiff_scene

from selo.cluster import RunCluster, connect, default_layout
from selo.errors import ClusterError, ParameterError
from selo.pipeline.cache import Cache
from selo.pipeline.profile import StageProfiler, key_prefix
from selo.pipeline.scene import open_scene
from selo.pipeline.windows import window_table
from selo.selo_tasks.options import Options
from selo.selo_tasks.session import RunContext, build_context


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, (1, 1)), (2, (2, 1)), (4, (4, 1)), (16, (4, 4))]
)
def test_default_layout(cores, expected):
    assert default_layout(cores) == expected


def context(cluster: RunCluster, cache) -> RunContext:
    return build_context(Options(cache=str(cache), batch=4, show_progress=False), cluster)


@pytest.mark.slow
def test_process_cluster_loads_the_encoder_once_per_worker(tmp_path):
    scene = open_scene(
        write_geotiff_scene(tmp_path / "s.tif", colour_scene((600, 800))), cache=Cache(tmp_path)
    )
    with connect(workers=2, threads=1) as cluster:
        assert cluster.workers == 2 and cluster.describe()["kind"] == "local"
        embedded = context(cluster, tmp_path / "c").driver.embed(
            [(scene, window_table(600, 800, (128, 256)))]
        )[0]
        assert embedded.has_data.all() and len(embedded.embeddings) > 20  # many batches of 4
        from selo.models import registry

        loaded = cluster.client.run(lambda: len(registry._CACHE))
        assert len(loaded) == 2 and set(loaded.values()) == {1}  # one encoder per process


def test_encoder_tasks_run_only_where_the_gpu_resource_is(tmp_path):
    scene = open_scene(
        write_geotiff_scene(tmp_path / "s.tif", colour_scene((400, 500))), cache=Cache(tmp_path)
    )
    from distributed import Scheduler, SpecCluster, Worker

    workers = {
        "plain": {"cls": Worker, "options": {"nthreads": 1}},
        "gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1}}},
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None}}
    with SpecCluster(workers=workers, scheduler=scheduler) as sc, Client(sc) as client:
        cluster = RunCluster(client, "gpu", sc.scheduler_address, workers=2, threads=2, gpu=True)
        assert cluster.encoder_resources == {"GPU": 1}
        with get_task_stream(client=client) as ts:
            context(cluster, tmp_path / "c").driver.embed([(scene, window_table(400, 500, (128,)))])
        by_prefix: dict[str, set] = {}
        for r in ts.data:
            stage = key_prefix(r["key"]).split("-")[0]  # sim-<scene label>-<token>: sim
            by_prefix.setdefault(stage, set()).add(r["worker"])
        assert by_prefix["sim"] == {
            sc.workers["gpu"].address
        }  # encoder tasks only on the GPU worker


def test_connect_refuses_contradictory_options():
    with pytest.raises(ParameterError, match="exclude each other"):
        with connect("tcp://127.0.0.1:1", gpu=True):
            pass
    with pytest.raises(ClusterError, match="cannot reach"):
        with connect("tcp://127.0.0.1:9", timeout=1):
            pass


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "tls://127.0.0.1:9"])
def test_a_scheduler_not_reached_leaves_dask_as_it_was(address):
    """A client that fails to connect made itself dask's scheduler and distributed's global
    client: later computes in the process asked for it ("no Client active") or waited on it
    for ever."""
    import dask
    import dask.array as da
    from distributed import get_client

    before = dask.config.get("scheduler", None)
    with pytest.raises(ClusterError, match="cannot reach"):
        with connect(address, timeout=1):
            pass
    assert dask.config.get("scheduler", None) == before
    with pytest.raises(ValueError, match="No global client"):
        get_client()
    assert int(da.ones(4, chunks=2).sum().compute()) == 4


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("tcp://[::1", "Invalid IPv6 URL"),
        ("tcp://h:99999", "Port out of range"),
        ("tcp://h:0", "the port must be from 1 to 65535"),
        ("tcp://", "no host"),
        ("tcp://a b:1", "not a host name"),
        ("foo://h:1", "the scheme must be one of"),
        ("tcp://h:1/x", "only scheme://host:port"),
        ("h:8786", "no scheme://"),
        (8786, "no scheme://"),
    ],
)
def test_scheduler_addresses_are_checked_before_connecting(address, reason):
    from selo.cluster import check_cluster

    with pytest.raises(ParameterError, match=re.escape(reason)):
        check_cluster(address)
    with pytest.raises(ParameterError, match="--scheduler must be a Dask scheduler address"):
        with connect(address):
            pass


@pytest.mark.parametrize(
    "address", ["tcp://h:8786", "tcp://[::1]:8786", "tls://10.0.0.5", "inproc://x"]
)
def test_scheduler_addresses_that_are_addresses(address):
    from selo.cluster import check_cluster

    check_cluster(address)


def test_profiler_attributes_tasks_by_stage_with_and_without_a_client():
    import dask
    import dask.array as da

    def work():
        x = da.ones((400, 400), chunks=100)
        cut = x.map_blocks(lambda b: b + 1, token="cut-demo")
        sim = cut.map_blocks(lambda b: b * 2, token="sim-demo")
        return sim.sum()

    local = StageProfiler()
    with local.stage("flt"), dask.config.set(scheduler="threads"):
        work().compute(optimize_graph=False)  # keep the task names (fusion renames them)
    table = local.table()
    assert {"cut", "sim", "flt"} <= set(
        table
    )  # unprefixed tasks (ones, sum) count in the block's stage
    assert table["cut"]["tasks"] == 16 and table["sim"]["tasks"] == 16
    assert (
        abs(
            sum(s["wall"] for s in table.values())
            - table["flt"]["wall"]
            - table["cut"]["wall"]
            - table["sim"]["wall"]
        )
        < 1e-9
    )

    with connect(processes=False) as cluster:
        remote = StageProfiler(cluster.client)
        with remote.stage("gnt"):
            cluster.client.compute(work(), optimize_graph=False).result()
        t = remote.table()
        assert t["cut"]["tasks"] == 16 and t["sim"]["tasks"] == 16 and t["gnt"]["tasks"] >= 1
        assert np.isclose(
            sum(s["wall"] for s in t.values()),
            t["gnt"]["wall"] + t["cut"]["wall"] + t["sim"]["wall"],
        )


def _nap(i):
    import time

    time.sleep(0.2)
    return i


def _nap(i):
    import time

    time.sleep(0.2)
    return i


def test_an_interrupted_session_stops_at_once(tmp_path):
    """Ctrl-C in a profiled run: the queued tasks are cancelled, not run to the end, and
    neither the performance report nor a stage's task stream is gathered first."""
    import time

    from selo.selo_tasks.session import run_session

    report = tmp_path / "profile.html"
    with pytest.raises(KeyboardInterrupt):
        with run_session(Options(threads=1, show_progress=False), profile_html=report) as ctx:
            futures = ctx.cluster.client.map(_nap, range(50), key=[f"cut-{i}" for i in range(50)])
            with ctx.profiler.stage("cut"):
                time.sleep(0.3)
                raise KeyboardInterrupt
    assert sum(f.status == "finished" for f in futures) < 10
    assert not report.exists()
    assert ctx.profiler.table() == {}  # an interrupted stage records nothing


def test_left_on_success_leaves_only_when_the_block_succeeds():
    from selo.pipeline.profile import left_on_success

    events = []

    class Manager:
        def __enter__(self):
            events.append("enter")

        def __exit__(self, *exc):
            events.append("exit")

    with left_on_success(Manager()):
        pass
    with pytest.raises(ValueError), left_on_success(Manager()):
        raise ValueError
    assert events == ["enter", "exit", "enter"]


def test_key_prefix():
    assert key_prefix(("flt-median-3f2ab8c91d0e4a7b", 0, 1)) == "flt-median"
    assert key_prefix("sim-0123456789abcdef0123") == "sim"
    assert key_prefix("gnt-case-3-9f8e7d6c5b4a3f2e") == "gnt-case-3"
    assert key_prefix("plain") == "plain"


def test_task_labels_and_seconds_per_prefix():
    import dask

    from selo.pipeline.profile import task_label

    assert task_label("scene 1-b.tif") == "scene_1_b.tif" and task_label("") == "_"
    assert key_prefix(f"sim-{task_label('0.jpg')}-0123456789abcdef") == "sim-0.jpg"
    profiler = StageProfiler()
    with profiler.stage("flt"):
        tasks = [
            dask.delayed(sum)([i], dask_key_name=f"eval-case-{i}-0123456789abcdef{i}")
            for i in range(2)
        ]
        dask.compute(*tasks, scheduler="sync")
    seconds = profiler.prefix_seconds()
    assert set(seconds) == {"eval-case-0", "eval-case-1"}
    assert sum(seconds.values()) == pytest.approx(profiler.table()["eval"]["task"])
