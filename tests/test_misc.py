"""torch_utils.misc: constants, shape asserts, sampler, parameter copies, DDP helpers, summary."""
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from torch_utils import misc


# ---------------------------------------------------------------------------------------------
# constant / nan_to_num

def test_constant_values_defaults_and_cache():
    a = misc.constant([1, 2, 3])
    assert a.dtype == torch.get_default_dtype() and a.device.type == "cpu"
    assert a.tolist() == [1.0, 2.0, 3.0]
    assert misc.constant([1, 2, 3]) is a
    assert misc.constant(np.array([1.0, 2.0, 3.0])) is not a  # float64 value: different key
    b = misc.constant(0.5, shape=[2, 3], dtype=torch.float64)
    assert b.shape == (2, 3) and b.dtype == torch.float64 and b.is_contiguous()
    assert torch.equal(b, torch.full([2, 3], 0.5, dtype=torch.float64))
    assert misc.constant([1, 2, 4]) is not a
    c = misc.constant(np.ones([1, 3, 2, 2]), memory_format=torch.channels_last)
    assert c.is_contiguous(memory_format=torch.channels_last)


def test_nan_to_num_is_torch_version():
    x = torch.tensor([float("nan"), float("inf"), 1.0])
    assert misc.nan_to_num(x, posinf=7.0).tolist() == [0.0, 7.0, 1.0]


# ---------------------------------------------------------------------------------------------
# assert_shape / tracing helpers / profiling

def test_assert_shape():
    x = torch.zeros(2, 3, 4)
    misc.assert_shape(x, [2, None, 4])
    with pytest.raises(AssertionError, match="dimension 1: got 3, expected 5"):
        misc.assert_shape(x, [2, 5, 4])
    with pytest.raises(AssertionError, match="number of dimensions"):
        misc.assert_shape(x, [2, 3])


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.*:DeprecationWarning")
def test_assert_shape_inside_trace():
    def f(x):
        misc.assert_shape(x, [None, 3])
        return x * 2
    traced = torch.jit.trace(f, torch.zeros(2, 3))
    assert torch.equal(traced(torch.ones(4, 3)), torch.full([4, 3], 2.0))


def test_suppress_tracer_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with misc.suppress_tracer_warnings():
            warnings.warn("hidden", torch.jit.TracerWarning)
            warnings.warn("shown", UserWarning)
        warnings.warn("after", torch.jit.TracerWarning)
    assert [str(w.message) for w in caught] == ["shown", "after"]


def test_profiled_function_keeps_name_and_records():
    @misc.profiled_function
    def my_layer(x):
        return x + 1
    assert my_layer.__name__ == "my_layer"
    with torch.autograd.profiler.profile() as prof:
        assert my_layer(torch.ones(1)).item() == 2.0
    assert "my_layer" in {event.name for event in prof.function_events}


# ---------------------------------------------------------------------------------------------
# InfiniteSampler

