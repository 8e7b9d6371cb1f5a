//! The `emu_<kernel>` entry points of `launch.cpp` (one per line of `kernels.hpp`) and, per
//! element type, a table of them for the generic wrappers. Each declaration is the kernel's
//! parameter list from the contract with `grid, block` in front: `unsigned` is `u32`,
//! `unsigned long long` is `u64`, `float`/`double` are `f32`/`f64`.

/// `unary_{op}_{dtype}(const T* x, T* y, unsigned long long n)`.
pub type UnaryFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64);
/// `affine_{dtype}(const T* x, T* y, unsigned long long n, T a, T b)`.
pub type AffineFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, T, T);
/// `powf_{dtype}(const T* x, T* y, unsigned long long n, T c)`.
pub type PowfFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, T);
/// `binary_{op}_{dtype}(const T* a, const T* b, T* y, unsigned long long n,
/// const unsigned long long* info)`.
pub type BinaryFn<T> = unsafe extern "C" fn(u32, u32, *const T, *const T, *mut T, u64, *const u64);
/// `where_{dtype}(const T* m, const T* a, const T* b, T* y, unsigned long long n,
/// const unsigned long long* info)`.
pub type WhereFn<T> =
    unsafe extern "C" fn(u32, u32, *const T, *const T, *const T, *mut T, u64, *const u64);
/// `{sum,max}_axis_{dtype}(const T* x, T* y, outer, dim, inner)`.
pub type ReduceFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, u64, u64);
/// `{sum,max}_rows_{dtype}(const T* x, T* y, rows, dim, chunk)` (cooperative launch).
pub type RowsFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, u64, u64);
/// `strided_copy_{dtype}(const T* x, T* y, unsigned long long n, const unsigned long long* info)`.
pub type StridedCopyFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, *const u64);
/// `copy_block_{dtype}(const T* x, T* y, outer, d_src, inner, d_dst, offset)`.
pub type CopyBlockFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, u64, u64, u64, u64, u64);
/// `fill_{dtype}(T* y, unsigned long long n, T v)`.
pub type FillFn<T> = unsafe extern "C" fn(u32, u32, *mut T, u64, T);
/// `index_{select,add}_{dtype}(const T* x, const unsigned long long* idx, T* y, outer, dim,
/// inner, n_idx)`.
pub type IndexFn<T> =
    unsafe extern "C" fn(u32, u32, *const T, *const u64, *mut T, u64, u64, u64, u64);
/// `adam_{dtype}(T* p, const T* g, T* m, T* v, unsigned long long n, T b1, T b2, T step_size,
/// T inv_sqrt_bc2, T eps, T wd, T decay)`.
pub type AdamFn<T> =
    unsafe extern "C" fn(u32, u32, *mut T, *const T, *mut T, *mut T, u64, T, T, T, T, T, T, T);
/// `sgd_momentum_{dtype}(T* p, const T* g, T* buf, unsigned long long n, T lr, T wd, T keep,
/// T nest, T plain, T base)`.
pub type SgdMomentumFn<T> =
    unsafe extern "C" fn(u32, u32, *mut T, *const T, *mut T, u64, T, T, T, T, T, T);
/// `sgd_{dtype}(T* p, const T* g, unsigned long long n, T lr, T wd)`.
pub type SgdFn<T> = unsafe extern "C" fn(u32, u32, *mut T, *const T, u64, T, T);
/// `hmc_leapfrog_{dtype}(T* theta, T* p, const T* g, unsigned long long n, T half,
/// unsigned long long kicks, T eps, unsigned long long drift, unsigned long long kind, T a, T b,
/// T c, T temp)`.
pub type HmcLeapfrogFn<T> =
    unsafe extern "C" fn(u32, u32, *mut T, *mut T, *const T, u64, T, u64, T, u64, u64, T, T, T, T);
