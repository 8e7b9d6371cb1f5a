// Reductions along one axis of a tensor viewed as [outer, dim, inner] → [outer, inner]: one
// thread per OUTPUT element, walking the axis in order, so each result is bit-identical to
// `sum_axis` / `max_axis` in host/engine/src/backend/cpu/kernels.rs (the sum starts from +0 and
// adds d = 0, 1, …, dim − 1; the max starts from d = 0 and lets a NaN win). The host uses them
// for inner > 1 and for short rows; long contiguous rows (inner = 1) go to the block-per-row
// kernels further down.
//
// max_axis needs dim ≥ 1 (as on the CPU); sum_axis over dim = 0 gives zeros.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

#define KEEL_REDUCE_FAMILY(T, DT)                                                                \
    extern "C" __global__ void sum_axis_##DT(const T* x, T* y, unsigned long long outer,        \
                                             unsigned long long dim, unsigned long long inner) { \
        KEEL_GRID_STRIDE(j, outer * inner) {                                                     \
            const unsigned long long o = j / inner, i = j % inner;                               \
            const T* col = x + o * dim * inner + i;                                              \
            T s = T(0);                                                                          \
            for (unsigned long long d = 0; d < dim; ++d) {                                       \
                s += col[d * inner];                                                             \
            }                                                                                    \
            y[j] = s;                                                                            \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void max_axis_##DT(const T* x, T* y, unsigned long long outer,        \
                                             unsigned long long dim, unsigned long long inner) { \
        KEEL_GRID_STRIDE(j, outer * inner) {                                                     \
            const unsigned long long o = j / inner, i = j % inner;                               \
            const T* col = x + o * dim * inner + i;                                              \
            T m = col[0];                                                                        \
            for (unsigned long long d = 1; d < dim; ++d) {                                       \
                const T v = col[d * inner];                                                      \
                if (v > m || isnan(v)) {                                                         \
                    m = v;                                                                       \
                }                                                                                \
            }                                                                                    \
            y[j] = m;                                                                            \
        }                                                                                        \
    }

KEEL_REDUCE_FAMILY(float, f32)
KEEL_REDUCE_FAMILY(double, f64)

// Row reductions of a contiguous [rows, dim] → one value per segment of a row: one BLOCK per
// segment (a grid-stride loop over the rows·parts segments), each row cut into
// parts = ⌈dim / chunk⌉ segments of `chunk` elements (the last shorter) whose results go to
// y[r·parts + p] (the host sums the parts with a second launch, chunk = parts). Reads are
// coalesced: consecutive threads read consecutive elements.
//
// Order, which the CPU twin in host/engine/tests/cuda_emu.rs reproduces bit for bit: thread t
// combines the segment's elements t, t + blockDim, t + 2·blockDim, … in order, starting from
// the identity; each warp then combines its lanes by shuffles down 16, 8, 4, 2, 1; lane 0 of
// each warp stores the warp's value; warp 0 loads them (the identity past the last warp) and
// combines them by the same shuffles. blockDim must be a multiple of 32 (whole warps, full
// shuffle masks) and at most 1024; chunk ≥ 1; dim ≥ 1 for max.
//
// sum: identity +0, a + b. max: identity the segment's first element (max is idempotent), and
// b wins when b > a or b is NaN (as max_axis: a NaN wins).

__device__ __forceinline__ float keel_rows_max(float a, float b) {
    return (b > a || isnan(b)) ? b : a;
}
__device__ __forceinline__ double keel_rows_max(double a, double b) {
    return (b > a || isnan(b)) ? b : a;
}

#define KEEL_ROWS_KERNEL(T, DT, NAME, IDENTITY, COMBINE)                                        \
    extern "C" __global__ void NAME##_rows_##DT(const T* x, T* y, unsigned long long rows,      \
                                                unsigned long long dim,                          \
                                                unsigned long long chunk) {                      \
        __shared__ T warp_values[32];                                                            \
        const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;                         \
        const unsigned warps = blockDim.x / 32;                                                  \
        const unsigned long long parts = (dim + chunk - 1) / chunk;                              \
        for (unsigned long long s = blockIdx.x; s < rows * parts; s += gridDim.x) {             \
            const unsigned long long r = s / parts, begin = s % parts * chunk;                   \
            const unsigned long long end = begin + chunk < dim ? begin + chunk : dim;            \
            const T* seg = x + r * dim;                                                          \
            const T identity = IDENTITY;                                                         \
            T v = identity;                                                                      \
            for (unsigned long long k = begin + threadIdx.x; k < end; k += blockDim.x) {        \
                v = COMBINE(v, seg[k]);                                                          \
            }                                                                                    \
            for (unsigned off = 16; off > 0; off /= 2) {                                         \
                v = COMBINE(v, __shfl_down_sync(0xffffffffu, v, off));                          \
            }                                                                                    \
            if (lane == 0) {                                                                     \
                warp_values[warp] = v;                                                           \
            }                                                                                    \
            __syncthreads();                                                                     \
            if (warp == 0) {                                                                     \
                v = lane < warps ? warp_values[lane] : identity;                                 \
                for (unsigned off = 16; off > 0; off /= 2) {                                     \
                    v = COMBINE(v, __shfl_down_sync(0xffffffffu, v, off));                      \
                }                                                                                \
                if (lane == 0) {                                                                 \
                    y[s] = v;                                                                    \
                }                                                                                \
            }                                                                                    \
            __syncthreads();                                                                     \
        }                                                                                        \
    }

#define KEEL_ROWS_ADD(a, b) ((a) + (b))

KEEL_ROWS_KERNEL(float, f32, sum, 0.0f, KEEL_ROWS_ADD)
KEEL_ROWS_KERNEL(double, f64, sum, 0.0, KEEL_ROWS_ADD)
KEEL_ROWS_KERNEL(float, f32, max, seg[begin], keel_rows_max)
KEEL_ROWS_KERNEL(double, f64, max, seg[begin], keel_rows_max)
