// Gather and scatter-add along the middle axis of [outer, dim, inner] (the CPU backend's
// `index_select` / `index_add` in host/engine/src/backend/cpu/kernels.rs). One thread per element of
// the [outer, n_idx, inner] side.
//
// index_add: y must be zeroed first (or hold what the sums should start from); repeated
// indices accumulate with atomicAdd, so their order — and the last bits of such sums — can
// differ from the CPU's j-ascending order. atomicAdd on double needs sm_60 or newer.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

#define KEEL_INDEX_FAMILY(T, DT)                                                                 \
    extern "C" __global__ void index_select_##DT(const T* x, const unsigned long long* idx,     \
                                                 T* y, unsigned long long outer,                 \
                                                 unsigned long long dim,                         \
                                                 unsigned long long inner,                       \
                                                 unsigned long long n_idx) {                     \
        KEEL_GRID_STRIDE(i, outer * n_idx * inner) {                                             \
            const unsigned long long k = i % inner, row = i / inner;                             \
            const unsigned long long j = row % n_idx, o = row / n_idx;                           \
            y[i] = x[(o * dim + idx[j]) * inner + k];                                            \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void index_add_##DT(const T* src, const unsigned long long* idx,      \
                                              T* y, unsigned long long outer,                    \
                                              unsigned long long dim,                            \
                                              unsigned long long inner,                          \
                                              unsigned long long n_idx) {                        \
        KEEL_GRID_STRIDE(i, outer * n_idx * inner) {                                             \
            const unsigned long long k = i % inner, row = i / inner;                             \
            const unsigned long long j = row % n_idx, o = row / n_idx;                           \
            atomicAdd(&y[(o * dim + idx[j]) * inner + k], src[i]);                               \
        }                                                                                        \
    }

KEEL_INDEX_FAMILY(float, f32)
KEEL_INDEX_FAMILY(double, f64)
