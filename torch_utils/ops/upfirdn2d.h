// C interface between the torch binding (upfirdn2d.cpp) and the CUDA kernel (upfirdn2d.cu).
// Plain C types only, so that the kernel compiles with nvcc alone, without torch headers.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum Upfirdn2dDtype { UPFIRDN2D_FLOAT16 = 0, UPFIRDN2D_BFLOAT16 = 1, UPFIRDN2D_FLOAT32 = 2, UPFIRDN2D_FLOAT64 = 3 };

// For each of `planes` contiguous [in_h, in_w] images: insert up-1 zeros after every sample,
// pad by (px0, py0) at the start (negative crops; the end padding is implied by out_w/out_h),
// correlate with the [fh, fw] float32 filter f flipped in both axes (a true convolution), or
// with f as is when flip_filter != 0, and keep every down-th sample. Output is contiguous
// [planes, out_h, out_w]. The filter already includes any gain.
typedef struct {
    const void* x;
    const float* f;
    void* y;
    int dtype;              // Upfirdn2dDtype
    int64_t planes;         // N * C
    int in_w, in_h, out_w, out_h;
    int upx, upy, downx, downy;
    int px0, py0;
    int fw, fh;
    int flip_filter;
} Upfirdn2dParams;

// Launches on `stream` (a cudaStream_t). Returns 0 on success, otherwise a cudaError_t value
// (or -1 for invalid parameters); upfirdn2d_error_string() turns it into text.
int upfirdn2d_launch(const Upfirdn2dParams* params, void* stream);
const char* upfirdn2d_error_string(int code);

// Runs the kernel's per-pixel code on the CPU, on host pointers (for testing without a GPU).
int upfirdn2d_run_on_host(const Upfirdn2dParams* params);

#ifdef __cplusplus
}
#endif
