"""Every op against the golden vectors produced by the reference implementation (CPU, float32).

Forward outputs must match within 1e-5 absolute; gradients (backpropagating the stored `dy`)
within 1e-4 relative to the largest gradient magnitude — the tolerances the reference itself
meets across machines.
"""
import json

import numpy as np
import pytest
import torch

from conftest import golden_json
from torch_utils.ops import bias_act, conv2d_resample, filtered_lrelu, fma, upfirdn2d

FORWARD_ATOL = 1e-5
GRAD_RTOL = 1e-4


def _load_cases(golden_dir, stem):
    cases = json.loads((golden_dir / f"{stem}.json").read_text())["cases"]
    arrays = np.load(golden_dir / f"{stem}.npz")
    return [(case, {role: torch.from_numpy(arrays[key].copy()) for role, key in case["arrays"].items()})
            for case in cases]


def _case_ids(stem):
    """Collection-time ids; a missing or empty golden file is an error, never an empty parameter set."""
    cases = golden_json(f"{stem}.json")["cases"]
    if not cases:
        raise AssertionError(f"golden file {stem}.json has no cases")
    return list(range(len(cases))), [f"{i}-{c['op']}" for i, c in enumerate(cases)]


def _kwargs(case):
    return {k: v for k, v in case["kwargs"].items() if v is not None}


def _assert_forward(actual, expected):
    assert actual.shape == expected.shape
    err = (actual.detach() - expected).abs().max().item()
    assert err <= FORWARD_ATOL, f"forward max abs error {err:.3g}"


def _assert_grad(actual, expected):
    assert actual is not None, "no gradient was produced"
    assert actual.shape == expected.shape
    scale = max(expected.abs().max().item(), 1e-12)
    err = (actual - expected).abs().max().item() / scale
    assert err <= GRAD_RTOL, f"gradient max error {err:.3g} relative to max magnitude {scale:.3g}"


def _run_case(case, data):
    """Call the op with the case's inputs; return (output, {role: tensor requiring grad})."""
    op, kwargs = case["op"], _kwargs(case)
    leaves = {role[3:]: t.clone().requires_grad_(True) for role, t in data.items()
              if role.startswith("in_") and role not in ("in_dy", "in_f", "in_fu", "in_fd")}
    filters = {role[3:]: data[role] for role in ("in_f", "in_fu", "in_fd") if role in data}
    if op == "bias_act":
        y = bias_act.bias_act(leaves["x"], leaves.get("b"), impl="ref", **kwargs)
    elif op == "upfirdn2d":
        y = upfirdn2d.upfirdn2d(leaves["x"], filters.get("f"), impl="ref", **kwargs)
    elif op in ("upsample2d", "downsample2d", "filter2d"):
        y = getattr(upfirdn2d, op)(leaves["x"], filters.get("f"), impl="ref", **kwargs)
    elif op == "conv2d_resample":
        y = conv2d_resample.conv2d_resample(leaves["x"], leaves["w"], f=filters.get("f"), **kwargs)
    elif op == "fma":
        y = fma.fma(leaves["a"], leaves["b"], leaves["c"])
    elif op == "filtered_lrelu":
        y = filtered_lrelu.filtered_lrelu(leaves["x"], fu=filters.get("fu"), fd=filters.get("fd"), b=leaves["b"],
                                          impl="ref", **kwargs)
    else:
        raise AssertionError(f"unknown op {op!r} in golden file")
    return y, leaves


def _check_case(case, data):
    if case["op"] == "setup_filter":
        f = upfirdn2d.setup_filter(**case["kwargs"])
        assert f.dtype == torch.float32
        _assert_forward(f, data["out_f"])
        return
    y, leaves = _run_case(case, data)
    _assert_forward(y, data["out_y"])
    grads = torch.autograd.grad(y, list(leaves.values()), grad_outputs=data["in_dy"], allow_unused=True)
    checked = 0
    for (name, _), grad in zip(leaves.items(), grads):
        if f"out_d{name}" in data:
            _assert_grad(grad, data[f"out_d{name}"])
            checked += 1
    assert checked >= 1


_IDX, _IDS = _case_ids("ops")
_IDX3, _IDS3 = _case_ids("ops_sg3")


@pytest.fixture(scope="module")
def ops_cases(golden_dir):
    return _load_cases(golden_dir, "ops")


@pytest.fixture(scope="module")
def ops_sg3_cases(golden_dir):
    return _load_cases(golden_dir, "ops_sg3")


@pytest.mark.parametrize("index", _IDX, ids=_IDS)
def test_ops_golden(ops_cases, index):
    _check_case(*ops_cases[index])


@pytest.mark.parametrize("index", _IDX3, ids=_IDS3)
def test_filtered_lrelu_golden(ops_sg3_cases, index):
    _check_case(*ops_sg3_cases[index])


def test_golden_files_cover_every_op(ops_cases, ops_sg3_cases):
    ops = {case["op"] for case, _ in ops_cases + ops_sg3_cases}
    assert {"bias_act", "setup_filter", "upfirdn2d", "upsample2d", "downsample2d", "filter2d", "conv2d_resample",
            "fma", "filtered_lrelu"} <= ops


def test_bias_act_clamp_example_from_spec():
    x = torch.tensor([[-300.0, 0.5, 300.0]])
    y = bias_act.bias_act(x, torch.zeros(3), act="lrelu", gain=2, clamp=256, impl="ref")
    assert torch.equal(y, torch.tensor([[-120.0, 1.0, 256.0]]))


def test_activation_table_defaults():
    table = bias_act.activation_funcs
    assert set(table) == {"linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"}
    assert table["lrelu"].def_alpha == 0.2
    assert table["lrelu"].def_gain == np.sqrt(2) and table["swish"].def_gain == np.sqrt(2)
    assert [table[k].cuda_idx for k in ("linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus",
                                         "swish")] == list(range(1, 10))
