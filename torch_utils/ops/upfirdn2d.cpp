// Torch binding for the upfirdn2d CUDA kernel: checks arguments, computes the output size,
// allocates the output and calls the C launcher declared in upfirdn2d.h.
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include "upfirdn2d.h"

static int dtype_code(at::ScalarType type) {
    switch (type) {
        case at::kHalf: return UPFIRDN2D_FLOAT16;
        case at::kBFloat16: return UPFIRDN2D_BFLOAT16;
        case at::kFloat: return UPFIRDN2D_FLOAT32;
        case at::kDouble: return UPFIRDN2D_FLOAT64;
        default:
            TORCH_CHECK(false, "upfirdn2d: unsupported dtype ", type, "; use float16, bfloat16, float32 or float64");
    }
    return -1;
}

// x: [N, C, H, W] on CUDA; f: [fh, fw] float32 on the same device (gain already applied).
static torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx,
                               int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 4, "upfirdn2d: x must be a 4-D CUDA tensor [N, C, H, W]");
    TORCH_CHECK(f.dim() == 2 && f.scalar_type() == at::kFloat && f.device() == x.device(),
                "upfirdn2d: f must be a 2-D float32 filter on x's device");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    TORCH_CHECK(x.numel() <= INT32_MAX && f.numel() <= INT32_MAX, "upfirdn2d: tensor too large");
    const c10::cuda::OptionalCUDAGuard device_guard(x.device());
    torch::Tensor input = x.contiguous();
    torch::Tensor filter = f.contiguous();

    const int64_t in_h = input.size(2), in_w = input.size(3), fh = filter.size(0), fw = filter.size(1);
    const int64_t span_w = in_w * upx + px0 + px1 - fw;  // output = span // down + 1
    const int64_t span_h = in_h * upy + py0 + py1 - fh;
    TORCH_CHECK(span_w >= 0 && span_h >= 0 && in_w >= 1 && in_h >= 1,
                "upfirdn2d: the padded image is smaller than the filter; there are no output pixels");
    const int64_t out_w = span_w / downx + 1, out_h = span_h / downy + 1;
    torch::Tensor y = torch::empty({input.size(0), input.size(1), out_h, out_w}, input.options());
    TORCH_CHECK(y.numel() <= INT32_MAX * int64_t(64), "upfirdn2d: output too large");

    Upfirdn2dParams p = {};
    p.x = input.data_ptr();
    p.f = filter.data_ptr<float>();
    p.y = y.data_ptr();
    p.dtype = dtype_code(input.scalar_type());
    p.planes = input.size(0) * input.size(1);
    p.in_w = int(in_w); p.in_h = int(in_h); p.out_w = int(out_w); p.out_h = int(out_h);
    p.upx = int(upx); p.upy = int(upy); p.downx = int(downx); p.downy = int(downy);
    p.px0 = int(px0); p.py0 = int(py0);
    p.fw = int(fw); p.fh = int(fh);
    p.flip_filter = flip_filter ? 1 : 0;
    if (y.numel() == 0) return y;

    int err = upfirdn2d_launch(&p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == 0, "upfirdn2d: kernel launch failed: ", upfirdn2d_error_string(err));
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "Upsample, pad, FIR-filter and downsample each channel",
          py::arg("x"), py::arg("f"), py::arg("upx"), py::arg("upy"), py::arg("downx"), py::arg("downy"),
          py::arg("px0"), py::arg("px1"), py::arg("py0"), py::arg("py1"), py::arg("flip_filter"));
}
