"""Our StyleGAN2 G/D against golden vectors from the reference implementation.

For each golden network: build it from the recorded constructor kwargs, check the state-dict layout
name by name, load the reference weights, and compare mapping/synthesis outputs, discriminator
logits, and every generator-parameter gradient of a non-saturating G loss.
"""
import json

import numpy as np
import pytest
import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator

NETWORKS = ["sg2_uncond32", "sg2_cond16"]

FORWARD_ATOL = 1e-5
# Gradient errors are measured relative to the largest gradient magnitude of the case (the golden
# README's tolerance). Scalar gradients such as noise strengths are sums with heavy cancellation:
# the reference's own float32 value differs from a float64 evaluation by ~2e-4 of itself, so each
# tensor is additionally held only to a looser bound relative to its own largest entry.
GRAD_RTOL = 1e-4
GRAD_RTOL_PER_TENSOR = 1e-3


class Golden:
    """One golden network: layout, reference tensors, cases, and our G/D loaded with its weights."""

    def __init__(self, golden_dir, name):
        self.name = name
        self.layout = json.loads((golden_dir / f"{name}_layout.json").read_text())
        self.cases = json.loads((golden_dir / f"{name}.json").read_text())["cases"]
        with np.load(golden_dir / f"{name}.npz") as npz:
            self.arrays = {key: npz[key] for key in npz.files}
        self.G = Generator(**self.layout["G_init_kwargs"]).eval()
        self.D = Discriminator(**self.layout["D_init_kwargs"]).eval()

    def tensor(self, key):
        return torch.from_numpy(self.arrays[key].copy())

    def load_weights(self):
        for prefix, module in (("G", self.G), ("D", self.D)):
            state = {name: self.tensor(f"{prefix}.{name}") for name in module.state_dict()}
            module.load_state_dict(state, strict=True)

    def cases_of(self, op):
        return [case for case in self.cases if case["op"] == op]


@pytest.fixture(scope="module", params=NETWORKS)
def golden(request, golden_dir):
    net = Golden(golden_dir, request.param)
    net.load_weights()
    return net


def _layout(module):
    return [[name, list(t.shape), str(t.dtype)] for name, t in module.state_dict().items()]


def _max_abs_err(actual, expected):
    return float((actual.detach() - expected).abs().max())


def test_state_dict_layout_matches_reference(golden_dir):
    for name in NETWORKS:
        net = Golden(golden_dir, name)
        assert _layout(net.G) == net.layout["G_state_dict"], name
        assert _layout(net.D) == net.layout["D_state_dict"], name
        assert [n for n, _ in net.G.named_parameters()] == net.layout["G_param_names"], name
        assert [n for n, _ in net.D.named_parameters()] == net.layout["D_param_names"], name
        npz_names = {key for key in net.arrays if key.startswith(("G.", "D."))}
        ours = {f"G.{n}" for n in net.G.state_dict()} | {f"D.{n}" for n in net.D.state_dict()}
        assert npz_names == ours, name


def test_generator_matches_reference(golden):
    cases = golden.cases_of("G")
    assert cases, "golden file has no generator cases"
    for case in cases:
        kwargs, arrays = case["kwargs"], case["arrays"]
        z, c = golden.tensor(arrays["in_z"]), golden.tensor(arrays["in_c"])
        expected_ws, expected_img = golden.tensor(arrays["out_ws"]), golden.tensor(arrays["out_img"])
        with torch.no_grad():
            ws = golden.G.mapping(
                z, c, truncation_psi=kwargs["truncation_psi"], truncation_cutoff=kwargs["truncation_cutoff"]
            )
            img = golden.G.synthesis(ws, noise_mode=kwargs["noise_mode"])
            img_direct = golden.G(z, c, **kwargs)
        assert img.dtype == torch.float32 and img.shape == expected_img.shape
        ws_err = _max_abs_err(ws, expected_ws)
        img_err = _max_abs_err(img, expected_img)
        assert ws_err <= FORWARD_ATOL, f"{golden.name} {kwargs}: ws max error {ws_err:.3g}"
        assert img_err <= FORWARD_ATOL, f"{golden.name} {kwargs}: img max error {img_err:.3g}"
        assert torch.equal(img_direct, img)


def test_discriminator_matches_reference(golden):
    cases = golden.cases_of("D")
    assert cases, "golden file has no discriminator cases"
    for case in cases:
        arrays = case["arrays"]
        with torch.no_grad():
            logits = golden.D(golden.tensor(arrays["in_img"]), golden.tensor(arrays["in_c"]))
        expected = golden.tensor(arrays["out_logits"])
        assert logits.shape == expected.shape
        err = _max_abs_err(logits, expected)
        assert err <= FORWARD_ATOL, f"{golden.name}: logits max error {err:.3g}"


def test_generator_loss_gradients_match_reference(golden):
    cases = golden.cases_of("G_loss_grad")
    assert cases, "golden file has no gradient cases"
    for case in cases:
        arrays = case["arrays"]
        z, c = golden.tensor(arrays["in_z"]), golden.tensor(arrays["in_c"])
        golden.G.zero_grad(set_to_none=True)
        golden.D.zero_grad(set_to_none=True)
        img = golden.G(z, c, noise_mode="const")
        loss = torch.nn.functional.softplus(-golden.D(img, c)).mean()
        loss.backward()

        loss_err = abs(float(loss.detach()) - float(golden.tensor(arrays["out_loss"])))
        assert loss_err <= FORWARD_ATOL, f"{golden.name}: loss error {loss_err:.3g}"

        grad_keys = [role for role in arrays if role.startswith("out_grad.")]
        assert sorted(k[len("out_grad."):] for k in grad_keys) == sorted(n for n, _ in golden.G.named_parameters())
        params = dict(golden.G.named_parameters())
        largest = max(float(golden.tensor(arrays[role]).abs().max()) for role in grad_keys)
        assert largest > 0
        for role in grad_keys:
            name = role[len("out_grad."):]
            expected = golden.tensor(arrays[role])
            actual = params[name].grad
            assert actual is not None, f"{golden.name}: no gradient reached {name}"
            err = _max_abs_err(actual, expected)
            assert err <= GRAD_RTOL * largest, f"{golden.name}: grad of {name} error {err / largest:.3g} of max"
            own_scale = max(float(expected.abs().max()), 1e-12)
            assert err <= GRAD_RTOL_PER_TENSOR * own_scale, (
                f"{golden.name}: grad of {name} error {err / own_scale:.3g} of its own max"
            )