/// `hmc_sum_squares_{dtype}(const T* x, double* out, unsigned long long n,
/// unsigned long long chunk)`.
pub type HmcSumSquaresFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut f64, u64, u64);
/// `hmc_prior_difference_{dtype}(const T* x, const T* y, double* out, unsigned long long n,
/// unsigned long long chunk, unsigned long long kind, T a, T b, T c)`.
pub type HmcPriorDifferenceFn<T> =
    unsafe extern "C" fn(u32, u32, *const T, *const T, *mut f64, u64, u64, u64, T, T, T);
/// `im2col_{dtype}(const T* x, T* y, const unsigned long long* geom, T fill)`.
pub type Im2colFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, *const u64, T);
/// `col2im_{dtype}(const T* cols, T* y, const unsigned long long* geom)`.
pub type Col2imFn<T> = unsafe extern "C" fn(u32, u32, *const T, *mut T, *const u64);

/// Every kernel of one element type. `unary` is in [`crate::Unary::ALL`] order, `binary` in
/// [`crate::Binary::ALL`] order.
pub struct Kernels<T: 'static> {
    pub unary: [UnaryFn<T>; 15],
    pub affine: AffineFn<T>,
    pub powf: PowfFn<T>,
    pub binary: [BinaryFn<T>; 9],
    pub where_: WhereFn<T>,
    pub sum_axis: ReduceFn<T>,
    pub max_axis: ReduceFn<T>,
    pub sum_rows: RowsFn<T>,
    pub max_rows: RowsFn<T>,
    pub strided_copy: StridedCopyFn<T>,
    pub copy_block: CopyBlockFn<T>,
    pub fill: FillFn<T>,
    pub index_select: IndexFn<T>,
    pub index_add: IndexFn<T>,
    pub adam: AdamFn<T>,
    pub sgd_momentum: SgdMomentumFn<T>,
    pub sgd: SgdFn<T>,
    pub hmc_leapfrog: HmcLeapfrogFn<T>,
    pub hmc_sum_squares: HmcSumSquaresFn<T>,
    pub hmc_prior_difference: HmcPriorDifferenceFn<T>,
    pub im2col: Im2colFn<T>,
    pub col2im: Col2imFn<T>,
}

