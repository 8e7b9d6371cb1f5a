// Layout kernels: materialise a strided view, copy a block along the middle axis, fill.
//
// strided_copy: info (device memory) = [rank, offset, d0..d3, s0..s3]; output element i is at
// the row-major multi-index idx of i over the dims (the first `rank` are used, rank 0..4) and
// reads x[offset + Σ idx_ax · s_ax]. One kernel covers broadcast_to (0 strides on broadcast
// axes), permute (permuted strides) and narrow (the offset of the first kept element).
//
// copy_block: x viewed as [outer, d_src, inner] goes to rows offset .. offset + d_src of y
// viewed as [outer, d_dst, inner]; the other rows of y are untouched. concat is one launch per
// piece; pad is fill(0) then one launch.
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

#define KEEL_LAYOUT_FAMILY(T, DT)                                                                \
    extern "C" __global__ void strided_copy_##DT(const T* x, T* y, unsigned long long n,        \
                                                 const unsigned long long* info) {               \
        const unsigned long long rank = info[0];                                                 \
        KEEL_GRID_STRIDE(i, n) {                                                                 \
            unsigned long long rest = i, off = info[1];                                          \
            for (unsigned long long ax = rank; ax-- > 0;) {                                      \
                const unsigned long long d = info[2 + ax];                                       \
                off += (rest % d) * info[6 + ax];                                                \
                rest /= d;                                                                       \
            }                                                                                    \
            y[i] = x[off];                                                                       \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void copy_block_##DT(const T* x, T* y, unsigned long long outer,      \
                                               unsigned long long d_src,                         \
                                               unsigned long long inner,                         \
                                               unsigned long long d_dst,                         \
                                               unsigned long long offset) {                      \
        KEEL_GRID_STRIDE(i, outer * d_src * inner) {                                             \
            const unsigned long long k = i % inner, row = i / inner;                             \
            const unsigned long long d = row % d_src, o = row / d_src;                           \
            y[(o * d_dst + offset + d) * inner + k] = x[i];                                      \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    extern "C" __global__ void fill_##DT(T* y, unsigned long long n, T v) {                     \
        KEEL_GRID_STRIDE(i, n) { y[i] = v; }                                                     \
    }

KEEL_LAYOUT_FAMILY(float, f32)
KEEL_LAYOUT_FAMILY(double, f64)
