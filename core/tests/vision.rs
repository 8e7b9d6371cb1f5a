//! `vision::expm3` against closed forms and `vision::warp_bilinear` against exact index
//! permutations, in `f32` and `f64`.
//!
//! The closed forms: `exp(α(E₁₀ − E₀₁))` is the rotation by `α`; the exponential of a diagonal
//! matrix is the diagonal of exponentials; a nilpotent matrix's series stops (`A² = 0`:
//! `I + A`; `A³ = 0`: `I + A + A²/2`); `exp(sI₂ + αJ)` with commuting parts is `eˢ·R(α)`.
//! The warp's exact cases use images whose side minus one is a power of two, so the normalised
//! grid `−1 + 2k/(n−1)` and its unnormalisation `(g+1)/2·(n−1)` are exact in binary floating
//! point and every sample lands on a pixel; other sizes are compared with a tolerance of a few
//! ulps times the largest pixel (the grid's rounding, as in PyTorch, leaves weights of ~1e-16).
//!
//! Last, both functions against `fixtures/nn/conv_ops.json` (written by
//! `fixtures/gen/conv_ops.py`, PyTorch 2.5.1 and scipy 1.17.1 in float64), in `f64`:
//!
//! ```python
//! theta = scipy.linalg.expm(sum(eps[i] * G[i]))[:2, :]      # Augerino's six generators
//! grid = F.affine_grid(theta, (N, C, Ho, Wo), align_corners=True)
//! y = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
//! y_expm = scipy.linalg.expm(a)
//! ```
//!
//! Tolerances (relative to the largest magnitude of the expected array): 1e-14 for `expm3`
//! against scipy (the fixture's own torch-vs-scipy spread is 2.2e-15), 1e-12 for the warp (its
//! sample points sit at least 1e-6 pixels from a pixel line, so rounding moves no sample across a
//! bilinear kink).

use keel_core::vision::{
    augerino_generators, augerino_transform, expm3, warp_bilinear, AUGERINO_GENERATORS,
};
use keel_core::{Error, Real};
use proptest::prelude::*;

fn max_abs_diff<T: Real>(a: &[[T; 3]; 3], b: &[[T; 3]; 3]) -> f64 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x.as_f64() - y.as_f64()).abs())
        .fold(0.0, f64::max)
}

fn m<T: Real>(rows: [[f64; 3]; 3]) -> [[T; 3]; 3] {
    rows.map(|r| r.map(T::from_f64))
}

fn matmul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// A test image whose pixels are all distinct: `c·1000 + r·w + col + 1`.
fn ramp<T: Real>(channels: usize, h: usize, w: usize) -> Vec<T> {
    (0..channels * h * w)
        .map(|k| {
            let c = k / (h * w);
            T::from_usize(c * 1000 + k % (h * w) + 1)
        })
        .collect()
}

