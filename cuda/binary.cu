// Broadcasting binary kernels y = op(a, b) and the select y = m != 0 ? a : b. Each op computes
// exactly what `apply2` in host/engine/src/backend/cpu/kernels.rs computes (max keeps a NaN `b`; gt and
// eq give 1 or 0; addrelu and mulstep send NaN to 0).
//
// Layout (`info`, in device memory): [rank, d0, d1, d2, d3, s0_0..s0_3, s1_0..s1_3, …] — the
// output dims (the first `rank` are used, rank 0..4) and, for each operand in argument order, its
// element stride per output axis (0 on broadcast axes; `Shape::broadcast_strides`). Output element
// i is at the row-major multi-index of i over the dims; operand k reads at Σ idx_ax · s_k_ax.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

// The offsets of output element i in each of K operands laid out as above.
template <int K>
__device__ __forceinline__ void keel_offsets(unsigned long long i, const unsigned long long* info,
                                             unsigned long long (&off)[K]) {
    const unsigned long long rank = info[0];
    for (int k = 0; k < K; ++k) {
        off[k] = 0;
    }
    for (unsigned long long ax = rank; ax-- > 0;) {
        const unsigned long long d = info[1 + ax];
        const unsigned long long idx = i % d;
        i /= d;
        for (int k = 0; k < K; ++k) {
            off[k] += idx * info[5 + 4 * k + ax];
        }
    }
}

template <typename T> __device__ __forceinline__ T op_add(T a, T b) { return a + b; }
template <typename T> __device__ __forceinline__ T op_sub(T a, T b) { return a - b; }
template <typename T> __device__ __forceinline__ T op_mul(T a, T b) { return a * b; }
template <typename T> __device__ __forceinline__ T op_div(T a, T b) { return a / b; }
template <typename T> __device__ __forceinline__ T op_max(T a, T b) {
    return (a >= b || isnan(b)) ? a : b;
}
template <typename T> __device__ __forceinline__ T op_gt(T a, T b) { return a > b ? T(1) : T(0); }
template <typename T> __device__ __forceinline__ T op_eq(T a, T b) { return a == b ? T(1) : T(0); }
// relu(a + b) and a * step(b): add then relu, mul by step, in one pass (unary.cu's relu and step).
template <typename T> __device__ __forceinline__ T op_addrelu(T a, T b) {
    const T s = a + b;
    return s > T(0) ? s : T(0);
}
template <typename T> __device__ __forceinline__ T op_mulstep(T a, T b) {
    return a * (b > T(0) ? T(1) : T(0));
}

#define KEEL_BINARY(OP, T, DT)                                                                   \
    extern "C" __global__ void binary_##OP##_##DT(const T* a, const T* b, T* y,                 \
                                                  unsigned long long n,                          \
                                                  const unsigned long long* info) {              \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            unsigned long long off[2];                                                           \
            keel_offsets<2>(i, info, off);                                                       \
            y[i] = op_##OP(a[off[0]], b[off[1]]);                                                \
        }                                                                                        \
    }

#define KEEL_BINARY_FAMILY(T, DT)                                                                \
    KEEL_BINARY(add, T, DT)                                                                      \
    KEEL_BINARY(sub, T, DT)                                                                      \
    KEEL_BINARY(mul, T, DT)                                                                      \
    KEEL_BINARY(div, T, DT)                                                                      \
    KEEL_BINARY(max, T, DT)                                                                      \
    KEEL_BINARY(gt, T, DT)                                                                       \
    KEEL_BINARY(eq, T, DT)                                                                       \
    KEEL_BINARY(addrelu, T, DT)                                                                  \
    KEEL_BINARY(mulstep, T, DT)                                                                  \
                                                                                                 \
    extern "C" __global__ void where_##DT(const T* m, const T* a, const T* b, T* y,             \
                                          unsigned long long n, const unsigned long long* info) { \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            unsigned long long off[3];                                                           \
            keel_offsets<3>(i, info, off);                                                       \
            y[i] = m[off[0]] != T(0) ? a[off[1]] : b[off[2]];                                    \
        }                                                                                        \
    }

KEEL_BINARY_FAMILY(float, f32)
KEEL_BINARY_FAMILY(double, f64)
