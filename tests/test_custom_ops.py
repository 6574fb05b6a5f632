"""The plugin loader (build once, remember failures, fall back) and our CUDA sources.

No GPU is needed: the `.cu` files are compiled with nvcc (skipped without it), and their
per-element code is also run on the CPU through the `*_run_on_host` entry points and compared
with the reference paths.
"""
import ctypes
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
import torch.utils.cpp_extension

from torch_utils import custom_ops
from torch_utils.ops import bias_act, upfirdn2d

OPS_DIR = Path(custom_ops.__file__).resolve().parent / "ops"
CU_FILES = sorted(OPS_DIR.glob("*.cu"))
NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


@pytest.fixture
def fresh_plugin_state(monkeypatch, tmp_path):
    """Empty plugin caches and a private build root, restored after the test."""
    monkeypatch.setattr(custom_ops, "_loaded_plugins", {})
    monkeypatch.setattr(custom_ops, "_failed_plugins", {})
    monkeypatch.setattr(custom_ops, "verbosity", "none")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    return tmp_path


# ------------------------------------------------------------------------------------------------
# get_plugin failure handling

def test_failed_build_warns_once_and_is_not_retried(fresh_plugin_state, monkeypatch):
    calls = []

    def broken_load(*args, **kwargs):
        calls.append(kwargs.get("name"))
        raise RuntimeError("Error building extension 'bias_act_plugin': simulated compiler crash")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", broken_load)
    monkeypatch.setattr(torch.utils.cpp_extension, "CUDA_HOME", "/simulated/cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bias_act._load_plugin() is None
        assert bias_act._load_plugin() is None
        with pytest.raises(custom_ops.PluginBuildError, match="simulated compiler crash"):
            custom_ops.get_plugin("bias_act_plugin", ["bias_act.cpp", "bias_act.cu"], source_dir=str(OPS_DIR))
    assert calls == ["bias_act_plugin"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "bias_act_plugin" in messages[0] and "simulated compiler crash" in messages[0]
    assert "reference" in messages[0]


def test_cpu_tensors_never_trigger_a_build_and_use_reference(fresh_plugin_state, monkeypatch):
    def must_not_build(*args, **kwargs):
        raise AssertionError("a CPU tensor must not trigger a plugin build")

    monkeypatch.setattr(custom_ops, "_build_and_import", must_not_build)
    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    y = bias_act.bias_act(x, b, act="lrelu", clamp=0.5, impl="cuda")
    torch.testing.assert_close(y, bias_act.bias_act(x, b, act="lrelu", clamp=0.5, impl="ref"), rtol=0, atol=0)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f, impl="cuda"), upfirdn2d.upsample2d(x, f, impl="ref"),
                               rtol=0, atol=0)


def test_missing_source_is_reported_as_build_failure(fresh_plugin_state):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert custom_ops.try_get_plugin("no_such_plugin", ["missing.cpp"], source_dir=str(fresh_plugin_state)) is None
    assert len(caught) == 1 and "missing.cpp" in str(caught[0].message)


@pytest.mark.parametrize("op", [bias_act, upfirdn2d], ids=["bias_act", "upfirdn2d"])
def test_plugin_that_fails_at_run_time_is_disabled_once(fresh_plugin_state, monkeypatch, op):
    builds = []

    class PluginWithoutKernelImage:
        def __getattr__(self, name):
            def kernel(*args, **kwargs):
                raise RuntimeError("CUDA error: no kernel image is available for execution on the device")
            return kernel

    def fake_build(name, *args):
        builds.append(name)
        return PluginWithoutKernelImage()

    monkeypatch.setattr(custom_ops, "_build_and_import", fake_build)
    monkeypatch.setattr(custom_ops, "_checked_on", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert op._working_plugin(torch.device("cpu")) is None
        assert op._working_plugin(torch.device("cpu")) is None
    assert len(builds) == 1
    assert len(caught) == 1 and "no kernel image" in str(caught[0].message)


TINY_SOURCE = """
#include <pybind11/pybind11.h>
static int answer() { return %d; }
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", &answer); }
"""


def test_broken_compiler_fails_once_then_falls_back(fresh_plugin_state, monkeypatch):
    src = fresh_plugin_state / "tiny.cpp"
    src.write_text(TINY_SOURCE % 7)
    monkeypatch.setenv("CXX", "/bin/false")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert custom_ops.try_get_plugin("tiny_broken_compiler_plugin", ["tiny.cpp"],
                                         source_dir=str(fresh_plugin_state)) is None
        monkeypatch.setattr(torch.utils.cpp_extension, "load",
                            lambda *a, **k: pytest.fail("a failed build must not be retried"))
        assert custom_ops.try_get_plugin("tiny_broken_compiler_plugin", ["tiny.cpp"],
                                         source_dir=str(fresh_plugin_state)) is None
    build_warnings = [w for w in caught if "tiny_broken_compiler_plugin" in str(w.message)]
    assert len(build_warnings) == 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None or not torch.utils.cpp_extension.is_ninja_available(),
                    reason="needs a C++ compiler and ninja")
