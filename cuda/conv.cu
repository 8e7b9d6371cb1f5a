// Patch extraction for 2-D convolutions and pooling (im2col) and its adjoint (col2im) over NCHW
// images: the CPU backend's `im2col` / `col2im` in host/engine/src/backend/cpu/conv.rs, element
// for element (col2im adds each pixel's terms in the CPU's (ki, kj, oi, oj) order, so the two
// agree bit for bit).
//
// geom[16] = { n, c, h, w, groups, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, 0 }.
// Patch matrix: [groups, (c/groups)·kh·kw, n·oh·ow], row (cg, ki, kj), column (b, oi, oj).
//
// Standalone for NVRTC: no #include.

#define KEEL_GRID_STRIDE(i, n)                                                                   \
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;      \
         i < (n); i += (unsigned long long)blockDim.x * gridDim.x)

#define KEEL_CONV_FAMILY(T, DT)                                                                  \
    /* One thread per patch-matrix entry. */                                                     \
    extern "C" __global__ void im2col_##DT(const T* x, T* y, const unsigned long long* geom,    \
                                           T fill) {                                             \
        const unsigned long long n = geom[0], c = geom[1], h = geom[2], w = geom[3];             \
        const unsigned long long groups = geom[4], kh = geom[5], kw = geom[6];                   \
        const unsigned long long sh = geom[7], sw = geom[8], ph = geom[9], pw = geom[10];        \
        const unsigned long long dh = geom[11], dw = geom[12], oh = geom[13], ow = geom[14];     \
        const unsigned long long cg = c / groups, rows = cg * kh * kw, cols = n * oh * ow;       \
        KEEL_GRID_STRIDE(i, groups * rows * cols) {                                              \
            const unsigned long long q = i % cols, r = i / cols;                                 \
            const unsigned long long grp = r / rows, rr = r % rows;                              \
            const unsigned long long ch = grp * cg + rr / (kh * kw), kk = rr % (kh * kw);        \
            const unsigned long long ki = kk / kw, kj = kk % kw;                                 \
            const unsigned long long b = q / (oh * ow), oi = (q / ow) % oh, oj = q % ow;         \
            const unsigned long long ir = oi * sh + ki * dh, ic = oj * sw + kj * dw;             \
            T v = fill;                                                                          \
            if (ir >= ph && ir - ph < h && ic >= pw && ic - pw < w) {                            \
                v = x[((b * c + ch) * h + (ir - ph)) * w + (ic - pw)];                           \
            }                                                                                    \
            y[i] = v;                                                                            \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* One thread per image pixel, gathering its patch entries (no atomics). */                  \
    extern "C" __global__ void col2im_##DT(const T* cols_buf, T* y,                              \
                                           const unsigned long long* geom) {                     \
        const unsigned long long n = geom[0], c = geom[1], h = geom[2], w = geom[3];             \
        const unsigned long long groups = geom[4], kh = geom[5], kw = geom[6];                   \
        const unsigned long long sh = geom[7], sw = geom[8], ph = geom[9], pw = geom[10];        \
        const unsigned long long dh = geom[11], dw = geom[12], oh = geom[13], ow = geom[14];     \
        const unsigned long long cg = c / groups, rows = cg * kh * kw, cols = n * oh * ow;       \
        KEEL_GRID_STRIDE(i, n * c * h * w) {                                                     \
            const unsigned long long ix = i % w, iy = (i / w) % h;                               \
            const unsigned long long ch = (i / (w * h)) % c, b = i / (w * h * c);                \
            const unsigned long long grp = ch / cg, c_in = ch % cg;                              \
            T acc = (T)0;                                                                        \
            for (unsigned long long ki = 0; ki < kh; ++ki) {                                     \
                /* oi·sh = iy + ph − ki·dh */                                                    \
                const unsigned long long ty = iy + ph;                                           \
                if (ty < ki * dh || (ty - ki * dh) % sh != 0) continue;                          \
                const unsigned long long oi = (ty - ki * dh) / sh;                               \
                if (oi >= oh) continue;                                                          \
                for (unsigned long long kj = 0; kj < kw; ++kj) {                                 \
                    const unsigned long long tx = ix + pw;                                       \
                    if (tx < kj * dw || (tx - kj * dw) % sw != 0) continue;                      \
                    const unsigned long long oj = (tx - kj * dw) / sw;                           \
                    if (oj >= ow) continue;                                                      \
                    const unsigned long long r = grp * rows + (c_in * kh + ki) * kw + kj;        \
                    acc += cols_buf[r * cols + (b * oh + oi) * ow + oj];                         \
                }                                                                                \
            }                                                                                    \
            y[i] = acc;                                                                          \
        }                                                                                        \
    }

KEEL_CONV_FAMILY(float, f32)
KEEL_CONV_FAMILY(double, f64)
