"""torch_utils.training_stats: report / Collector semantics, in one process and over two gloo ranks."""
import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from torch_utils import training_stats


@pytest.fixture(autouse=True)
def fresh_stats(monkeypatch):
    """Each test starts with no reported names and single-process settings."""
    monkeypatch.setattr(training_stats, "_counters", {})
    monkeypatch.setattr(training_stats, "_cumulative", {})
    monkeypatch.setattr(training_stats, "_rank", 0)
    monkeypatch.setattr(training_stats, "_sync_device", None)
    monkeypatch.setattr(training_stats, "_sync_called", False)


def test_report_returns_value_unchanged():
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    assert training_stats.report("Loss/t", t) is t
    values = [3, 4]
    assert training_stats.report("Loss/list", values) is values
    assert training_stats.report0("Loss/zero", 5.0) == 5.0


def test_collector_mean_std_num():
    collector = training_stats.Collector(regex="Loss/.*")
    a = np.array([1.0, 2.0, 4.0, 7.0])
    training_stats.report("Loss/a", torch.tensor(a[:3], requires_grad=True))
    training_stats.report("Loss/a", a[3])
    training_stats.report("Loss/empty", [])
    training_stats.report("Other/x", 1.0)
    collector.update()
    assert collector.names() == ["Loss/a", "Loss/empty"]
    assert collector.num("Loss/a") == 4
    assert collector.mean("Loss/a") == pytest.approx(a.mean())
    assert collector["Loss/a"] == pytest.approx(3.5)
    assert collector.std("Loss/a") == pytest.approx(a.std())  # population std
    assert collector.num("Loss/empty") == 0 and math.isnan(collector.mean("Loss/empty"))
    assert math.isnan(collector.std("Loss/empty"))
    stats = collector.as_dict()
    assert set(stats) == {"Loss/a", "Loss/empty"}
    assert stats["Loss/a"].num == 4 and stats["Loss/a"].mean == pytest.approx(3.5)
    with pytest.raises(KeyError):
        collector.mean("Other/x")


def test_update_reports_only_new_values_and_keep_previous():
    keep = training_stats.Collector(regex="v")
    fresh = training_stats.Collector(regex="v", keep_previous=False)
    training_stats.report("v", [1.0, 3.0])
    keep.update()
    fresh.update()
    assert keep.mean("v") == fresh.mean("v") == 2.0
    training_stats.report("v", [10.0])
    keep.update()  # only this collector consumes the new value now...
    assert keep.num("v") == 1 and keep.mean("v") == 10.0 and keep.std("v") == 0.0
    keep.update()  # nothing new: keep_previous shows the last non-empty update
    assert keep.mean("v") == 10.0
    fresh.update()  # ...and the other collector still sees it once
    assert fresh.num("v") == 1 and fresh.mean("v") == 10.0
    fresh.update()
    assert fresh.num("v") == 0 and math.isnan(fresh["v"])


def test_collector_ignores_values_reported_before_it_existed():
    training_stats.report("early", [100.0])
    collector = training_stats.Collector()
    training_stats.report("early", [1.0])
    collector.update()
    assert collector.num("early") == 1 and collector.mean("early") == 1.0


def test_init_multiprocessing_must_come_first():
    training_stats.init_multiprocessing(rank=0, sync_device=None)
    training_stats.report("x", 1.0)
    training_stats.Collector().update()
    with pytest.raises(RuntimeError, match="before the first"):
        training_stats.init_multiprocessing(rank=0, sync_device=None)


def _two_rank_worker(rank: int, init_file: str, results):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        training_stats.init_multiprocessing(rank, torch.device("cpu"))
        collector = training_stats.Collector(regex="Loss/.*", keep_previous=False)
        training_stats.report("Loss/both", torch.tensor([1.0, 2.0]) if rank == 0 else torch.tensor([6.0]))
        training_stats.report0("Loss/rank0", 10.0 + rank)
        training_stats.report("Loss/only1", [] if rank == 0 else [5.0, 7.0])
        collector.update()
        first = collector.as_dict()
        training_stats.report("Loss/both", [])
        training_stats.report0("Loss/rank0", [])
        training_stats.report("Loss/only1", [3.0])
        collector.update()
        second = collector.as_dict()
        results.put((rank, first, second))
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_with_gloo(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(_two_rank_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    gathered = [results.get() for _ in range(2)]
    for rank, first, second in gathered:
        both = np.array([1.0, 2.0, 6.0])
        assert first["Loss/both"]["num"] == 3
        assert first["Loss/both"]["mean"] == pytest.approx(both.mean())
        assert first["Loss/both"]["std"] == pytest.approx(both.std())
        assert (first["Loss/rank0"]["num"], first["Loss/rank0"]["mean"]) == (1, 10.0)
        assert (first["Loss/only1"]["num"], first["Loss/only1"]["mean"]) == (2, 6.0)
        assert second["Loss/both"]["num"] == 0 and math.isnan(second["Loss/both"]["mean"])
        assert (second["Loss/only1"]["num"], second["Loss/only1"]["mean"]) == (2, 3.0)
    assert sorted(rank for rank, _, _ in gathered) == [0, 1]