/// Declares one element type's entry points and builds its [`Kernels`] table.
macro_rules! kernels {
    ($T:ty, $table:ident,
     unary: [$($unary:ident),* $(,)?],
     affine: $affine:ident, powf: $powf:ident,
     binary: [$($binary:ident),* $(,)?],
     where_: $where_:ident, sum_axis: $sum_axis:ident, max_axis: $max_axis:ident,
     sum_rows: $sum_rows:ident, max_rows: $max_rows:ident,
     strided_copy: $strided_copy:ident, copy_block: $copy_block:ident, fill: $fill:ident,
     index_select: $index_select:ident, index_add: $index_add:ident,
     adam: $adam:ident, sgd_momentum: $sgd_momentum:ident, sgd: $sgd:ident,
     hmc_leapfrog: $hmc_leapfrog:ident, hmc_sum_squares: $hmc_sum_squares:ident,
     hmc_prior_difference: $hmc_prior_difference:ident,
     im2col: $im2col:ident, col2im: $col2im:ident $(,)?) => {
        unsafe extern "C" {
            $(fn $unary(grid: u32, block: u32, x: *const $T, y: *mut $T, n: u64);)*
            fn $affine(grid: u32, block: u32, x: *const $T, y: *mut $T, n: u64, a: $T, b: $T);
            fn $powf(grid: u32, block: u32, x: *const $T, y: *mut $T, n: u64, c: $T);
            $(fn $binary(
                grid: u32, block: u32, a: *const $T, b: *const $T, y: *mut $T, n: u64,
                info: *const u64,
            );)*
            fn $where_(
                grid: u32, block: u32, m: *const $T, a: *const $T, b: *const $T, y: *mut $T,
                n: u64, info: *const u64,
            );
            fn $sum_axis(
                grid: u32, block: u32, x: *const $T, y: *mut $T, outer: u64, dim: u64, inner: u64,
            );
            fn $max_axis(
                grid: u32, block: u32, x: *const $T, y: *mut $T, outer: u64, dim: u64, inner: u64,
            );
            fn $sum_rows(
                grid: u32, block: u32, x: *const $T, y: *mut $T, rows: u64, dim: u64, chunk: u64,
            );
            fn $max_rows(
                grid: u32, block: u32, x: *const $T, y: *mut $T, rows: u64, dim: u64, chunk: u64,
            );
            fn $strided_copy(
                grid: u32, block: u32, x: *const $T, y: *mut $T, n: u64, info: *const u64,
            );
            fn $copy_block(
                grid: u32, block: u32, x: *const $T, y: *mut $T, outer: u64, d_src: u64,
                inner: u64, d_dst: u64, offset: u64,
            );
            fn $fill(grid: u32, block: u32, y: *mut $T, n: u64, v: $T);
            fn $index_select(
                grid: u32, block: u32, x: *const $T, idx: *const u64, y: *mut $T, outer: u64,
                dim: u64, inner: u64, n_idx: u64,
            );
            fn $index_add(
                grid: u32, block: u32, src: *const $T, idx: *const u64, y: *mut $T, outer: u64,
                dim: u64, inner: u64, n_idx: u64,
            );
            fn $adam(
                grid: u32, block: u32, p: *mut $T, g: *const $T, m: *mut $T, v: *mut $T, n: u64,
                b1: $T, b2: $T, step_size: $T, inv_sqrt_bc2: $T, eps: $T, wd: $T, decay: $T,
            );
            fn $sgd_momentum(
                grid: u32, block: u32, p: *mut $T, g: *const $T, buf: *mut $T, n: u64, lr: $T,
                wd: $T, keep: $T, nest: $T, plain: $T, base: $T,
            );
            fn $sgd(grid: u32, block: u32, p: *mut $T, g: *const $T, n: u64, lr: $T, wd: $T);
            fn $hmc_leapfrog(
                grid: u32, block: u32, theta: *mut $T, p: *mut $T, g: *const $T, n: u64,
                half: $T, kicks: u64, eps: $T, drift: u64, kind: u64, a: $T, b: $T, c: $T,
                temp: $T,
            );
            fn $hmc_sum_squares(
                grid: u32, block: u32, x: *const $T, out: *mut f64, n: u64, chunk: u64,
            );
            fn $hmc_prior_difference(
                grid: u32, block: u32, x: *const $T, y: *const $T, out: *mut f64, n: u64,
                chunk: u64, kind: u64, a: $T, b: $T, c: $T,
            );
            fn $im2col(
                grid: u32, block: u32, x: *const $T, y: *mut $T, geom: *const u64, fill: $T,
            );
            fn $col2im(grid: u32, block: u32, cols: *const $T, y: *mut $T, geom: *const u64);
        }

        pub static $table: Kernels<$T> = Kernels {
            unary: [$($unary),*],
            affine: $affine,
            powf: $powf,
            binary: [$($binary),*],
            where_: $where_,
            sum_axis: $sum_axis,
            max_axis: $max_axis,
            sum_rows: $sum_rows,
            max_rows: $max_rows,
            strided_copy: $strided_copy,
            copy_block: $copy_block,
            fill: $fill,
            index_select: $index_select,
            index_add: $index_add,
            adam: $adam,
            sgd_momentum: $sgd_momentum,
            sgd: $sgd,
            hmc_leapfrog: $hmc_leapfrog,
            hmc_sum_squares: $hmc_sum_squares,
            hmc_prior_difference: $hmc_prior_difference,
            im2col: $im2col,
            col2im: $col2im,
        };
    };
}