def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_sampler_without_shuffle_cycles_and_splits_ranks():
    data = list(range(5))
    assert _take(iter(misc.InfiniteSampler(data, shuffle=False)), 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    rank0 = _take(iter(misc.InfiniteSampler(data, rank=0, num_replicas=2, shuffle=False)), 5)
    rank1 = _take(iter(misc.InfiniteSampler(data, rank=1, num_replicas=2, shuffle=False)), 5)
    assert rank0 == [0, 2, 4, 1, 3] and rank1 == [1, 3, 0, 2, 4]


def test_sampler_shuffle_follows_seeded_permutation():
    n = 10
    perm = np.random.RandomState(7).permutation(n).tolist()
    # window 0: no gradual reshuffle, so the permutation repeats exactly.
    assert _take(iter(misc.InfiniteSampler(range(n), seed=7, window_size=0)), 2 * n) == perm + perm
    # window 0.5: after visiting position 0 it is swapped with position (0 - randint(5)) mod n.
    rnd = np.random.RandomState(7)
    order = rnd.permutation(n)
    expected = [int(order[0])]
    j = (0 - rnd.randint(5)) % n
    order[0], order[j] = order[j], order[0]
    expected.append(int(order[1]))
    got = _take(iter(misc.InfiniteSampler(range(n), seed=7)), 2)
    assert got == expected
    assert _take(iter(misc.InfiniteSampler(range(n), seed=8)), n) != _take(iter(misc.InfiniteSampler(range(n), seed=7)), n)


def test_sampler_visits_everything_evenly():
    counts = np.bincount(_take(iter(misc.InfiniteSampler(range(8), seed=1)), 8000), minlength=8)
    assert counts.min() > 800 and counts.max() < 1200


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        misc.InfiniteSampler(range(3), rank=2, num_replicas=2)
    with pytest.raises(ValueError, match="non-empty"):
        misc.InfiniteSampler([])


# ---------------------------------------------------------------------------------------------
# parameters and buffers

class _Net(torch.nn.Module):
    def __init__(self, extra: bool = False):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.register_buffer("stat", torch.zeros(2))
        if extra:
            self.extra = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.fc(x) + self.stat


def test_params_and_buffers_order():
    net = _Net()
    names = [name for name, _ in misc.named_params_and_buffers(net)]
    assert names == ["fc.weight", "fc.bias", "stat"]
    assert [t.data_ptr() for t in misc.params_and_buffers(net)] == [t.data_ptr() for _, t in
                                                                    misc.named_params_and_buffers(net)]


def test_copy_params_and_buffers():
    src = _Net()
    src.stat.fill_(3)
    dst = _Net(extra=True).double().requires_grad_(False)
    dst.fc.weight.requires_grad_(True)
    misc.copy_params_and_buffers(src, dst)
    assert torch.equal(dst.fc.weight, src.fc.weight.double()) and dst.fc.weight.dtype == torch.float64
    assert dst.stat.tolist() == [3.0, 3.0]
    assert dst.extra.item() == 1.0  # not in src: left alone
    assert dst.fc.weight.requires_grad and not dst.fc.bias.requires_grad
    with pytest.raises(AssertionError, match="extra"):
        misc.copy_params_and_buffers(src, dst, require_all=True)


def test_ddp_sync_is_transparent_for_plain_modules():
    with misc.ddp_sync(_Net(), sync=False):
        pass
    with pytest.raises(TypeError):
        with misc.ddp_sync("not a module", sync=True):
            pass


def _ddp_consistency_worker(rank: int, init_file: str, results):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        net = _Net()
        with torch.no_grad():
            net.fc.bias.fill_(float("nan"))  # NaN on both ranks must compare equal
        misc.check_ddp_consistency(net)
        outcome = ["consistent"]
        # Perturb the last tensor checked, so both ranks still issue the same broadcasts.
        if rank == 1:
            net.stat.add_(1)
        try:
            misc.check_ddp_consistency(net)
            outcome.append("no error")
        except AssertionError as err:
            outcome.append(str(err))
        misc.check_ddp_consistency(net, ignore_regex=r"_Net\.stat")
        outcome.append("ignored")
        results.put((rank, outcome))
    finally:
        torch.distributed.destroy_process_group()


def test_check_ddp_consistency_two_processes(tmp_path):
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(_ddp_consistency_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    outcomes = dict(results.get() for _ in range(2))
    assert outcomes[0] == ["consistent", "no error", "ignored"]
    assert outcomes[1] == ["consistent", "_Net.stat differs from rank 0", "ignored"]


# ---------------------------------------------------------------------------------------------
# print_module_summary

def test_print_module_summary(capsys):
    net = torch.nn.Sequential(_Net(), torch.nn.ReLU(), torch.nn.Linear(2, 4))
    x = torch.randn(5, 3)
    out = misc.print_module_summary(net, [x])
    assert torch.equal(out, net(x))
    text = capsys.readouterr().out
    total_params = sum(p.numel() for p in net.parameters())
    assert ["Total", str(total_params), "2", "-", "-"] in [line.split() for line in text.splitlines()]
    assert "[5, 4]" in text and "float32" in text
    rows = {line.split()[0]: line.split()[1:3] for line in text.splitlines() if line.strip()}
    assert rows["0.fc"] == ["8", "-"]  # Linear(3, 2): 6 + 2 parameters
    assert rows["0"] == ["-", "2"]  # _Net itself owns only the buffer 'stat'
