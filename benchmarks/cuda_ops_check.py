"""GPU check of the compiled ops: build the plugins, then compare with the reference paths.

Run on a CUDA machine:  python3 benchmarks/cuda_ops_check.py [--quick]
Prints the build time of each plugin, then for bias_act and upfirdn2d at StyleGAN shapes the max
absolute error (forward, input gradient, and second-order gradient) of the compiled path against
the reference path, and forward+backward times of both with their ratio. Exits with status 1 if
a plugin does not build or an error exceeds its tolerance.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from torch_utils import custom_ops  # noqa: E402
from torch_utils.ops import bias_act, upfirdn2d  # noqa: E402

TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2}  # relative to max(1, |reference|.max())


def _time_ms(fn, repeats: int, device: str) -> float:
    fn()
    if device != "cuda":  # --device cpu: a dry run of this script's logic
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) * 1000 / repeats
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def _fwd_bwd(op, x, dy):
    def run():
        xx = x.detach().requires_grad_(True)
        (op(xx) * dy).sum().backward()
    return run


def _errors(op_cuda, op_ref, x, dy):
    """Max abs error of forward, gradient and R1-style second-order gradient, relative to scale."""
    results = []
    for op in (op_cuda, op_ref):
        xx = x.detach().requires_grad_(True)
        y = op(xx)
        (g,) = torch.autograd.grad(y, xx, dy, create_graph=True)
        g2 = torch.autograd.grad(g.float().square().sum(), xx, allow_unused=True)[0] if g.requires_grad else None
        results.append((y.detach().float(), g.detach().float(), None if g2 is None else g2.float()))
    errs = []
    for a, b in zip(*results):
        if a is None or b is None:
            errs.append(float("nan") if (a is None) != (b is None) else 0.0)
            continue
        errs.append((a - b).abs().max().item() / max(1.0, b.abs().max().item()))
    return errs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu = dry run of the script itself (both paths are then the reference)")
    args = parser.parse_args()
    dev = args.device
    ok = True
    if dev == "cuda":
        if not torch.cuda.is_available():
            print("No CUDA device; nothing to check (use --device cpu for a dry run).")
            return 1
        print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  cuda {torch.version.cuda}")
        custom_ops.verbosity = "brief"
        device = torch.device("cuda", torch.cuda.current_device())
        for name, loader in (("bias_act", bias_act._working_plugin), ("upfirdn2d", upfirdn2d._working_plugin)):
            t0 = time.time()
            plugin = loader(device)
            print(f"  {name}: {'built' if plugin is not None else 'FAILED'} in {time.time() - t0:.1f} s")
            ok &= plugin is not None
        if not ok:
            return 1

    repeats = 5 if args.quick else 20
    shapes = [(4, 512, 32, 32), (4, 256, 64, 64)] if args.quick else \
        [(8, 512, 16, 16), (8, 512, 32, 32), (8, 256, 64, 64), (8, 128, 128, 128), (4, 64, 256, 256)]
    if dev == "cpu":
        shapes, repeats = [(2, 16, 16, 16)], 2
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1], device=dev)
    f12 = upfirdn2d.setup_filter([0.015, -0.07, -0.02, 0.33, 0.59, 0.3, -0.07, -0.01, 0.01, 0.0, 0.0, 0.0],
                                 device=dev)  # a 12-tap separable filter, as in augmentation
    cases = []
    for shape in shapes:
        c = shape[1]
        b = torch.randn(c, device=dev)
        for act, clamp in (("lrelu", 256.0), ("linear", None), ("swish", None)):
            cases.append((f"bias_act {act:6s}", shape, lambda impl, b=b, act=act, clamp=clamp: (
                lambda x: bias_act.bias_act(x, b.to(x.dtype), act=act, clamp=clamp, impl=impl))))
        cases.append(("upsample2d f4    ", shape, lambda impl: (lambda x: upfirdn2d.upsample2d(x, f4, impl=impl))))
        cases.append(("downsample2d f4  ", shape, lambda impl: (lambda x: upfirdn2d.downsample2d(x, f4, impl=impl))))
        cases.append(("upsample2d f12sep", shape, lambda impl: (lambda x: upfirdn2d.upsample2d(x, f12, impl=impl))))

    header = f"{'op':18s} {'dtype':8s} {'shape':20s} {'err fwd':>9s} {'err grad':>9s} {'err 2nd':>9s} " \
             f"{'ref ms':>8s} {'cuda ms':>8s} {'speedup':>8s}"
    print(header)
    print("-" * len(header))
    for label, shape, make in cases:
        for dtype in (torch.float32, torch.float16) if dev == "cuda" else (torch.float32,):
            x = torch.randn(shape, device=dev, dtype=dtype)
            op_cuda, op_ref = make("cuda"), make("ref")
            dy = torch.randn_like(op_ref(x))
            errs = _errors(op_cuda, op_ref, x, dy)
            t_ref = _time_ms(_fwd_bwd(op_ref, x, dy), repeats, dev)
            t_cuda = _time_ms(_fwd_bwd(op_cuda, x, dy), repeats, dev)
            bad = any(e > TOLERANCE[dtype] for e in errs if e == e)
            ok &= not bad
            print(f"{label:18s} {str(dtype)[6:]:8s} {str(list(shape)):20s} {errs[0]:9.2e} {errs[1]:9.2e} "
                  f"{errs[2]:9.2e} {t_ref:8.3f} {t_cuda:8.3f} {t_ref / t_cuda:7.2f}x{'  <-- TOO LARGE' if bad else ''}")
            del x, dy
        if dev == "cuda":
            torch.cuda.empty_cache()
    print("all errors within tolerance" if ok else "SOME ERRORS EXCEED TOLERANCE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
