// C interface between the torch binding (bias_act.cpp) and the CUDA kernel (bias_act.cu).
// Plain C types only, so that the kernel compiles with nvcc alone, without torch headers.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum BiasActDtype { BIAS_ACT_FLOAT16 = 0, BIAS_ACT_BFLOAT16 = 1, BIAS_ACT_FLOAT32 = 2, BIAS_ACT_FLOAT64 = 3 };

// For every element: v = x + b[channel], p = gain * act(v), and
//   order 0: out = clamp(p, -clamp, clamp)                 (no clamping when clamp < 0)
//   order k: out = dy * gain * act^(k)(v) where -clamp <= p <= clamp, else 0   (k = 1, 2)
// x, dy and out share one dense memory layout; the channel of memory offset i is
// (i / channel_stride) % channels. fp16/bf16 are computed in float32, float64 in float64.
typedef struct {
    const void* x;
    const void* b;          // [channels], or NULL for no bias
    const void* dy;         // required when order > 0
    void* out;
    int64_t numel;
    int64_t channel_stride;
    int64_t channels;
    int act;                // 1 linear, 2 relu, 3 lrelu, 4 tanh, 5 sigmoid, 6 elu, 7 selu, 8 softplus, 9 swish
    int order;              // 0, 1 or 2
    int dtype;              // BiasActDtype
    double alpha;
    double gain;
    double clamp;
} BiasActParams;

// Launches on `stream` (a cudaStream_t). Returns 0 on success, otherwise a cudaError_t value
// (or -1 for invalid parameters); bias_act_error_string() turns it into text.
int bias_act_launch(const BiasActParams* params, void* stream);
const char* bias_act_error_string(int code);

// Runs the kernel's per-element code on the CPU, on host pointers (for testing without a GPU).
int bias_act_run_on_host(const BiasActParams* params);

#ifdef __cplusplus
}
#endif
