"""CPU forward+backward time of our reference-path ops next to a straightforward formulation.

Run:  python3 benchmarks/ops.py [--repeats N] [--threads T] [--quick]
For each op at StyleGAN-typical shapes (batch 4, 128-512 channels, 16-64 px) it prints the median
time of forward + backward (gradient w.r.t. the input, and the weight where there is one) of
`torch_utils.ops` (impl='ref') and of a direct F.pad / F.conv2d transcription of the same maths,
their ratio (straightforward / ours: > 1 means ours is faster) and the max abs difference of the
outputs (a correctness check of the benchmark itself).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_utils.ops import bias_act, conv2d_resample, filtered_lrelu, upfirdn2d  # noqa: E402


# ------------------------------------------------------------------------------------------------
# Straightforward formulations: each step of the definition as its own tensor op.

def naive_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """Zero-insert by strided assignment, F.pad, depthwise conv with the full 2-D filter, subsample."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros([n, c, h * up, w * up])
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, list(pad))
    f2 = f if f.ndim == 2 else torch.outer(f, f)
    f2 = (f2 * gain).flip([0, 1]).to(x.dtype)
    x = F.conv2d(x, f2[None, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def naive_conv2d_resample(x, w, f, up=1, down=1, padding=0, flip_weight=True):
    """The reference definition literally: pad/upsample/blur, full-resolution conv, blur/subsample."""
    fw = f.shape[-1]
    p0 = p1 = padding
    if up > 1:
        p0, p1 = p0 + (fw + up - 1) // 2, p1 + (fw - up) // 2
    if down > 1:
        p0, p1 = p0 + (fw - down + 1) // 2, p1 + (fw - down) // 2
    if up > 1:
        x = naive_upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up ** 2)
    else:
        x = F.pad(x, [p0, p1, p0, p1])
    x = F.conv2d(x, w if flip_weight else w.flip([2, 3]))
    if down > 1:
        x = naive_upfirdn2d(x, f, down=down)
    return x


def naive_bias_act_lrelu(x, b, clamp):
    x = x + b.reshape(1, -1, 1, 1)
    return (F.leaky_relu(x, 0.2) * np.sqrt(2)).clamp(-clamp, clamp)


def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, clamp):
    x = x + b.reshape(1, -1, 1, 1)
    x = naive_upfirdn2d(x, fu, up=up, pad=(padding,) * 4, gain=up ** 2)
    x = (F.leaky_relu(x, 0.2) * np.sqrt(2)).clamp(-clamp, clamp)
    return naive_upfirdn2d(x, fd, down=down)


# ------------------------------------------------------------------------------------------------

def _median_ms(fn, inputs, repeats):
    times = []
    for i in range(repeats + 1):
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        t0 = time.perf_counter()
        y = fn(*leaves)
        y.backward(torch.ones_like(y))
        if i > 0:  # the first run warms up allocators and kernels
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), y.detach()


def build_cases(quick):
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    f4 = upfirdn2d.setup_filter([1, 3, 3, 1])
    f12 = upfirdn2d.setup_filter([0.015, -0.07, -0.02, 0.33, 0.59, 0.3, -0.07, -0.01, 0.01, 0.005, 0.001, 0.0005])
    s = 2 if quick else 1  # --quick halves the spatial size
    b512, b256 = rand(512), rand(256)
    return [
        ("bias_act lrelu+clamp", [rand(4, 512, 32 // s, 32 // s)],
         lambda x: bias_act.bias_act(x, b512, act="lrelu", clamp=256, impl="ref"),
         lambda x: naive_bias_act_lrelu(x, b512, 256)),
        ("upsample2d [1,3,3,1]", [rand(4, 512, 32 // s, 32 // s)],
         lambda x: upfirdn2d.upsample2d(x, f4, impl="ref"),
         lambda x: naive_upfirdn2d(x, f4, up=2, pad=(2, 1, 2, 1), gain=4)),
        ("downsample2d [1,3,3,1]", [rand(4, 256, 64 // s, 64 // s)],
         lambda x: upfirdn2d.downsample2d(x, f4, impl="ref"),
         lambda x: naive_upfirdn2d(x, f4, down=2, pad=(1, 1, 1, 1))),
        ("upsample2d 12-tap sep.", [rand(4, 128, 64 // s, 64 // s)],
         lambda x: upfirdn2d.upsample2d(x, f12, impl="ref"),
         lambda x: naive_upfirdn2d(x, f12, up=2, pad=(6, 5, 6, 5), gain=4)),
        ("conv2d_resample k3", [rand(4, 512, 16 // s, 16 // s), rand(512, 512, 3, 3) * 0.02],
         lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f4, padding=1),
         lambda x, w: naive_conv2d_resample(x, w, f4, padding=1)),
        ("conv2d_resample k3 up2", [rand(4, 256, 16 // s, 16 // s), rand(256, 256, 3, 3) * 0.02],
         lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f4, up=2, padding=1, flip_weight=False),
         lambda x, w: naive_conv2d_resample(x, w, f4, up=2, padding=1, flip_weight=False)),
        ("conv2d_resample k3 down2", [rand(4, 256, 32 // s, 32 // s), rand(256, 256, 3, 3) * 0.02],
         lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f4, down=2, padding=1),
         lambda x, w: naive_conv2d_resample(x, w, f4, down=2, padding=1)),
        ("conv2d_resample k1 down2", [rand(4, 256, 32 // s, 32 // s), rand(512, 256, 1, 1) * 0.02],
         lambda x, w: conv2d_resample.conv2d_resample(x, w, f=f4, down=2),
         lambda x, w: naive_conv2d_resample(x, w, f4, down=2)),
        ("filtered_lrelu up2 down2", [rand(4, 256, 32 // s, 32 // s)],
         lambda x: filtered_lrelu.filtered_lrelu(x, f4, f4, b256, up=2, down=2, padding=3, clamp=256, impl="ref"),
         lambda x: naive_filtered_lrelu(x, f4, f4, b256, 2, 2, 3, 256)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per op (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="half the spatial sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}, forward+backward, float32")
    header = f"{'op':26s} {'input':18s} {'ours ms':>9s} {'naive ms':>9s} {'naive/ours':>10s} {'max|diff|':>10s}"
    print(header)
    print("-" * len(header))
    for name, inputs, ours, naive in build_cases(args.quick):
        t_ours, y_ours = _median_ms(ours, inputs, args.repeats)
        t_naive, y_naive = _median_ms(naive, inputs, args.repeats)
        diff = (y_ours - y_naive).abs().max().item()
        print(f"{name:26s} {str(list(inputs[0].shape)):18s} {t_ours:9.1f} {t_naive:9.1f} {t_naive / t_ours:9.2f}x "
              f"{diff:10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
