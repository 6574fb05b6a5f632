// CUDA kernel for upfirdn2d: zero-insertion upsampling, padding, FIR filtering and decimation in
// one pass, one thread per output pixel, visiting only the filter taps that land on real samples.
// Needs only CUDA headers; the torch side lives in upfirdn2d.cpp.
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include "upfirdn2d.h"

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

// First tap index k >= 0 with start + k a non-negative multiple of `up`.
HD int first_tap(int start, int up) {
    int k = ((-start) % up + up) % up;
    return start + k < 0 ? -start : k;  // -start is congruent to k modulo up
}

#if defined(__CUDA_ARCH__)
#define LOAD_FILTER(ptr) __ldg(ptr)
#else
#define LOAD_FILTER(ptr) (*(ptr))
#endif

// Computes output pixel i; shared by the GPU kernel and the host runner used in tests.
template <typename T>
HD void upfirdn2d_pixel(const Upfirdn2dParams& p, int64_t i) {
    typedef typename ComputeType<T>::type C;
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const int64_t out_plane = int64_t(p.out_h) * p.out_w;
    const int64_t in_plane = int64_t(p.in_h) * p.in_w;
    const int up_h = p.in_h * p.upy, up_w = p.in_w * p.upx;
    const int64_t plane = i / out_plane;
    const int oy = int((i / p.out_w) % p.out_h);
    const int ox = int(i % p.out_w);
    // Coordinates, in the upsampled unpadded image, of the sample under filter tap 0.
    const int sy = oy * p.downy - p.py0;
    const int sx = ox * p.downx - p.px0;
    const int ky_end = p.fh < up_h - sy ? p.fh : up_h - sy;
    const int kx_end = p.fw < up_w - sx ? p.fw : up_w - sx;
    const int kx_begin = first_tap(sx, p.upx);
    const T* src = x + plane * in_plane;
    C acc = C(0);
    for (int ky = first_tap(sy, p.upy); ky < ky_end; ky += p.upy) {
        const int iy = (sy + ky) / p.upy;
        const int fy = p.flip_filter ? ky : p.fh - 1 - ky;
        for (int kx = kx_begin; kx < kx_end; kx += p.upx) {
            const int ix = (sx + kx) / p.upx;
            const int fx = p.flip_filter ? kx : p.fw - 1 - kx;
            acc += load<C>(src, int64_t(iy) * p.in_w + ix) * C(LOAD_FILTER(p.f + fy * p.fw + fx));
        }
    }
    store(y, i, acc);
}

template <typename T>
__global__ void upfirdn2d_kernel(Upfirdn2dParams p) {
    const int64_t total = p.planes * int64_t(p.out_h) * p.out_w;
    const int64_t step = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) upfirdn2d_pixel<T>(p, i);
}

template <typename T>
cudaError_t launch(const Upfirdn2dParams& p, cudaStream_t stream) {
    const int threads = 256;
    const int64_t total = p.planes * int64_t(p.out_h) * p.out_w;
    int64_t blocks = (total + threads - 1) / threads;
    if (blocks > 65536) blocks = 65536;  // the grid-stride loop covers the rest
    upfirdn2d_kernel<T><<<int(blocks), threads, 0, stream>>>(p);
    return cudaGetLastError();
}

template <typename T>
void run_host(const Upfirdn2dParams& p) {
    const int64_t total = p.planes * int64_t(p.out_h) * p.out_w;
    for (int64_t i = 0; i < total; ++i) upfirdn2d_pixel<T>(p, i);
}

bool valid(const Upfirdn2dParams* p) {
    if (!p || !p->x || !p->f || !p->y || p->planes < 0) return false;
    if (p->upx < 1 || p->upy < 1 || p->downx < 1 || p->downy < 1 || p->fw < 1 || p->fh < 1) return false;
    if (p->in_w < 1 || p->in_h < 1 || p->out_w < 1 || p->out_h < 1) return false;
    return p->dtype >= UPFIRDN2D_FLOAT16 && p->dtype <= UPFIRDN2D_FLOAT64;
}

}  // namespace

extern "C" int upfirdn2d_launch(const Upfirdn2dParams* p, void* stream) {
    if (!valid(p)) return -1;
    if (p->planes == 0) return 0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (p->dtype) {
        case UPFIRDN2D_FLOAT16: return int(launch<__half>(*p, s));
        case UPFIRDN2D_BFLOAT16: return int(launch<__nv_bfloat16>(*p, s));
        case UPFIRDN2D_FLOAT32: return int(launch<float>(*p, s));
        default: return int(launch<double>(*p, s));
    }
}

extern "C" int upfirdn2d_run_on_host(const Upfirdn2dParams* p) {
    if (!valid(p)) return -1;
    switch (p->dtype) {
        case UPFIRDN2D_FLOAT16: run_host<__half>(*p); break;
        case UPFIRDN2D_BFLOAT16: run_host<__nv_bfloat16>(*p); break;
        case UPFIRDN2D_FLOAT32: run_host<float>(*p); break;
        default: run_host<double>(*p); break;
    }
    return 0;
}

extern "C" const char* upfirdn2d_error_string(int code) {
    if (code == -1) return "invalid upfirdn2d parameters";
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
