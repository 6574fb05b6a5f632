"""The EWC Fisher: vectorised == loop, matches a direct computation, deterministic, cached."""
import warnings

import pytest
import torch

from stylegan_unlearn.method import fisher as fisher_mod
from stylegan_unlearn.method.fisher import compute_fisher, load_fisher, load_or_compute_fisher
from stylegan_unlearn.method.params import select_params
from tiny import FakeDDP, tiny_networks


@pytest.mark.parametrize("c_dim", [0, 3])
def test_vectorised_equals_loop(c_dim):
    G, D = tiny_networks(c_dim)
    fast = compute_fisher(G, D, num_samples=6, chunk=4, method="vmap")
    slow = compute_fisher(G, D, num_samples=6, method="loop")
    assert list(fast) == [n for n, _ in select_params(G, "synthesis")]
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-12)
        assert (fast[name] >= 0).all()
    assert sum(float(t.sum()) for t in fast.values()) > 0


def test_matches_direct_gradient_of_one_sample():
    G, D = tiny_networks()
    fisher = compute_fisher(G, D, num_samples=1, style_mixing_prob=0.0, seed=5)
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(5))
    G.eval(), D.eval()
    named = select_params(G, "synthesis")
    logit = D(G(z, torch.zeros([1, 0]), noise_mode="const"), torch.zeros([1, 0])).sum()
    grads = torch.autograd.grad(logit, [p for _, p in named])
    for (name, _), g in zip(named, grads):
        torch.testing.assert_close(fisher[name], g.square(), rtol=1e-4, atol=1e-12)


def test_deterministic_for_a_seed_and_restores_training_mode():
    G, D = tiny_networks()
    G.train(), D.train()
    a = compute_fisher(G, D, num_samples=4, seed=1)
    b = compute_fisher(G, D, num_samples=4, seed=1)
    c = compute_fisher(G, D, num_samples=4, seed=2)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)
    assert G.training and D.training and G.synthesis.b8.conv0.training


def test_all_params_and_wrapped_pair():
    G, D = tiny_networks()
    direct = compute_fisher(G, D, params="all", num_samples=2)
    wrapped = compute_fisher((FakeDDP(G.mapping), FakeDDP(G.synthesis)), FakeDDP(D), params="all", num_samples=2)
    assert "mapping.fc0.weight" in direct and "synthesis.b4.const" in direct
    assert list(direct) == list(wrapped) or sorted(direct) == sorted(wrapped)
    for name in direct:
        torch.testing.assert_close(direct[name], wrapped[name])


def test_vmap_failure_falls_back_to_loop_with_one_warning(monkeypatch):
    G, D = tiny_networks()
    expected = compute_fisher(G, D, num_samples=3, method="loop")

    def broken(*args, **kwargs):
        raise RuntimeError("no batching rule")

    monkeypatch.setattr(fisher_mod, "_fisher_vmap", broken)
    with pytest.warns(RuntimeWarning, match="per-sample loop"):
        got = compute_fisher(G, D, num_samples=3)
    assert all(torch.equal(got[n], expected[n]) for n in got)


def test_cache_is_written_then_reused_and_refreshed_for_other_weights(tmp_path, monkeypatch):
    G, D = tiny_networks()
    cache = tmp_path / "fisher.pt"
    first = load_or_compute_fisher(G, D, cache, num_samples=3)
    stored, meta = load_fisher(cache)
    assert meta["num_samples"] == 3 and list(stored) == list(first)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the cached Fisher should have been reused")

    monkeypatch.setattr(fisher_mod, "compute_fisher", must_not_run)
    again = load_or_compute_fisher(G, D, cache, num_samples=3)
    assert all(torch.equal(first[n], again[n]) for n in first)
    monkeypatch.undo()

    with pytest.warns(RuntimeWarning, match="recomputing"):
        load_or_compute_fisher(G, D, cache, num_samples=3, seed=9)  # another seed is another estimate
    assert load_fisher(cache)[1]["seed"] == 9

    with torch.no_grad():
        G.synthesis.b8.conv0.weight.add_(0.5)
    with pytest.warns(RuntimeWarning, match="recomputing"):
        fresh = load_or_compute_fisher(G, D, cache, num_samples=3)
    assert not torch.equal(fresh["synthesis.b8.conv0.weight"], first["synthesis.b8.conv0.weight"])


def test_bad_cache_and_arguments_are_clear(tmp_path):
    G, D = tiny_networks()
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="Fisher file"):
        load_fisher(bad)
    with pytest.raises(FileNotFoundError):
        load_fisher(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="num_samples"):
        compute_fisher(G, D, num_samples=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fisher = load_or_compute_fisher(G, D, bad, num_samples=2)  # unreadable cache → recomputed and replaced
    assert list(load_fisher(bad)[0]) == list(fisher)


def _brute_force_fisher(G, D, num_samples, group, seed):
    """F = (1/N) Σ_n (∂ℓ_n/∂θ)², each group of `group` consecutive samples one D batch, written out directly."""
    z = torch.randn([num_samples, G.z_dim], generator=torch.Generator().manual_seed(seed))
    c = torch.zeros([num_samples, 0])
    G.eval(), D.eval()
    named = select_params(G, "synthesis")
    total = [torch.zeros_like(p) for _, p in named]
    for start in range(0, num_samples, group):
        logits = D(G(z[start:start + group], c[start:start + group], noise_mode="const"), c[start:start + group])
        for logit in logits.flatten():
            grads = torch.autograd.grad(logit, [p for _, p in named], retain_graph=True)
            total = [t + g.square() for t, g in zip(total, grads)]
    return {name: t / num_samples for (name, _), t in zip(named, total)}


def test_discriminator_sees_minibatch_statistics_of_its_group():
    G, D = tiny_networks()
    assert fisher_mod.minibatch_group_size(D, 32) == 4 and fisher_mod.minibatch_group_size(D, 2) == 2
    grouped = compute_fisher(G, D, num_samples=8, style_mixing_prob=0.0, seed=3, chunk=8, method="vmap")
    looped = compute_fisher(G, D, num_samples=8, style_mixing_prob=0.0, seed=3, method="loop")
    alone = compute_fisher(G, D, num_samples=8, style_mixing_prob=0.0, seed=3, mbstd_group=1)
    expected = _brute_force_fisher(G, D, num_samples=8, group=4, seed=3)
    expected_alone = _brute_force_fisher(G, D, num_samples=8, group=1, seed=3)
    for name in expected:
        torch.testing.assert_close(grouped[name], expected[name], rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(looped[name], expected[name], rtol=1e-4, atol=1e-12)
        torch.testing.assert_close(alone[name], expected_alone[name], rtol=1e-4, atol=1e-12)
    # The group's standard deviation changes every logit, so the two estimates differ clearly.
    diff = sum(float((grouped[n] - alone[n]).abs().sum()) for n in grouped)
    size = sum(float(grouped[n].abs().sum()) for n in grouped)
    assert diff > 0.05 * size


def test_cache_is_keyed_on_the_group(tmp_path):
    G, D = tiny_networks()
    cache = tmp_path / "fisher.pt"
    load_or_compute_fisher(G, D, cache, num_samples=4)
    assert load_fisher(cache)[1]["mbstd_group"] == 4
    with pytest.warns(RuntimeWarning, match="recomputing"):
        load_or_compute_fisher(G, D, cache, num_samples=4, mbstd_group=1)
    assert load_fisher(cache)[1]["mbstd_group"] == 1
