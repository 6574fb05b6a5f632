"""Parameter selection by name and the two distances, against hand-computed values."""
import pytest
import torch

from stylegan_unlearn.method import params as P
from tiny import FakeDDP


class _Layer(torch.nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = torch.nn.Parameter(torch.zeros(cout))
        self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.affine = torch.nn.Linear(4, cin)
        self.register_buffer("noise_const", torch.randn(4, 4))


class _Block(torch.nn.Module):
    def __init__(self, first):
        super().__init__()
        if first:
            self.const = torch.nn.Parameter(torch.randn(2, 4, 4))
        else:
            self.conv0 = _Layer(2, 2)
        self.conv1 = _Layer(2, 2)
        self.torgb = torch.nn.Linear(2, 1)


class _Synthesis(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b4, self.b8, self.b16 = _Block(True), _Block(False), _Block(False)


class _Mapping(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0 = torch.nn.Linear(4, 4)
        self.register_buffer("w_avg", torch.zeros(4))


class _Generator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.synthesis, self.mapping = _Synthesis(), _Mapping()


def test_synthesis_selection_is_convs_from_8x8_up():
    names = [n for n, _ in P.select_params(_Generator(), "synthesis")]
    assert names and all(n.startswith(("synthesis.b8.conv", "synthesis.b16.conv")) for n in names)
    assert "synthesis.b8.conv0.weight" in names and "synthesis.b16.conv1.affine.bias" in names
    assert "synthesis.b8.conv1.noise_strength" in names
    assert not any("b4" in n or "torgb" in n or "mapping" in n for n in names)


def test_all_selection_is_every_parameter_and_no_buffer():
    G = _Generator()
    names = [n for n, _ in P.select_params(G, "all")]
    assert names == [n for n, _ in G.named_parameters()]
    assert "mapping.fc0.weight" in names and "synthesis.b4.const" in names
    assert not any("w_avg" in n or "noise_const" in n for n in names)


def test_pair_and_wrapped_modules_give_the_same_names_and_tensors():
    G = _Generator()
    direct = P.select_params(G, "all")
    pair = P.select_params((FakeDDP(G.mapping), FakeDDP(G.synthesis)), "all")
    wrapped = P.select_params(FakeDDP(G), "all")
    assert sorted(n for n, _ in pair) == sorted(n for n, _ in direct)
    lookup = dict(direct)
    assert all(p is lookup[n] for n, p in pair)
    assert [p for _, p in wrapped] == [p for _, p in direct]


def test_sg3_layer_names_exclude_the_last_layer():
    names = ["mapping.fc0.weight", "synthesis.input.weight", "synthesis.L0_36_512.weight",
             "synthesis.L1_36_512.bias", "synthesis.L2_36_3.weight"]
    assert P.select_names(names, "synthesis") == ["synthesis.L0_36_512.weight", "synthesis.L1_36_512.bias"]


def test_free_selection_is_everything_synthesis_leaves_out():
    G = _Generator()
    every = [n for n, _ in P.select_params(G, "all")]
    synthesis = [n for n, _ in P.select_params(G, "synthesis")]
    free = [n for n, _ in P.select_params(G, "free")]
    assert free == [n for n in every if n not in synthesis] and synthesis and free
    assert "mapping.fc0.weight" in free and "synthesis.b4.const" in free
    names = ["mapping.fc0.weight", "synthesis.input.weight", "synthesis.L0_36_512.weight",
             "synthesis.L1_36_512.bias", "synthesis.L2_36_3.weight"]
    assert P.select_names(names, "free") == ["mapping.fc0.weight", "synthesis.input.weight",
                                             "synthesis.L2_36_3.weight"]


def test_the_option_table_offers_every_selection():
    from stylegan_unlearn.method.options import OPTIONS
    params = next(option for option in OPTIONS if option.name == "params")
    assert tuple(params.choices) == P.PARAM_MODES


def test_bad_modes_are_clear_errors():
    with pytest.raises(ValueError, match="selection"):
        P.select_params(_Generator(), "everything")
    with pytest.raises(ValueError, match="no generator parameters"):
        P.select_params(torch.nn.Linear(2, 2), "synthesis")
    with pytest.raises(ValueError, match="no generator parameters"):
        P.select_params(torch.nn.Linear(2, 2), "free")
    with pytest.raises(ValueError, match="distance"):
        P.distance([torch.zeros(1)], [[torch.zeros(1)]], mode="l1")


def test_l2_distance_hand_computed():
    theta = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    a1 = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]  # (1+4) + 4 = 9
    a2 = [torch.tensor([1.0, 4.0]), torch.tensor([[3.0]])]  # (0+4) + 0 = 4
    d = P.distance(theta, [a1, a2], mode="l2")
    assert d.item() == pytest.approx((9 + 4) / 2, rel=1e-6)


def test_tensor_mean_distance_hand_computed():
    theta = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    a1 = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]  # tensors: mean(1,4)=2.5, 4 -> mean 3.25
    a2 = [torch.tensor([1.0, 4.0]), torch.tensor([[3.0]])]  # tensors: mean(0,4)=2, 0 -> mean 1
    d = P.distance(theta, [a1, a2], mode="tensor-mean")
    assert d.item() == pytest.approx((3.25 + 1.0) / 2, rel=1e-6)


def test_distance_gradient_is_twice_the_mean_difference():
    theta = [torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    anchors = [[torch.randn(3, 4), torch.randn(5)] for _ in range(3)]
    d = P.distance(theta, anchors, mode="l2")
    d.backward()
    for p, idx in zip(theta, range(2)):
        mean = torch.stack([a[idx] for a in anchors]).mean(0)
        torch.testing.assert_close(p.grad, 2 * (p.detach() - mean))
    brute = sum(sum(((t.detach() - a[i]) ** 2).sum() for i, t in enumerate(theta)) for a in anchors) / 3
    assert d.item() == pytest.approx(brute.item(), rel=1e-5)


def test_anchor_set_keeps_one_copy_and_matches_brute_force_tensor_mean():
    theta = [torch.randn(6), torch.randn(2, 2)]
    anchors = [[torch.randn(6), torch.randn(2, 2)] for _ in range(5)]
    anchor_set = P.AnchorSet(anchors, mode="tensor-mean")
    assert len(anchor_set.means) == 2
    brute = sum(sum(((t - a[i]) ** 2).mean() for i, t in enumerate(theta)) / 2 for a in anchors) / 5
    assert anchor_set.distance(theta).item() == pytest.approx(brute.item(), rel=1e-5)


def test_gather_aligned_reports_missing_and_misshaped():
    with pytest.raises(ValueError, match="no parameter 'b'"):
        P.gather_aligned({"a": torch.zeros(2)}, ["a", "b"], [torch.Size([2]), torch.Size([1])])
    with pytest.raises(ValueError, match="shape"):
        P.gather_aligned({"a": torch.zeros(3)}, ["a"], [torch.Size([2])])


@pytest.mark.parametrize("k", [1, 2, 5])
def test_official_distance_is_the_official_codes_formula(k):
    """(K/2)·(1/P)·Σ_p Σ_k mean_elements (θ_p − θ_N,p^k)², written out as the official code sums it."""
    gen = torch.Generator().manual_seed(k)
    theta = [torch.randn(6, generator=gen), torch.randn(2, 3, generator=gen), torch.randn([], generator=gen)]
    anchors = [[torch.randn(t.shape, generator=gen) for t in theta] for _ in range(k)]
    total = 0.0
    for p, t in enumerate(theta):
        for anchor in anchors:
            total += float(((t - anchor[p]) ** 2).mean())
    official = total / len(theta) / 2 * k
    assert P.distance(theta, anchors, mode="official").item() == pytest.approx(official, rel=1e-5)
    tensor_mean = P.distance(theta, anchors, mode="tensor-mean").item()
    assert P.distance(theta, anchors, mode="official").item() == pytest.approx(tensor_mean * k * k / 2, rel=1e-5)


def test_relative_distance_is_one_at_the_start_and_in_units_of_it():
    """d = ‖θ − μ‖² / ‖θ_start − μ‖² with μ the mean of the anchors, written out; at K = 1 it is l2 / l2(start)."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, generator=gen), torch.randn(2, 2, generator=gen)]
    anchors = [[t + 0.1 * torch.randn(t.shape, generator=gen) for t in start] for _ in range(3)]
    centre = [torch.stack([a[i] for a in anchors]).mean(0) for i in range(len(start))]

    def to_centre(params):
        return sum(float(((p - c) ** 2).sum()) for p, c in zip(params, centre))
    assert P.distance(start, anchors, mode="relative", reference=start).item() == pytest.approx(1.0, rel=1e-6)
    moved = [t + 0.3 for t in start]
    expected = to_centre(moved) / to_centre(start)
    assert P.distance(moved, anchors, mode="relative", reference=start).item() == pytest.approx(expected, rel=1e-5)
    one = anchors[:1]
    expected_one = P.distance(moved, one, mode="l2").item() / P.distance(start, one, mode="l2").item()
    assert P.distance(moved, one, mode="relative", reference=start).item() == pytest.approx(expected_one, rel=1e-5)
    with pytest.raises(ValueError, match="starting parameters"):
        P.distance(start, anchors, mode="relative")
    with pytest.raises(ValueError, match="coincide"):
        P.distance(start, [start], mode="relative", reference=start)


def test_task_distance_measures_progress_along_the_task_vector_only():
    """d = (⟨θ − μ, τ⟩ / ‖τ‖²)² with τ = θ_start − μ: 1 at the start, (1 + γ)² at the extrapolation
    θ_start + γτ, unchanged by a move orthogonal to τ, and its gradient points along τ only."""
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(6, generator=gen), torch.randn(3, 2, generator=gen)]
    anchors = [[t + 0.1 * torch.randn(t.shape, generator=gen) for t in start] for _ in range(2)]
    centre = [torch.stack([a[i] for a in anchors]).mean(0) for i in range(len(start))]
    tau = [s - c for s, c in zip(start, centre)]
    tau_sq = sum(float((t ** 2).sum()) for t in tau)
    assert P.distance(start, anchors, mode="task", reference=start).item() == pytest.approx(1.0, rel=1e-5)
    extrapolated = [s + 0.7 * t for s, t in zip(start, tau)]
    assert P.distance(extrapolated, anchors, mode="task", reference=start).item() == pytest.approx(1.7 ** 2, rel=1e-5)
    noise = [torch.randn(t.shape, generator=gen) for t in start]
    along = sum(float((n * t).sum()) for n, t in zip(noise, tau)) / tau_sq
    orthogonal = [n - along * t for n, t in zip(noise, tau)]
    drifted = [s + 5.0 * o for s, o in zip(start, orthogonal)]
    assert P.distance(drifted, anchors, mode="task", reference=start).item() == pytest.approx(1.0, rel=1e-4)
    assert P.distance(drifted, anchors, mode="relative", reference=start).item() > 10.0  # ℓ2 sees the drift
    theta = [d.clone().requires_grad_(True) for d in drifted]
    P.distance(theta, anchors, mode="task", reference=start).backward()
    for g, t in zip((p.grad for p in theta), tau):  # ∂d/∂θ = 2·s·τ/‖τ‖² with s = 1 here
        torch.testing.assert_close(g, 2.0 * t / tau_sq, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="starting parameters"):
        P.distance(start, anchors, mode="task")
