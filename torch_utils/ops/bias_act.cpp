// Torch binding for the bias_act CUDA kernel: checks arguments, allocates the output and calls
// the C launcher declared in bias_act.h.
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include "bias_act.h"

static int dtype_code(at::ScalarType type) {
    switch (type) {
        case at::kHalf: return BIAS_ACT_FLOAT16;
        case at::kBFloat16: return BIAS_ACT_BFLOAT16;
        case at::kFloat: return BIAS_ACT_FLOAT32;
        case at::kDouble: return BIAS_ACT_FLOAT64;
        default:
            TORCH_CHECK(false, "bias_act: unsupported dtype ", type, "; use float16, bfloat16, float32 or float64");
    }
    return -1;
}

// Same shape and the same memory layout (strides of size-1 dimensions do not matter).
static bool same_layout(const torch::Tensor& a, const torch::Tensor& b) {
    if (a.sizes() != b.sizes()) return false;
    for (int64_t d = 0; d < a.dim(); ++d)
        if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
    return true;
}

// y = clamp(gain * act(x + b)) for order 0, or the order-th derivative times dy (see bias_act.h).
static torch::Tensor bias_act(torch::Tensor x, c10::optional<torch::Tensor> b, c10::optional<torch::Tensor> dy,
                              int64_t act, int64_t order, int64_t dim, double alpha, double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_non_overlapping_and_dense(), "bias_act: x must be dense (contiguous or channels-last)");
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim ", dim, " out of range for a ", x.dim(), "-D tensor");
    TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2");
    const c10::cuda::OptionalCUDAGuard device_guard(x.device());

    BiasActParams p = {};
    p.x = x.data_ptr();
    p.numel = x.numel();
    p.channels = x.dim() > 0 ? x.size(dim) : 1;
    p.channel_stride = (x.dim() > 0 && p.channels > 1) ? x.stride(dim) : 1;
    p.act = int(act);
    p.order = int(order);
    p.dtype = dtype_code(x.scalar_type());
    p.alpha = alpha;
    p.gain = gain;
    p.clamp = clamp;

    torch::Tensor bias;
    if (b.has_value() && b->defined()) {
        bias = b->contiguous();
        TORCH_CHECK(bias.dim() == 1 && bias.numel() == p.channels, "bias_act: b must be 1-D with x.size(dim) entries");
        TORCH_CHECK(bias.device() == x.device() && bias.scalar_type() == x.scalar_type(),
                    "bias_act: b must have x's device and dtype");
        p.b = bias.data_ptr();
    }
    torch::Tensor grad;
    if (order > 0) {
        TORCH_CHECK(dy.has_value() && dy->defined(), "bias_act: dy is required for derivatives");
        grad = *dy;
        TORCH_CHECK(grad.device() == x.device() && grad.scalar_type() == x.scalar_type() &&
                    same_layout(grad, x),
                    "bias_act: dy must match x in device, dtype, shape and memory layout");
        p.dy = grad.data_ptr();
    }
    torch::Tensor y = torch::empty_like(x);
    TORCH_CHECK(same_layout(y, x), "bias_act: could not allocate the output in x's memory layout");
    p.out = y.data_ptr();

    int err = bias_act_launch(&p, c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == 0, "bias_act: kernel launch failed: ", bias_act_error_string(err));
    return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "Fused bias + activation + gain + clamp (or its derivatives)",
          py::arg("x"), py::arg("b"), py::arg("dy"), py::arg("act"), py::arg("order"), py::arg("dim"),
          py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
}
