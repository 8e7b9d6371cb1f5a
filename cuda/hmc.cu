// Hamiltonian Monte Carlo over a flat parameter vector (host/src/bayes/hmc.rs): the fused
// leapfrog update with the prior's gradient folded in, and the partial sums of the
// Metropolis–Hastings test (kinetic energy, prior difference). Each kernel computes what the
// CPU twin in host/engine/src/backend/cpu/hmc.rs computes, in the same order.
//
// The prior (the same density on every element, untempered) is `kind` with up to three
// parameters: 0 none; 1 Gaussian (a = std); 2 scale mixture π N(0, σ₁²) + (1 − π) N(0, σ₂²)
// (a = π, b = σ₁, c = σ₂); 3 logistic (a = scale).
//
// Partial sums: `out[j]` is the sum, in f64, of the elements [j·chunk, min(n, (j + 1)·chunk)),
// added in order from +0; the host adds the ⌈n/chunk⌉ partials in order.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float keel_exp(float x) { return expf(x); }
__device__ __forceinline__ double keel_exp(double x) { return exp(x); }
__device__ __forceinline__ float keel_log(float x) { return logf(x); }
__device__ __forceinline__ double keel_log(double x) { return log(x); }
__device__ __forceinline__ float keel_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double keel_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float keel_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double keel_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float keel_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double keel_abs(double x) { return fabs(x); }

// ½ log 2π.
#define KEEL_HALF_LN_2PI 0.91893853320467274178

// The two mixture components' log densities at t, less ½ log 2π.
template <typename T>
__device__ __forceinline__ void keel_mixture_terms(T w, T wide, T narrow, T t, T* la, T* lb) {
    const T zw = t / wide, zn = t / narrow;
    *la = keel_log(w) - T(0.5) * (zw * zw) - keel_log(wide);
    *lb = keel_log(T(1) - w) - T(0.5) * (zn * zn) - keel_log(narrow);
}

// d log p / dθ at t.
template <typename T>
__device__ __forceinline__ T keel_prior_grad(unsigned long long kind, T a, T b, T c, T t) {
    if (kind == 1) {
        return -t / (a * a);
    }
    if (kind == 2) {
        T la, lb;
        keel_mixture_terms(a, b, c, t, &la, &lb);
        const T r = T(1) / (T(1) + keel_exp(lb - la));
        return -t * (r / (b * b) + (T(1) - r) / (c * c));
    }
    if (kind == 3) {
        return -keel_tanh(T(0.5) * t / a) / a;
    }
    return T(0);
}

// log p(t).
template <typename T>
__device__ __forceinline__ T keel_prior_log_density(unsigned long long kind, T a, T b, T c, T t) {
    if (kind == 1) {
        const T z = t / a;
        return -T(0.5) * (z * z) - keel_log(a) - T(KEEL_HALF_LN_2PI);
    }
    if (kind == 2) {
        T la, lb;
        keel_mixture_terms(a, b, c, t, &la, &lb);
        const T m = la > lb ? la : lb;
        return m + keel_log(keel_exp(la - m) + keel_exp(lb - m)) - T(KEEL_HALF_LN_2PI);
    }
    if (kind == 3) {
        const T z = keel_abs(t / a);
        return -z - T(2) * keel_log1p(keel_exp(-z)) - keel_log(a);
    }
    return T(0);
}

// log p(new) − log p(old); for the Gaussian −(new − old)(new + old)/(2σ²), the reference's
// difference form.
template <typename T>
__device__ __forceinline__ T keel_prior_difference(unsigned long long kind, T a, T b, T c, T x,
                                                   T y) {
    if (kind == 1) {
        return -((x - y) * (x + y)) / (T(2) * a * a);
    }
    return keel_prior_log_density(kind, a, b, c, x) - keel_prior_log_density(kind, a, b, c, y);
}

#define KEEL_HMC_FAMILY(T, DT)                                                                   \
    /* With G = g + ∇log p(θ)/temp: `kicks` half kicks p ← p + half·G, then (if drift) the   */ \
    /* drift θ ← θ + eps·p. One leapfrog trajectory of L steps is kicks = 1 then L − 1 times */ \
    /* kicks = 2 (the closing half kick of one step and the opening one of the next, both at */ \
    /* the same θ), each with a drift, and a closing kick without one.                       */ \
    extern "C" __global__ void hmc_leapfrog_##DT(                                                \
        T* theta, T* p, const T* g, unsigned long long n, T half, unsigned long long kicks,      \
        T eps, unsigned long long drift, unsigned long long kind, T a, T b, T c, T temp) {      \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            const T t = theta[i];                                                                \
            const T gi = g[i] + keel_prior_grad(kind, a, b, c, t) / temp;                        \
            T pi = p[i];                                                                         \
            for (unsigned long long k = 0; k < kicks; ++k) {                                     \
                pi = pi + half * gi;                                                             \
            }                                                                                    \
            p[i] = pi;                                                                           \
            if (drift != 0) {                                                                    \
                theta[i] = t + eps * pi;                                                         \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void hmc_sum_squares_##DT(const T* x, double* out, unsigned long long n, \
                                                    unsigned long long chunk) {                  \
        KEEL_GRID_STRIDE(j, (n + chunk - 1) / chunk) {                                           \
            const unsigned long long end = (j + 1) * chunk < n ? (j + 1) * chunk : n;            \
            double s = 0.0;                                                                      \
            for (unsigned long long i = j * chunk; i < end; ++i) {                               \
                const double v = (double)x[i];                                                   \
                s += v * v;                                                                      \
            }                                                                                    \
            out[j] = s;                                                                          \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void hmc_prior_difference_##DT(                                        \
        const T* x, const T* y, double* out, unsigned long long n, unsigned long long chunk,     \
        unsigned long long kind, T a, T b, T c) {                                                \
        KEEL_GRID_STRIDE(j, (n + chunk - 1) / chunk) {                                           \
            const unsigned long long end = (j + 1) * chunk < n ? (j + 1) * chunk : n;            \
            double s = 0.0;                                                                      \
            for (unsigned long long i = j * chunk; i < end; ++i) {                               \
                s += (double)keel_prior_difference(kind, a, b, c, x[i], y[i]);                   \
            }                                                                                    \
            out[j] = s;                                                                          \
        }                                                                                        \
    }

KEEL_HMC_FAMILY(float, f32)
KEEL_HMC_FAMILY(double, f64)
