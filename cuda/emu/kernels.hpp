// The kernel contract as C++: every kernel of ../*.cu with its exact parameter list, as one
// X-macro list. build.rs force-includes this before each .cu file, so a kernel whose definition
// disagrees with its line here is a compile error ("conflicting declaration of C function"),
// and launch.cpp turns every line into an `emu_<name>(grid, block, args...)` entry point.
//
// KEEL_KERNELS(K) calls K(name, (parameters), (arguments)) once per kernel.
#pragma once

#define KEEL_ULL unsigned long long

#define KEEL_UNARY_SIG(K, OP, T, DT) K(unary_##OP##_##DT, (const T* x, T* y, KEEL_ULL n), (x, y, n))
#define KEEL_BINARY_SIG(K, OP, T, DT)                                                            \
    K(binary_##OP##_##DT, (const T* a, const T* b, T* y, KEEL_ULL n, const KEEL_ULL* info),     \
      (a, b, y, n, info))

#define KEEL_TYPED_KERNELS(K, T, DT)                                                             \
    /* unary.cu */                                                                               \
    KEEL_UNARY_SIG(K, neg, T, DT)                                                                \
    KEEL_UNARY_SIG(K, exp, T, DT)                                                                \
    KEEL_UNARY_SIG(K, log, T, DT)                                                                \
    KEEL_UNARY_SIG(K, log1p, T, DT)                                                              \
    KEEL_UNARY_SIG(K, tanh, T, DT)                                                               \
    KEEL_UNARY_SIG(K, sigmoid, T, DT)                                                            \
    KEEL_UNARY_SIG(K, softplus, T, DT)                                                           \
    KEEL_UNARY_SIG(K, relu, T, DT)                                                               \
    KEEL_UNARY_SIG(K, sin, T, DT)                                                                \
    KEEL_UNARY_SIG(K, cos, T, DT)                                                                \
    KEEL_UNARY_SIG(K, sqrt, T, DT)                                                               \
    KEEL_UNARY_SIG(K, square, T, DT)                                                             \
    KEEL_UNARY_SIG(K, abs, T, DT)                                                                \
    KEEL_UNARY_SIG(K, step, T, DT)                                                               \
    KEEL_UNARY_SIG(K, sign, T, DT)                                                               \
    K(affine_##DT, (const T* x, T* y, KEEL_ULL n, T a, T b), (x, y, n, a, b))                    \
    K(powf_##DT, (const T* x, T* y, KEEL_ULL n, T c), (x, y, n, c))                              \
    /* binary.cu */                                                                              \
    KEEL_BINARY_SIG(K, add, T, DT)                                                               \
    KEEL_BINARY_SIG(K, sub, T, DT)                                                               \
    KEEL_BINARY_SIG(K, mul, T, DT)                                                               \
    KEEL_BINARY_SIG(K, div, T, DT)                                                               \
    KEEL_BINARY_SIG(K, max, T, DT)                                                               \
    KEEL_BINARY_SIG(K, gt, T, DT)                                                                \
    KEEL_BINARY_SIG(K, eq, T, DT)                                                                \
    KEEL_BINARY_SIG(K, addrelu, T, DT)                                                           \
    KEEL_BINARY_SIG(K, mulstep, T, DT)                                                           \
    K(where_##DT, (const T* m, const T* a, const T* b, T* y, KEEL_ULL n, const KEEL_ULL* info),  \
      (m, a, b, y, n, info))                                                                     \
    /* reduce.cu */                                                                              \
    K(sum_axis_##DT, (const T* x, T* y, KEEL_ULL outer, KEEL_ULL dim, KEEL_ULL inner),          \
      (x, y, outer, dim, inner))                                                                 \
    K(max_axis_##DT, (const T* x, T* y, KEEL_ULL outer, KEEL_ULL dim, KEEL_ULL inner),          \
      (x, y, outer, dim, inner))                                                                 \
    /* layout.cu */                                                                              \
    K(strided_copy_##DT, (const T* x, T* y, KEEL_ULL n, const KEEL_ULL* info), (x, y, n, info))  \
    K(copy_block_##DT,                                                                           \
      (const T* x, T* y, KEEL_ULL outer, KEEL_ULL d_src, KEEL_ULL inner, KEEL_ULL d_dst,         \
       KEEL_ULL offset),                                                                         \
      (x, y, outer, d_src, inner, d_dst, offset))                                                \
    K(fill_##DT, (T* y, KEEL_ULL n, T v), (y, n, v))                                             \
    /* index.cu */                                                                               \
    K(index_select_##DT,                                                                         \
      (const T* x, const KEEL_ULL* idx, T* y, KEEL_ULL outer, KEEL_ULL dim, KEEL_ULL inner,      \
       KEEL_ULL n_idx),                                                                          \
      (x, idx, y, outer, dim, inner, n_idx))                                                     \
    K(index_add_##DT,                                                                            \
      (const T* src, const KEEL_ULL* idx, T* y, KEEL_ULL outer, KEEL_ULL dim, KEEL_ULL inner,    \
       KEEL_ULL n_idx),                                                                          \
      (src, idx, y, outer, dim, inner, n_idx))                                                   \
    /* optim.cu */                                                                               \
    K(adam_##DT,                                                                                 \
      (T* p, const T* g, T* m, T* v, KEEL_ULL n, T b1, T b2, T step_size, T inv_sqrt_bc2, T eps, \
       T wd, T decay),                                                                           \
      (p, g, m, v, n, b1, b2, step_size, inv_sqrt_bc2, eps, wd, decay))                          \
    K(sgd_momentum_##DT,                                                                         \
      (T* p, const T* g, T* buf, KEEL_ULL n, T lr, T wd, T keep, T nest, T plain, T base),       \
      (p, g, buf, n, lr, wd, keep, nest, plain, base))                                           \
    K(sgd_##DT, (T* p, const T* g, KEEL_ULL n, T lr, T wd), (p, g, n, lr, wd))                  \
    /* hmc.cu */                                                                                 \
    K(hmc_leapfrog_##DT,                                                                         \
      (T* theta, T* p, const T* g, KEEL_ULL n, T half, KEEL_ULL kicks, T eps, KEEL_ULL drift,    \
       KEEL_ULL kind, T a, T b, T c, T temp),                                                    \
      (theta, p, g, n, half, kicks, eps, drift, kind, a, b, c, temp))                            \
    K(hmc_sum_squares_##DT, (const T* x, double* out, KEEL_ULL n, KEEL_ULL chunk),               \
      (x, out, n, chunk))                                                                        \
    K(hmc_prior_difference_##DT,                                                                 \
      (const T* x, const T* y, double* out, KEEL_ULL n, KEEL_ULL chunk, KEEL_ULL kind, T a, T b, \
       T c),                                                                                     \
      (x, y, out, n, chunk, kind, a, b, c))                                                      \
    /* conv.cu */                                                                                \
    K(im2col_##DT, (const T* x, T* y, const KEEL_ULL* geom, T fill), (x, y, geom, fill))         \
    K(col2im_##DT, (const T* cols_buf, T* y, const KEEL_ULL* geom), (cols_buf, y, geom))

#define KEEL_KERNELS(K)                                                                          \
    KEEL_TYPED_KERNELS(K, float, f32)                                                            \
    KEEL_TYPED_KERNELS(K, double, f64)                                                           \
    /* cast.cu */                                                                                \
    K(cast_f32_f64, (const float* x, double* y, KEEL_ULL n), (x, y, n))                          \
    K(cast_f64_f32, (const double* x, float* y, KEEL_ULL n), (x, y, n))

// The kernels that synchronise their threads (__syncthreads, warp shuffles): launch.cpp runs
// them through the cooperative launcher.
#define KEEL_COOPERATIVE_KERNELS(K)                                                              \
    KEEL_ROWS_SIG(K, sum, float, f32)                                                            \
    KEEL_ROWS_SIG(K, sum, double, f64)                                                           \
    KEEL_ROWS_SIG(K, max, float, f32)                                                            \
    KEEL_ROWS_SIG(K, max, double, f64)

/* reduce.cu */
#define KEEL_ROWS_SIG(K, OP, T, DT)                                                              \
    K(OP##_rows_##DT, (const T* x, T* y, KEEL_ULL rows, KEEL_ULL dim, KEEL_ULL chunk),           \
      (x, y, rows, dim, chunk))

#define KEEL_DECLARE_KERNEL(name, params, args) extern "C" void name params;
KEEL_KERNELS(KEEL_DECLARE_KERNEL)
KEEL_COOPERATIVE_KERNELS(KEEL_DECLARE_KERNEL)
#undef KEEL_DECLARE_KERNEL