macro_rules! vision_tests {
    ($modname:ident, $t:ty, $eps:expr) => {
        mod $modname {
            use super::*;
            type T = $t;
            /// Unit roundoff of T: closed-form comparisons allow a small multiple of it.
            const EPS: f64 = $eps;

            #[test]
            fn expm_of_the_rotation_generator_is_the_rotation_matrix() {
                for alpha in [0.0, 0.3, -1.2, 3.0, 7.5, -20.0] {
                    let a = m::<T>([[0.0, -alpha, 0.0], [alpha, 0.0, 0.0], [0.0; 3]]);
                    let e = expm3(&a).unwrap();
                    let (s, c) = (f64::sin(alpha), f64::cos(alpha));
                    let expected = m::<T>([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]);
                    // Rounding grows with the number of squarings (~|α|).
                    let tol = 8.0 * EPS * (1.0 + alpha.abs());
                    let err = max_abs_diff(&e, &expected);
                    assert!(err <= tol, "α = {alpha}: error {err:e} > {tol:e}");
                }
            }

            #[test]
            fn expm_of_a_diagonal_is_the_exponential_of_the_diagonal() {
                for d in [[1.3, -2.1, 0.4], [0.0, 0.0, 0.0], [5.0, -0.01, 2.0]] {
                    let a = m::<T>([[d[0], 0.0, 0.0], [0.0, d[1], 0.0], [0.0, 0.0, d[2]]]);
                    let e = expm3(&a).unwrap();
                    for i in 0..3 {
                        for j in 0..3 {
                            let want = if i == j { f64::exp(d[i]) } else { 0.0 };
                            let got = e[i][j].as_f64();
                            assert!(
                                (got - want).abs() <= 16.0 * EPS * want.abs().max(1.0),
                                "d = {d:?}, ({i},{j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }

            #[test]
            fn expm_of_nilpotent_matrices_stops_the_series() {
                // A translation (A² = 0): exp(A) = I + A, exactly.
                let a = m::<T>([[0.0, 0.0, 2.5], [0.0, 0.0, -7.0], [0.0; 3]]);
                let e = expm3(&a).unwrap();
                let want = m::<T>([[1.0, 0.0, 2.5], [0.0, 1.0, -7.0], [0.0, 0.0, 1.0]]);
                assert!(max_abs_diff(&e, &want) <= 4.0 * EPS * 7.0, "{e:?}");
                // Strictly upper triangular (A³ = 0): I + A + A²/2, A²/2 = ab/2 in the corner.
                let (a01, a12, a02) = (1.5, -3.0, 0.25);
                let a = m::<T>([[0.0, a01, a02], [0.0, 0.0, a12], [0.0; 3]]);
                let e = expm3(&a).unwrap();
                let want = m::<T>([
                    [1.0, a01, a02 + a01 * a12 / 2.0],
                    [0.0, 1.0, a12],
                    [0.0, 0.0, 1.0],
                ]);
                assert!(max_abs_diff(&e, &want) <= 16.0 * EPS * 3.0, "{e:?}");
            }

            #[test]
            fn augerino_scale_and_rotation_commute_into_a_scaled_rotation() {
                // ε₃ on E₀₀ + E₁₁ and ε₂ on the rotation commute: exp = e^ε₃ R(ε₂) ⊕ 1.
                let (alpha, s) = (0.7, -0.4);
                let t = augerino_transform::<T>(&[0.0, 0.0, alpha, s, 0.0, 0.0].map(T::from_f64))
                    .unwrap();
                let (k, c, sn) = (f64::exp(s), f64::cos(alpha), f64::sin(alpha));
                let want = m::<T>([[k * c, -k * sn, 0.0], [k * sn, k * c, 0.0], [0.0, 0.0, 1.0]]);
                assert!(max_abs_diff(&t, &want) <= 16.0 * EPS);
                // Translations alone: 0.1·ε in the last column.
                let t = augerino_transform::<T>(&[2.0, -3.0, 0.0, 0.0, 0.0, 0.0].map(T::from_f64))
                    .unwrap();
                let want = m::<T>([[1.0, 0.0, 0.2], [0.0, 1.0, -0.3], [0.0, 0.0, 1.0]]);
                assert!(max_abs_diff(&t, &want) <= 4.0 * EPS);
            }

            #[test]
            fn generators_carry_the_reference_scalings() {
                let g = augerino_generators::<T>();
                for (k, (gk, gf)) in g.iter().zip(&AUGERINO_GENERATORS).enumerate() {
                    for (a, b) in gk.iter().flatten().zip(gf.iter().flatten()) {
                        assert_eq!(a.as_f64(), (*b as T).as_f64(), "G{k}");
                    }
                    // Affine: the last row is zero in every generator.
                    assert_eq!(gf[2], [0.0; 3], "G{k}");
                }
                assert_eq!(AUGERINO_GENERATORS[0][0][2], 0.1);
                assert_eq!(AUGERINO_GENERATORS[1][1][2], 0.1);
                assert_eq!(AUGERINO_GENERATORS[2][1][0], 1.0);
                assert_eq!(AUGERINO_GENERATORS[2][0][1], -1.0);
                assert_eq!(AUGERINO_GENERATORS[4][1][1], -1.0);
            }

            #[test]
            fn expm_refuses_non_finite_and_overflowing_input() {
                let mut a = m::<T>([[0.1; 3]; 3]);
                a[1][2] = T::NAN;
                assert!(matches!(
                    expm3(&a),
                    Err(Error::InvalidParameter {
                        name: "expm3: matrix entry",
                        ..
                    })
                ));
                a[1][2] = T::INFINITY;
                assert!(expm3(&a).is_err());
                // exp(200) overflows f32, exp(800) overflows f64.
                let big = if EPS > 1e-10 { 200.0 } else { 800.0 };
                let a = m::<T>([[big, 0.0, 0.0], [0.0; 3], [0.0; 3]]);
                assert!(matches!(
                    expm3(&a),
                    Err(Error::InvalidParameter {
                        name: "expm3: result overflows (norm)",
                        ..
                    })
                ));
                let a = m::<T>([[0.0, -1e30, 0.0], [1e30, 0.0, 0.0], [0.0; 3]]);
                assert!(matches!(
                    expm3(&a),
                    Err(Error::InvalidParameter {
                        name: "expm3: norm",
                        ..
                    })
                ));
                let eps = [0.0, T::NAN, 0.0, 0.0, 0.0, 0.0];
                assert!(augerino_transform(&eps).is_err());
            }

            proptest! {
                #[test]
                fn expm_of_a_times_expm_of_minus_a_is_the_identity(
                    entries in proptest::array::uniform9(-2.0f64..2.0)
                ) {
                    let a: [[T; 3]; 3] = core::array::from_fn(|i| {
                        core::array::from_fn(|j| T::from_f64(entries[3 * i + j]))
                    });
                    let neg = a.map(|r| r.map(|x| -x));
                    let e = expm3(&a).unwrap().map(|r| r.map(|x| x.as_f64()));
                    let f = expm3(&neg).unwrap().map(|r| r.map(|x| x.as_f64()));
                    let p = matmul(&e, &f);
                    // Relative to ‖exp(A)‖·‖exp(−A)‖, the size of the product's terms.
                    let norm = |x: &[[f64; 3]; 3]| {
                        x.iter().map(|r| r.iter().map(|v| v.abs()).sum::<f64>()).fold(0.0, f64::max)
                    };
                    let scale = norm(&e) * norm(&f);
                    let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
                    let err = max_abs_diff(&p, &id);
                    prop_assert!(err <= 64.0 * EPS * scale, "error {err:e}, scale {scale}");
                }
            }

            fn warp(
                image: &[T],
                c: usize,
                h: usize,
                w: usize,
                theta: [[f64; 3]; 2],
                oh: usize,
                ow: usize,
            ) -> Vec<T> {
                let theta = theta.map(|r| r.map(T::from_f64));
                let mut out = vec![T::from_f64(-99.0); c * oh * ow];
                warp_bilinear(image, c, h, w, &theta, &mut out, oh, ow).unwrap();
                out
            }

            const IDENTITY: [[f64; 3]; 2] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];

            #[test]
            fn identity_theta_reproduces_the_image() {
                // Exact where n − 1 is a power of two (the grid is exact)…
                for (h, w) in [(5, 9), (2, 3), (1, 1), (17, 5)] {
                    let img = ramp::<T>(3, h, w);
                    assert_eq!(warp(&img, 3, h, w, IDENTITY, h, w), img, "{h}×{w}");
                }
                // …and to rounding otherwise.
                for (h, w) in [(4, 7), (6, 11)] {
                    let img = ramp::<T>(2, h, w);
                    let out = warp(&img, 2, h, w, IDENTITY, h, w);
                    for (k, (a, b)) in out.iter().zip(&img).enumerate() {
                        let tol = 8.0 * EPS * 2000.0;
                        assert!(
                            (a.as_f64() - b.as_f64()).abs() <= tol,
                            "{h}×{w} [{k}]: {a} vs {b}"
                        );
                    }
                }
            }

            #[test]
            fn quarter_and_half_turns_permute_the_pixels() {
                let n = 5;
                let img = ramp::<T>(2, n, n);
                // θ = R(90°): output (i, j) samples source column n−1−i, row j.
                let out = warp(&img, 2, n, n, [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], n, n);
                for c in 0..2 {
                    for i in 0..n {
                        for j in 0..n {
                            let want = img[c * n * n + j * n + (n - 1 - i)];
                            assert_eq!(out[c * n * n + i * n + j], want, "c{c} ({i},{j})");
                        }
                    }
                }
                // The same quarter turn through Augerino's transform: cos(π/2) ≠ 0 in floating
                // point, so equal to rounding.
                let t = augerino_transform::<T>(
                    &[0.0, 0.0, core::f64::consts::FRAC_PI_2, 0.0, 0.0, 0.0].map(T::from_f64),
                )
                .unwrap();
                let theta = [t[0], t[1]];
                let mut via = vec![T::from_f64(0.0); 2 * n * n];
                warp_bilinear(&img, 2, n, n, &theta, &mut via, n, n).unwrap();
                for (a, b) in via.iter().zip(&out) {
                    assert!(
                        (a.as_f64() - b.as_f64()).abs() <= 64.0 * EPS * 1100.0,
                        "{a} vs {b}"
                    );
                }
                // θ = −I on a rectangle: both axes flipped.
                let (h, w) = (3, 9);
                let img = ramp::<T>(1, h, w);
                let out = warp(&img, 1, h, w, [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], h, w);
                for i in 0..h {
                    for j in 0..w {
                        assert_eq!(out[i * w + j], img[(h - 1 - i) * w + (w - 1 - j)]);
                    }
                }
            }

            #[test]
            fn whole_pixel_translations_shift_exactly_with_zeros_outside() {
                let (h, w) = (5, 9);
                let img = ramp::<T>(2, h, w);
                for (dx, dy) in [(2i64, 0i64), (0, -1), (-3, 2), (9, 0)] {
                    // A shift of k pixels is 2k/(n−1) in normalised units.
                    let tx = 2.0 * dx as f64 / (w - 1) as f64;
                    let ty = 2.0 * dy as f64 / (h - 1) as f64;
                    let out = warp(&img, 2, h, w, [[1.0, 0.0, tx], [0.0, 1.0, ty]], h, w);
                    for c in 0..2 {
                        for i in 0..h {
                            for j in 0..w {
                                let (si, sj) = (i as i64 + dy, j as i64 + dx);
                                let want =
                                    if (0..h as i64).contains(&si) && (0..w as i64).contains(&sj) {
                                        img[c * h * w + si as usize * w + sj as usize]
                                    } else {
                                        0.0 as T
                                    };
                                assert_eq!(
                                    out[c * h * w + i * w + j],
                                    want,
                                    "({dx},{dy}) c{c} ({i},{j})"
                                );
                            }
                        }
                    }
                }
            }

            #[test]
            fn half_pixel_shifts_average_neighbours_and_fade_at_the_border() {
                let (h, w) = (3, 5);
                let img = ramp::<T>(1, h, w);
                let out = warp(
                    &img,
                    1,
                    h,
                    w,
                    [[1.0, 0.0, 1.0 / (w - 1) as f64], [0.0, 1.0, 0.0]],
                    h,
                    w,
                );
                // tx = 1/(w−1) is half a pixel: ix = j + ½.
                for i in 0..h {
                    for j in 0..w {
                        let a = img[i * w + j].as_f64();
                        let b = if j + 1 < w {
                            img[i * w + j + 1].as_f64()
                        } else {
                            0.0
                        };
                        let got = out[i * w + j].as_f64();
                        assert!(
                            (got - 0.5 * (a + b)).abs() <= 4.0 * EPS * 20.0,
                            "({i},{j}): {got}"
                        );
                    }
                }
                // Upsampling 2×2 → 3×3: corners kept, edges averaged, centre the mean.
                let img: Vec<T> = [1.0, 2.0, 3.0, 5.0].iter().map(|&x| x as T).collect();
                let out = warp(&img, 1, 2, 2, IDENTITY, 3, 3);
                let want = [1.0, 1.5, 2.0, 2.0, 2.75, 3.5, 3.0, 4.0, 5.0];
                for (a, b) in out.iter().zip(want) {
                    assert_eq!(a.as_f64(), b);
                }
                // A 1×1 output samples the centre.
                let img = ramp::<T>(1, 3, 5);
                assert_eq!(warp(&img, 1, 3, 5, IDENTITY, 1, 1), vec![img[7]]);
            }

            #[test]
            fn warp_checks_its_buffers_and_parameters() {
                let img = ramp::<T>(2, 3, 4);
                let theta = IDENTITY.map(|r| r.map(T::from_f64));
                let mut out = vec![0.0 as T; 2 * 3 * 4];
                assert_eq!(
                    warp_bilinear(&img[..23], 2, 3, 4, &theta, &mut out, 3, 4),
                    Err(Error::ShapeMismatch {
                        what: "warp_bilinear: image",
                        expected: 24,
                        got: 23
                    })
                );
                assert_eq!(
                    warp_bilinear(&img, 2, 3, 4, &theta, &mut out, 4, 4),
                    Err(Error::ShapeMismatch {
                        what: "warp_bilinear: out",
                        expected: 32,
                        got: 24
                    })
                );
                assert!(matches!(
                    warp_bilinear(&img, 2, 3, 4, &theta, &mut out[..0], 0, 4),
                    Err(Error::InvalidParameter {
                        name: "warp_bilinear: out_h",
                        ..
                    })
                ));
                assert!(matches!(
                    warp_bilinear(&img, 2, 3, 4, &theta, &mut out, 3, usize::MAX),
                    Err(Error::InvalidParameter {
                        name: "warp_bilinear: out shape",
                        ..
                    })
                ));
                let mut bad = theta;
                bad[1][2] = T::INFINITY;
                assert!(matches!(
                    warp_bilinear(&img, 2, 3, 4, &bad, &mut out, 3, 4),
                    Err(Error::InvalidParameter {
                        name: "warp_bilinear: theta",
                        ..
                    })
                ));
                // A map far outside the image gives zeros, not a panic.
                let far = [[1e30, 0.0, 3e30], [0.0, 1.0, -1e30]].map(|r| r.map(T::from_f64));
                warp_bilinear(&img, 2, 3, 4, &far, &mut out, 3, 4).unwrap();
                assert!(out.iter().all(|&x| x == 0.0 as T));
            }
        }
    };
}

vision_tests!(f64_tests, f64, f64::EPSILON);
vision_tests!(f32_tests, f32, f32::EPSILON as f64);

mod pytorch_fixtures {
    use super::*;
    use serde_json::Value;

    fn fixtures() -> Value {
        let path = [
            env!("CARGO_MANIFEST_DIR"),
            "..",
            "fixtures",
            "nn",
            "conv_ops.json",
        ]
        .iter()
        .collect::<std::path::PathBuf>();
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn tensor(v: &Value) -> (Vec<usize>, Vec<f64>) {
        let shape = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize);
        let data = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap());
        (shape.collect(), data.collect())
    }

    fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= rel * scale,
            "{what}: worst error {worst:e} > {rel:e} × {scale}"
        );
    }

    #[test]
    fn expm3_matches_scipy() {
        let doc = fixtures();
        let mut checked = 0;
        for case in doc["matrix_exp"].as_array().unwrap() {
            let (shape, a) = tensor(&case["a"]);
            let (_, y) = tensor(&case["y"]);
            if shape[1..] != [3, 3] {
                continue; // general5: a 5×5 matrix, for the engine's n×n exponential
            }
            for k in 0..shape[0] {
                let m: [[f64; 3]; 3] =
                    core::array::from_fn(|i| core::array::from_fn(|j| a[9 * k + 3 * i + j]));
                let e = expm3(&m).unwrap();
                let got: Vec<f64> = e.iter().flatten().copied().collect();
                assert_close(
                    case["name"].as_str().unwrap(),
                    &got,
                    &y[9 * k..9 * k + 9],
                    1e-14,
                );
                checked += 1;
            }
        }
        assert!(checked >= 14, "only {checked} 3×3 matrices in the fixture");
    }

    #[test]
    fn augerino_transform_and_warp_match_pytorch() {
        let doc = fixtures();
        let cases = doc["warp"].as_array().unwrap();
        assert!(cases.len() >= 9);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let (ishape, image) = tensor(&case["image"]);
            let (_, theta) = tensor(&case["theta"]);
            let (yshape, y) = tensor(&case["y"]);
            let (n, c, h, w) = (ishape[0], ishape[1], ishape[2], ishape[3]);
            let (oh, ow) = (yshape[2], yshape[3]);
            for k in 0..n {
                let eps: [f64; 6] = core::array::from_fn(|i| case["eps"][k][i].as_f64().unwrap());
                let t = augerino_transform(&eps).unwrap();
                let th: [[f64; 3]; 2] =
                    core::array::from_fn(|i| core::array::from_fn(|j| theta[6 * k + 3 * i + j]));
                let got: Vec<f64> = t[..2].iter().flatten().copied().collect();
                assert_close(&format!("{name}[{k}] theta"), &got, &th.concat(), 1e-14);
                let mut out = vec![0.0; c * oh * ow];
                let img = &image[k * c * h * w..(k + 1) * c * h * w];
                warp_bilinear(img, c, h, w, &th, &mut out, oh, ow).unwrap();
                let want = &y[k * c * oh * ow..(k + 1) * c * oh * ow];
                assert_close(&format!("{name}[{k}] warp"), &out, want, 1e-12);
            }
        }
    }
}