def test_successful_build_is_cached_and_keyed_by_content(fresh_plugin_state):
    src = fresh_plugin_state / "tiny.cpp"
    src.write_text(TINY_SOURCE % 42)
    module = custom_ops.get_plugin("tiny_ok_plugin", ["tiny.cpp"], source_dir=str(fresh_plugin_state))
    assert module.answer() == 42
    assert custom_ops.get_plugin("tiny_ok_plugin", ["tiny.cpp"], source_dir=str(fresh_plugin_state)) is module
    build_dirs = [p.name for p in (fresh_plugin_state / "extensions").iterdir() if not p.name.startswith(".")]
    assert len(build_dirs) == 1 and build_dirs[0].startswith("tiny_ok_plugin-")
    digest_before = custom_ops._content_hash([str(src)], "")
    src.write_text(TINY_SOURCE % 43)
    assert custom_ops._content_hash([str(src)], "") != digest_before


# ------------------------------------------------------------------------------------------------
# CUDA sources: they compile with nvcc alone, and their arithmetic matches the reference paths.

@needs_nvcc
@pytest.mark.parametrize("cu_file", CU_FILES, ids=[p.name for p in CU_FILES])
def test_cu_files_compile_with_nvcc(cu_file, tmp_path):
    result = subprocess.run([NVCC, "-c", "-arch=sm_80", "-o", str(tmp_path / "x.o"), str(cu_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_cu_sources_need_no_torch_headers():
    for path in list(OPS_DIR.glob("*.cu")) + list(OPS_DIR.glob("*.h")):
        text = path.read_text()
        assert "torch/" not in text and "ATen/" not in text and "c10/" not in text, path.name


@pytest.fixture(scope="module")
def host_libs(tmp_path_factory):
    """Each .cu compiled into a shared library whose *_run_on_host entry runs on the CPU."""
    if NVCC is None:
        pytest.skip("nvcc not found")
    out = tmp_path_factory.mktemp("cu_host")
    libs = {}
    for cu in CU_FILES:
        lib = out / f"{cu.stem}.so"
        result = subprocess.run([NVCC, "-shared", "-Xcompiler", "-fPIC", "-arch=sm_80", "-o", str(lib), str(cu)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"nvcc could not build {cu.name}: {result.stderr[-2000:]}")
        libs[cu.stem] = ctypes.CDLL(str(lib))
    return libs


class BiasActParams(ctypes.Structure):  # mirrors bias_act.h
    _fields_ = [("x", ctypes.c_void_p), ("b", ctypes.c_void_p), ("dy", ctypes.c_void_p), ("out", ctypes.c_void_p),
                ("numel", ctypes.c_int64), ("channel_stride", ctypes.c_int64), ("channels", ctypes.c_int64),
                ("act", ctypes.c_int), ("order", ctypes.c_int), ("dtype", ctypes.c_int),
                ("alpha", ctypes.c_double), ("gain", ctypes.c_double), ("clamp", ctypes.c_double)]


class Upfirdn2dParams(ctypes.Structure):  # mirrors upfirdn2d.h
    _fields_ = [("x", ctypes.c_void_p), ("f", ctypes.c_void_p), ("y", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("planes", ctypes.c_int64), ("in_w", ctypes.c_int), ("in_h", ctypes.c_int), ("out_w", ctypes.c_int),
                ("out_h", ctypes.c_int), ("upx", ctypes.c_int), ("upy", ctypes.c_int), ("downx", ctypes.c_int),
                ("downy", ctypes.c_int), ("px0", ctypes.c_int), ("py0", ctypes.c_int), ("fw", ctypes.c_int),
                ("fh", ctypes.c_int), ("flip_filter", ctypes.c_int)]


DTYPE_CODES = {torch.float16: 0, torch.float32: 2, torch.float64: 3}


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _host_bias_act(lib, x, b, dy, act, order, dim, alpha, gain, clamp):
    out = torch.empty_like(x)
    p = BiasActParams(x=_ptr(x), b=_ptr(b), dy=_ptr(dy), out=_ptr(out), numel=x.numel(),
                      channel_stride=x.stride(dim), channels=x.shape[dim], act=bias_act.activation_funcs[act].cuda_idx,
                      order=order, dtype=DTYPE_CODES[x.dtype], alpha=alpha, gain=gain, clamp=clamp)
    assert lib.bias_act_run_on_host(ctypes.byref(p)) == 0
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("act", sorted(bias_act.activation_funcs))
def test_bias_act_kernel_code_matches_reference(host_libs, act, dtype):
    lib = host_libs["bias_act"]
    atol = 1e-12 if dtype == torch.float64 else 2e-6
    for dim, clamp, gain in ((1, -1.0, 1.6), (2, 0.7, 1.3)):
        x = (torch.randn(2, 3, 4, 5, dtype=torch.float64) * 2).to(dtype)
        b = torch.randn(x.shape[dim], dtype=dtype)
        dy = torch.randn_like(x)
        expected = bias_act._bias_act_ref(x, b, dim, act, 0.3, gain, clamp)
        torch.testing.assert_close(_host_bias_act(lib, x, b, None, act, 0, dim, 0.3, gain, clamp), expected,
                                   atol=atol, rtol=1e-5)
        # First and second derivatives against autograd on the reference path.
        xr = x.double().requires_grad_(True)
        y = bias_act._bias_act_ref(xr, b.double(), dim, act, 0.3, gain, clamp)
        (g1,) = torch.autograd.grad(y, xr, dy.double(), create_graph=True)
        torch.testing.assert_close(_host_bias_act(lib, x, b, dy, act, 1, dim, 0.3, gain, clamp), g1.detach().to(dtype),
                                   atol=atol * 10, rtol=1e-5)
        if g1.requires_grad:
            (g2,) = torch.autograd.grad(g1, xr, torch.ones_like(g1))
            torch.testing.assert_close(_host_bias_act(lib, x, b, dy, act, 2, dim, 0.3, gain, clamp), g2.to(dtype),
                                       atol=atol * 10, rtol=1e-5)


def test_bias_act_kernel_code_half_precision(host_libs):
    x = torch.randn(2, 8, 3, 3).half()
    b = torch.randn(8).half()
    out = _host_bias_act(host_libs["bias_act"], x, b, None, "lrelu", 0, 1, 0.2, 2 ** 0.5, 256.0)
    expected = bias_act._bias_act_ref(x.float(), b.float(), 1, "lrelu", 0.2, 2 ** 0.5, 256.0)
    torch.testing.assert_close(out.float(), expected, atol=2e-3, rtol=2e-3)


def _host_upfirdn2d(lib, x, f, up, down, pads, flip):
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pads
    n, c, h, w = x.shape
    fh, fw = f.shape
    out_w = (w * upx + px0 + px1 - fw + downx) // downx
    out_h = (h * upy + py0 + py1 - fh + downy) // downy
    y = torch.empty(n, c, out_h, out_w, dtype=x.dtype)
    f = f.float().contiguous()
    p = Upfirdn2dParams(x=_ptr(x), f=_ptr(f), y=_ptr(y), dtype=DTYPE_CODES[x.dtype], planes=n * c, in_w=w, in_h=h,
                        out_w=out_w, out_h=out_h, upx=upx, upy=upy, downx=downx, downy=downy, px0=px0, py0=py0,
                        fw=fw, fh=fh, flip_filter=int(flip))
    assert lib.upfirdn2d_run_on_host(ctypes.byref(p)) == 0
    return y


@pytest.mark.parametrize("cfg", [
    ((1, 1), (1, 1), (0, 0, 0, 0), False), ((2, 2), (1, 1), (2, 1, 2, 1), False), ((1, 1), (2, 2), (1, 1, 1, 1), True),
    ((2, 1), (1, 2), (0, 1, -1, 2), False), ((3, 3), (2, 2), (-2, 3, 1, -1), True),
    ((1, 4), (3, 1), (5, 0, 0, 5), False),
])
def test_upfirdn2d_kernel_code_matches_reference(host_libs, cfg):
    up, down, pads, flip = cfg
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    f = torch.randn(4, 3, dtype=torch.float32)
    expected = upfirdn2d._upfirdn2d_ref(x, f, up, down, pads, flip, 1)
    torch.testing.assert_close(_host_upfirdn2d(host_libs["upfirdn2d"], x, f, up, down, pads, flip), expected,
                               atol=1e-12, rtol=0)
    x32 = x.float()
    torch.testing.assert_close(_host_upfirdn2d(host_libs["upfirdn2d"], x32, f, up, down, pads, flip),
                               upfirdn2d._upfirdn2d_ref(x32, f, up, down, pads, flip, 1), atol=1e-5, rtol=1e-5)
