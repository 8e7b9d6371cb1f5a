// Fused optimizer updates, in place: one pass per parameter over its buffers, the same
// arithmetic in the same order as `update` in host/engine/src/optim.rs. The host folds the step count,
// learning rate and variant into the scalar arguments exactly as `update` does:
//   adam:  step_size = lr / (1 − β₁ᵗ), inv_sqrt_bc2 = 1/√(1 − β₂ᵗ);
//          Adam: wd = λ, decay = 1; AdamW: wd = 0, decay = 1 − lr·λ.
//   sgd_momentum: keep = (t == 1 ? 0 : μ); Nesterov: nest = μ, plain = 1, base = 0;
//          classic: nest = 0, plain = 0, base = 1.
//   sgd (no momentum buffer).
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float keel_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double keel_sqrt(double x) { return sqrt(x); }
// Moment buffers are stored flushed: zero where subnormal, as `flush` in optim.rs.
__device__ __forceinline__ float keel_flush(float x) {
    return fabsf(x) < 1.17549435082228751e-38f ? 0.0f : x;
}
__device__ __forceinline__ double keel_flush(double x) {
    return fabs(x) < 2.2250738585072014e-308 ? 0.0 : x;
}

#define KEEL_OPTIM_FAMILY(T, DT)                                                                 \
    extern "C" __global__ void adam_##DT(T* p, const T* g, T* m, T* v, unsigned long long n,    \
                                         T b1, T b2, T step_size, T inv_sqrt_bc2, T eps, T wd,  \
                                         T decay) {                                              \
        const T c1 = T(1) - b1, c2 = T(1) - b2;                                                  \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            const T pi = p[i];                                                                   \
            const T gi = g[i] + wd * pi;                                                         \
            const T mi = keel_flush(b1 * m[i] + c1 * gi);                                        \
            const T vi = keel_flush(b2 * v[i] + c2 * gi * gi);                                   \
            m[i] = mi;                                                                           \
            v[i] = vi;                                                                           \
            p[i] = pi * decay - step_size * mi / (keel_sqrt(vi) * inv_sqrt_bc2 + eps);           \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void sgd_momentum_##DT(T* p, const T* g, T* buf, unsigned long long n, \
                                                 T lr, T wd, T keep, T nest, T plain, T base) {  \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            const T pi = p[i];                                                                   \
            const T d = g[i] + wd * pi;                                                          \
            const T b = keel_flush(keep * buf[i] + d);                                           \
            buf[i] = b;                                                                          \
            p[i] = pi - lr * (plain * d + nest * b + base * b);                                  \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void sgd_##DT(T* p, const T* g, unsigned long long n, T lr, T wd) {   \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            const T pi = p[i];                                                                   \
            p[i] = pi - lr * (g[i] + wd * pi);                                                   \
        }                                                                                        \
    }

KEEL_OPTIM_FAMILY(float, f32)
KEEL_OPTIM_FAMILY(double, f64)
