// CUDA kernel for bias_act: bias, activation (or its 1st/2nd derivative), gain and clamp in one pass.
// Needs only CUDA headers; the torch side lives in bias_act.cpp.
#include <cmath>
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "bias_act.h"

namespace {

template <typename T> struct ComputeType { typedef float type; };
template <> struct ComputeType<double> { typedef double type; };

#define HD __host__ __device__ __forceinline__  // used by both the kernel and the host runner
template <typename C> HD C load(const __half* p, int64_t i) { return C(__half2float(p[i])); }
template <typename C> HD C load(const __nv_bfloat16* p, int64_t i) { return C(__bfloat162float(p[i])); }
template <typename C> HD C load(const float* p, int64_t i) { return C(p[i]); }
template <typename C> HD C load(const double* p, int64_t i) { return C(p[i]); }

HD void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
HD void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }
HD void store(float* p, int64_t i, float v) { p[i] = v; }
HD void store(double* p, int64_t i, double v) { p[i] = v; }

// Value and first two derivatives of the activation at v. At kinks the derivative follows
// PyTorch autograd (relu: 0 at v = 0; lrelu: alpha at v = 0; softplus: linear above 20).
template <typename C>
HD void activation(int act, C v, C alpha, C& f0, C& f1, C& f2) {
    const C one = C(1), zero = C(0);
    switch (act) {
        case 2:  // relu
            f0 = v > zero ? v : zero; f1 = v > zero ? one : zero; f2 = zero; break;
        case 3:  // lrelu
            f0 = v > zero ? v : v * alpha; f1 = v > zero ? one : alpha; f2 = zero; break;
        case 4: {  // tanh
            C t = tanh(v);
            f0 = t; f1 = one - t * t; f2 = C(-2) * t * (one - t * t); break;
        }
        case 5: {  // sigmoid
            C s = one / (one + exp(-v));
            f0 = s; f1 = s * (one - s); f2 = s * (one - s) * (one - C(2) * s); break;
        }
        case 6: {  // elu (alpha 1)
            C e = exp(v);
            f0 = v > zero ? v : e - one; f1 = v > zero ? one : e; f2 = v > zero ? zero : e; break;
        }
        case 7: {  // selu
            const C scale = C(1.0507009873554804934193349852946);
            const C scaled_alpha = scale * C(1.6732632423543772848170429916717);
            C e = scaled_alpha * exp(v);
            f0 = v > zero ? scale * v : e - scaled_alpha; f1 = v > zero ? scale : e; f2 = v > zero ? zero : e; break;
        }
        case 8: {  // softplus (beta 1, threshold 20)
            C s = one / (one + exp(-v));
            bool linear = v > C(20);
            f0 = linear ? v : log1p(exp(v)); f1 = linear ? one : s; f2 = linear ? zero : s * (one - s); break;
        }
        case 9: {  // swish
            C s = one / (one + exp(-v));
            f0 = s * v; f1 = s * (one + v * (one - s)); f2 = s * (one - s) * (C(2) + v * (one - C(2) * s)); break;
        }
        default:  // 1: linear
            f0 = v; f1 = one; f2 = zero; break;
    }
}

// Computes output element i; shared by the GPU kernel and the host runner used in tests.
template <typename T>
HD void bias_act_element(const BiasActParams& p, int64_t i) {
    typedef typename ComputeType<T>::type C;
    const T* x = static_cast<const T*>(p.x);
    const T* b = static_cast<const T*>(p.b);
    const T* dy = static_cast<const T*>(p.dy);
    T* out = static_cast<T*>(p.out);
    const C alpha = C(p.alpha), gain = C(p.gain), clamp = C(p.clamp);
    C v = load<C>(x, i);
    if (b) v += load<C>(b, (i / p.channel_stride) % p.channels);
    C f0, f1, f2;
    activation<C>(p.act, v, alpha, f0, f1, f2);
    const C pre = f0 * gain;
    C result;
    if (p.order == 0) {
        result = pre;
        if (clamp >= C(0)) result = pre < -clamp ? -clamp : (pre > clamp ? clamp : pre);
    } else {
        const bool inside = clamp < C(0) || (pre >= -clamp && pre <= clamp);
        result = inside ? load<C>(dy, i) * (p.order == 1 ? f1 : f2) * gain : C(0);
    }
    store(out, i, result);
}

template <typename T>
__global__ void bias_act_kernel(BiasActParams p) {
    const int64_t step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += step) bias_act_element<T>(p, i);
}

template <typename T>
cudaError_t launch(const BiasActParams& p, cudaStream_t stream) {
    const int threads = 256;
    int64_t blocks = (p.numel + threads - 1) / threads;
    if (blocks > 65536) blocks = 65536;  // the grid-stride loop covers the rest
    bias_act_kernel<T><<<int(blocks), threads, 0, stream>>>(p);
    return cudaGetLastError();
}

template <typename T>
void run_host(const BiasActParams& p) {
    for (int64_t i = 0; i < p.numel; ++i) bias_act_element<T>(p, i);
}

bool valid(const BiasActParams* p) {
    if (!p || !p->x || !p->out || p->numel < 0 || p->order < 0 || p->order > 2) return false;
    if (p->order > 0 && !p->dy) return false;
    if (p->b && (p->channel_stride <= 0 || p->channels <= 0)) return false;
    return p->dtype >= BIAS_ACT_FLOAT16 && p->dtype <= BIAS_ACT_FLOAT64;
}

}  // namespace

extern "C" int bias_act_launch(const BiasActParams* p, void* stream) {
    if (!valid(p)) return -1;
    if (p->numel == 0) return 0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (p->dtype) {
        case BIAS_ACT_FLOAT16: return int(launch<__half>(*p, s));
        case BIAS_ACT_BFLOAT16: return int(launch<__nv_bfloat16>(*p, s));
        case BIAS_ACT_FLOAT32: return int(launch<float>(*p, s));
        default: return int(launch<double>(*p, s));
    }
}

extern "C" int bias_act_run_on_host(const BiasActParams* p) {
    if (!valid(p)) return -1;
    switch (p->dtype) {
        case BIAS_ACT_FLOAT16: run_host<__half>(*p); break;
        case BIAS_ACT_BFLOAT16: run_host<__nv_bfloat16>(*p); break;
        case BIAS_ACT_FLOAT32: run_host<float>(*p); break;
        default: run_host<double>(*p); break;
    }
    return 0;
}

extern "C" const char* bias_act_error_string(int code) {
    if (code == -1) return "invalid bias_act parameters";
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
