// Elementwise unary kernels: y = op(x) for every op of the CPU backend's `UnaryOp`, plus
// `affine` (a·x + b) and `powf` (xᶜ). Each op computes exactly what `apply` in
// host/engine/src/backend/cpu/kernels.rs computes, branch for branch (relu and step send NaN to 0,
// sigmoid and softplus use the same stable forms).
//
// Standalone for NVRTC: no #include; expf/exp and friends are NVRTC's built-in device math.
// No pointer is __restrict__, so these kernels may run in place (y == x).

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

// One name per function, overloaded on the element type, so an f32 kernel calls the float
// function (expf) and never rounds through double.
__device__ __forceinline__ float keel_exp(float x) { return expf(x); }
__device__ __forceinline__ double keel_exp(double x) { return exp(x); }
__device__ __forceinline__ float keel_log(float x) { return logf(x); }
__device__ __forceinline__ double keel_log(double x) { return log(x); }
__device__ __forceinline__ float keel_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double keel_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float keel_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double keel_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float keel_sin(float x) { return sinf(x); }
__device__ __forceinline__ double keel_sin(double x) { return sin(x); }
__device__ __forceinline__ float keel_cos(float x) { return cosf(x); }
__device__ __forceinline__ double keel_cos(double x) { return cos(x); }
__device__ __forceinline__ float keel_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double keel_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float keel_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double keel_abs(double x) { return fabs(x); }
__device__ __forceinline__ float keel_pow(float x, float c) { return powf(x, c); }
__device__ __forceinline__ double keel_pow(double x, double c) { return pow(x, c); }

template <typename T> __device__ __forceinline__ T op_neg(T x) { return -x; }
template <typename T> __device__ __forceinline__ T op_exp(T x) { return keel_exp(x); }
template <typename T> __device__ __forceinline__ T op_log(T x) { return keel_log(x); }
template <typename T> __device__ __forceinline__ T op_log1p(T x) { return keel_log1p(x); }
template <typename T> __device__ __forceinline__ T op_tanh(T x) { return keel_tanh(x); }
template <typename T> __device__ __forceinline__ T op_sin(T x) { return keel_sin(x); }
template <typename T> __device__ __forceinline__ T op_cos(T x) { return keel_cos(x); }
template <typename T> __device__ __forceinline__ T op_sqrt(T x) { return keel_sqrt(x); }
template <typename T> __device__ __forceinline__ T op_square(T x) { return x * x; }
template <typename T> __device__ __forceinline__ T op_abs(T x) { return keel_abs(x); }

// 1/(1 + e⁻ˣ) for x ≥ 0, eˣ/(1 + eˣ) below (neither form overflows).
template <typename T> __device__ __forceinline__ T op_sigmoid(T x) {
    if (x >= T(0)) {
        return T(1) / (T(1) + keel_exp(-x));
    }
    const T e = keel_exp(x);
    return e / (T(1) + e);
}

// ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|).
template <typename T> __device__ __forceinline__ T op_softplus(T x) {
    const T m = x > T(0) ? x : T(0);
    return m + keel_log1p(keel_exp(-keel_abs(x)));
}

template <typename T> __device__ __forceinline__ T op_relu(T x) { return x > T(0) ? x : T(0); }
template <typename T> __device__ __forceinline__ T op_step(T x) { return x > T(0) ? T(1) : T(0); }

template <typename T> __device__ __forceinline__ T op_sign(T x) {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

#define KEEL_UNARY(OP, T, DT)                                                                    \
    extern "C" __global__ void unary_##OP##_##DT(const T* x, T* y, unsigned long long n) {      \
        KEEL_GRID_STRIDE(i, n) { y[i] = op_##OP(x[i]); }                                        \
    }

#define KEEL_UNARY_FAMILY(T, DT)                                                                 \
    KEEL_UNARY(neg, T, DT)                                                                       \
    KEEL_UNARY(exp, T, DT)                                                                       \
    KEEL_UNARY(log, T, DT)                                                                       \
    KEEL_UNARY(log1p, T, DT)                                                                     \
    KEEL_UNARY(tanh, T, DT)                                                                      \
    KEEL_UNARY(sigmoid, T, DT)                                                                   \
    KEEL_UNARY(softplus, T, DT)                                                                  \
    KEEL_UNARY(relu, T, DT)                                                                      \
    KEEL_UNARY(sin, T, DT)                                                                       \
    KEEL_UNARY(cos, T, DT)                                                                       \
    KEEL_UNARY(sqrt, T, DT)                                                                      \
    KEEL_UNARY(square, T, DT)                                                                    \
    KEEL_UNARY(abs, T, DT)                                                                       \
    KEEL_UNARY(step, T, DT)                                                                      \
    KEEL_UNARY(sign, T, DT)                                                                      \
                                                                                                 \
    extern "C" __global__ void affine_##DT(const T* x, T* y, unsigned long long n, T a, T b) {  \
        KEEL_GRID_STRIDE(i, n) { y[i] = a * x[i] + b; }                                         \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void powf_##DT(const T* x, T* y, unsigned long long n, T c) {         \
        KEEL_GRID_STRIDE(i, n) { y[i] = keel_pow(x[i], c); }                                    \
    }

KEEL_UNARY_FAMILY(float, f32)
KEEL_UNARY_FAMILY(double, f64)
