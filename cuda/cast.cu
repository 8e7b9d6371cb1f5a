// Element type conversions (the CPU backend's `cast`): f32 → f64 is exact; f64 → f32 rounds to
// nearest, ties to even, as Rust's `as f32` does.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

extern "C" __global__ void cast_f32_f64(const float* x, double* y, unsigned long long n) {
    KEEL_GRID_STRIDE(i, n) { y[i] = (double)x[i]; }
}

extern "C" __global__ void cast_f64_f32(const double* x, float* y, unsigned long long n) {
    KEEL_GRID_STRIDE(i, n) { y[i] = (float)x[i]; }
}