kernels!(f32, F32,
    unary: [
        emu_unary_neg_f32, emu_unary_exp_f32, emu_unary_log_f32, emu_unary_log1p_f32,
        emu_unary_tanh_f32, emu_unary_sigmoid_f32, emu_unary_softplus_f32, emu_unary_relu_f32,
        emu_unary_sin_f32, emu_unary_cos_f32, emu_unary_sqrt_f32, emu_unary_square_f32,
        emu_unary_abs_f32, emu_unary_step_f32, emu_unary_sign_f32,
    ],
    affine: emu_affine_f32, powf: emu_powf_f32,
    binary: [
        emu_binary_add_f32, emu_binary_sub_f32, emu_binary_mul_f32, emu_binary_div_f32,
        emu_binary_max_f32, emu_binary_gt_f32, emu_binary_eq_f32,
        emu_binary_addrelu_f32, emu_binary_mulstep_f32,
    ],
    where_: emu_where_f32, sum_axis: emu_sum_axis_f32, max_axis: emu_max_axis_f32,
    sum_rows: emu_sum_rows_f32, max_rows: emu_max_rows_f32,
    strided_copy: emu_strided_copy_f32, copy_block: emu_copy_block_f32, fill: emu_fill_f32,
    index_select: emu_index_select_f32, index_add: emu_index_add_f32,
    adam: emu_adam_f32, sgd_momentum: emu_sgd_momentum_f32, sgd: emu_sgd_f32,
    hmc_leapfrog: emu_hmc_leapfrog_f32, hmc_sum_squares: emu_hmc_sum_squares_f32,
    hmc_prior_difference: emu_hmc_prior_difference_f32,
    im2col: emu_im2col_f32, col2im: emu_col2im_f32,
);

kernels!(f64, F64,
    unary: [
        emu_unary_neg_f64, emu_unary_exp_f64, emu_unary_log_f64, emu_unary_log1p_f64,
        emu_unary_tanh_f64, emu_unary_sigmoid_f64, emu_unary_softplus_f64, emu_unary_relu_f64,
        emu_unary_sin_f64, emu_unary_cos_f64, emu_unary_sqrt_f64, emu_unary_square_f64,
        emu_unary_abs_f64, emu_unary_step_f64, emu_unary_sign_f64,
    ],
    affine: emu_affine_f64, powf: emu_powf_f64,
    binary: [
        emu_binary_add_f64, emu_binary_sub_f64, emu_binary_mul_f64, emu_binary_div_f64,
        emu_binary_max_f64, emu_binary_gt_f64, emu_binary_eq_f64,
        emu_binary_addrelu_f64, emu_binary_mulstep_f64,
    ],
    where_: emu_where_f64, sum_axis: emu_sum_axis_f64, max_axis: emu_max_axis_f64,
    sum_rows: emu_sum_rows_f64, max_rows: emu_max_rows_f64,
    strided_copy: emu_strided_copy_f64, copy_block: emu_copy_block_f64, fill: emu_fill_f64,
    index_select: emu_index_select_f64, index_add: emu_index_add_f64,
    adam: emu_adam_f64, sgd_momentum: emu_sgd_momentum_f64, sgd: emu_sgd_f64,
    hmc_leapfrog: emu_hmc_leapfrog_f64, hmc_sum_squares: emu_hmc_sum_squares_f64,
    hmc_prior_difference: emu_hmc_prior_difference_f64,
    im2col: emu_im2col_f64, col2im: emu_col2im_f64,
);

unsafe extern "C" {
    /// `cast_f32_f64(const float* x, double* y, unsigned long long n)`.
    pub fn emu_cast_f32_f64(grid: u32, block: u32, x: *const f32, y: *mut f64, n: u64);
    /// `cast_f64_f32(const double* x, float* y, unsigned long long n)`.
    pub fn emu_cast_f64_f32(grid: u32, block: u32, x: *const f64, y: *mut f32, n: u64);
}
