// Reductions along one axis of a tensor viewed as [outer, dim, inner] → [outer, inner]: one
// thread per OUTPUT element, walking the axis in order, so each result is bit-identical to
// `sum_axis` / `max_axis` in host/engine/src/backend/cpu/kernels.rs (the sum starts from +0 and adds
// d = 0, 1, …, dim − 1; the max starts from d = 0 and lets a NaN win).
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
