//! `keel_core::nn::Simplex` on hand-built files: each point against the network with the
//! combined weights formed explicitly (in `f64`), the average over components × points, the
//! Dirichlet(1) sampler's moments, and the checks a malformed file fails.

use keel_core::io::SafeTensors;
use keel_core::nn::{dirichlet_ones, Bma, Simplex};
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::Error;

/// A safetensors file of F32 tensors (name, shape, values) with the given metadata.
fn file(meta: &[(&str, &str)], tensors: &[(&str, &[usize], &[f32])]) -> Vec<u8> {
    let entries: Vec<String> = meta
        .iter()
        .map(|(k, v)| format!("{}:{}", json(k), json(v)))
        .collect();
    let mut header = format!(r#"{{"__metadata__":{{{}}}"#, entries.join(","));
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in *values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header += &format!(
            r#","{name}":{{"dtype":"F32","shape":[{}],"data_offsets":[{start},{}]}}"#,
            dims.join(","),
            data.len()
        );
    }
    header += "}";
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

const CONFIG: &str = r#"{"model":"mlp","sizes":[3,4,5,2],"activation":"relu","components":2,"vertices":3,"points":4,"classes":["a","b"],"features":["x","y","z"]}"#;
const SIZES: [usize; 4] = [3, 4, 5, 2];
const P: usize = 3 * 4 + 4 + 4 * 5 + 5 + 5 * 2 + 2;
const K: usize = 2;
const N: usize = 3;

/// Deterministic, irregular values in (−1, 1).
fn wiggle(i: usize, salt: f64) -> f32 {
    ((i as f64 * 0.7548776662 + salt).sin() * 1.3).sin() as f32
}

struct Parts {
    vertices: Vec<f32>,
    points: Vec<f32>,
    mean: Vec<f32>,
    std: Vec<f32>,
}

fn parts() -> Parts {
    let vertices = (0..K * N * P).map(|i| wiggle(i, 0.3)).collect();
    // Rows of f32 weights that sum to one: the last is what remains.
    let rows = [
        [0.2f32, 0.3],
        [0.6, 0.1],
        [1.0 / 3.0, 1.0 / 3.0],
        [0.05, 0.9],
    ];
    let mut points = Vec::new();
    for r in rows {
        points.extend_from_slice(&[r[0], r[1], 1.0 - r[0] - r[1]]);
    }
    Parts {
        vertices,
        points,
        mean: vec![0.5, -0.25, 1.0],
        std: vec![2.0, 0.5, 1.5],
    }
}

fn simplex_file(p: &Parts, config: &str) -> Vec<u8> {
    let sizes: Vec<f32> = SIZES.iter().map(|&s| s as f32).collect();
    file(
        &[("keel.kind", "simplex"), ("keel.config", config)],
        &[
            ("vertices", &[K, N, P], &p.vertices),
            ("points", &[p.points.len() / N, N], &p.points),
            ("sizes", &[4], &sizes),
            ("input.mean", &[3], &p.mean),
            ("input.std", &[3], &p.std),
        ],
    )
}

/// The logits of the network with weights `Σ_j α_j w_{k,j}` formed explicitly, in f64.
fn reference_logits(p: &Parts, k: usize, alpha: &[f64], x: &[f64]) -> Vec<f64> {
    let w: Vec<f64> = (0..P)
        .map(|i| {
            (0..N)
                .map(|j| alpha[j] * f64::from(p.vertices[(k * N + j) * P + i]))
                .sum()
        })
        .collect();
    let mut h: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - f64::from(p.mean[i])) / f64::from(p.std[i]))
        .collect();
    let mut at = 0;
    for l in 0..3 {
        let (inp, out) = (SIZES[l], SIZES[l + 1]);
        let next: Vec<f64> = (0..out)
            .map(|o| {
                let v = (0..inp).map(|i| w[at + o * inp + i] * h[i]).sum::<f64>()
                    + w[at + out * inp + o];
                if l < 2 {
                    v.max(0.0)
                } else {
                    v
                }
            })
            .collect();
        at += out * inp + out;
        h = next;
    }
    h
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let t: f64 = e.iter().sum();
    e.iter().map(|v| v / t).collect()
}

const INPUTS: [[f64; 3]; 3] = [[0.1, 0.2, -0.3], [2.0, -1.0, 0.5], [-1.5, 0.75, 3.0]];

#[test]
fn each_point_is_the_network_with_combined_weights() {
    let p = parts();
    let bytes = simplex_file(&p, CONFIG);
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let s = Simplex::<4>::from_safetensors(&st).unwrap();
    assert_eq!(
        (
            s.components(),
            s.vertices(),
            s.points(),
            s.inputs(),
            s.classes(),
            s.parameters()
        ),
        (K, N, 4, 3, 2, P)
    );
    let mut scratch = vec![0.0f64; s.scratch_len()];
    for x in INPUTS {
        for k in 0..K {
            for alpha in [
                [1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0],
                [0.2, 0.5, 0.3],
                [0.7, 0.1, 0.2],
            ] {
                let mut z = [0.0f64; 2];
                s.logits_at(&x, k, &alpha, &mut z, &mut scratch).unwrap();
                let r = reference_logits(&p, k, &alpha, &x);
                for c in 0..2 {
                    assert!((z[c] - r[c]).abs() < 1e-12, "{z:?} vs {r:?}");
                }
            }
        }
    }
}

#[test]
fn a_vertex_equals_the_same_network_in_a_bma_file() {
    // α = e_j multiplies by exactly 1 and adds exact zeros: vertex j of component k is bit for
    // bit the one-sample model average of its weights (f32 arithmetic, as on the controller).
    let p = parts();
    let bytes = simplex_file(&p, CONFIG);
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let s = Simplex::<4>::from_safetensors(&st).unwrap();
    let sizes: Vec<f32> = SIZES.iter().map(|&s| s as f32).collect();
    for (k, j) in [(0, 0), (1, 2)] {
        let w = &p.vertices[(k * N + j) * P..(k * N + j + 1) * P];
        let bma_bytes = file(
            &[("keel.kind", "bma")],
            &[
                ("samples", &[1, P], w),
                ("sizes", &[4], &sizes),
                ("input.mean", &[3], &p.mean),
                ("input.std", &[3], &p.std),
            ],
        );
        let bst = SafeTensors::<8>::parse(&bma_bytes).unwrap();
        let bma = Bma::<4>::from_safetensors(&bst).unwrap();
        let mut alpha = [0.0f32; N];
        alpha[j] = 1.0;
        for x in INPUTS {
            let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut z = [0.0f32; 2];
            let mut scratch = vec![0.0f32; s.scratch_len()];
            s.logits_at(&x, k, &alpha, &mut z, &mut scratch).unwrap();
            let mut expect = [0.0f32; 2];
            let mut bscratch = vec![0.0f32; bma.scratch_len()];
            bma.predict(&x, &mut expect, &mut bscratch).unwrap();
            let got: Vec<f32> = softmax(&[f64::from(z[0]), f64::from(z[1])])
                .iter()
                .map(|&v| v as f32)
                .collect();
            for c in 0..2 {
                assert!(
                    (got[c] - expect[c]).abs() <= 2.0 * f32::EPSILON,
                    "{got:?} {expect:?}"
                );
            }
        }
    }
}

#[test]
fn prediction_averages_probabilities_over_components_and_points() {
    let p = parts();
    let bytes = simplex_file(&p, CONFIG);
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let s = Simplex::<4>::from_safetensors(&st).unwrap();
    let mut scratch = vec![0.0f64; s.scratch_len()];
    for x in INPUTS {
        let mut probs = [0.0f64; 2];
        s.predict(&x, &mut probs, &mut scratch).unwrap();
        let mut expect = [0.0f64; 2];
        for k in 0..K {
            for row in p.points.chunks(N) {
                let alpha: Vec<f64> = row.iter().map(|&a| f64::from(a)).collect();
                let q = softmax(&reference_logits(&p, k, &alpha, &x));
                for c in 0..2 {
                    expect[c] += q[c] / (K * 4) as f64;
                }
            }
        }
        for c in 0..2 {
            assert!(
                (probs[c] - expect[c]).abs() < 1e-12,
                "{probs:?} vs {expect:?}"
            );
        }
    }
}

#[test]
fn sampled_prediction_draws_dirichlet_points_from_the_callers_rng() {
    let p = parts();
    let bytes = simplex_file(&p, CONFIG);
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let s = Simplex::<4>::from_safetensors(&st).unwrap();
    let mut scratch = vec![0.0f64; s.scratch_len()];
    let x = INPUTS[1];
    let mut probs = [0.0f64; 2];
    s.predict_sampled(
        &x,
        5,
        &mut Xoshiro256PlusPlus::seed_from_u64(3),
        &mut probs,
        &mut scratch,
    )
    .unwrap();
    // The same draws, replayed: component by component, 5 points each.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut expect = [0.0f64; 2];
    for k in 0..K {
        for _ in 0..5 {
            let mut alpha = [0.0f64; N];
            dirichlet_ones(&mut rng, &mut alpha);
            let q = softmax(&reference_logits(&p, k, &alpha, &x));
            for c in 0..2 {
                expect[c] += q[c] / (K * 5) as f64;
            }
        }
    }
    for c in 0..2 {
        assert!((probs[c] - expect[c]).abs() < 1e-12);
    }
    assert!(matches!(
        s.predict_sampled(&x, 0, &mut rng, &mut probs, &mut scratch),
        Err(Error::InvalidParameter { name: "draws", .. })
    ));
}

#[test]
fn dirichlet_ones_has_the_moments_of_a_flat_dirichlet() {
    // α ~ Dir(1, 1, 1, 1): E α_j = 1/n, Var α_j = (n − 1)/(n²(n + 1)) = 3/80. With m = 40 000
    // draws the sample mean's standard error is sqrt(3/80/m) ≈ 9.7e-4: a 5σ band. The sample
    // variance's standard error is about sqrt((μ₄ − σ⁴)/m) ≤ 2e-4 here (μ₄ ≤ E α⁴ = 24/(4·5·6·7)
    // = 0.0286): a 5σ band of 1e-3.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
    let (n, m) = (4usize, 40_000usize);
    let mut sum = [0.0f64; 4];
    let mut sq = [0.0f64; 4];
    for _ in 0..m {
        let mut a = [0.0f64; 4];
        dirichlet_ones(&mut rng, &mut a);
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(a.iter().all(|&v| v > 0.0 && v < 1.0));
        for j in 0..n {
            sum[j] += a[j];
            sq[j] += a[j] * a[j];
        }
    }
    for j in 0..n {
        let mean = sum[j] / m as f64;
        let var = sq[j] / m as f64 - mean * mean;
        assert!((mean - 0.25).abs() < 5.0 * 9.7e-4, "mean {mean}");
        assert!((var - 3.0 / 80.0).abs() < 1e-3, "var {var}");
    }
}

#[test]
fn malformed_files_are_refused() {
    let p = parts();
    let parse_err = |bytes: &[u8]| {
        let st = SafeTensors::<8>::parse(bytes).unwrap();
        Simplex::<4>::from_safetensors(&st).unwrap_err()
    };
    // A CNN simplex: the host evaluates those, the core does not.
    let cnn = CONFIG.replace(r#""model":"mlp""#, r#""model":"cnn""#);
    assert!(matches!(
        parse_err(&simplex_file(&p, &cnn)),
        Error::InvalidConfig { what } if what.contains("MLPs only")
    ));
    let tanh = CONFIG.replace("relu", "tanh");
    assert!(matches!(
        parse_err(&simplex_file(&p, &tanh)),
        Error::InvalidConfig { .. }
    ));
    // A point off the simplex.
    let mut off = parts();
    off.points[0] = 0.5;
    assert!(matches!(
        parse_err(&simplex_file(&off, CONFIG)),
        Error::InvalidConfig { what } if what.contains("sum to 1")
    ));
    let mut negative = parts();
    negative.points[0] = -0.1;
    negative.points[1] = 0.4;
    assert!(matches!(
        parse_err(&simplex_file(&negative, CONFIG)),
        Error::InvalidConfig { .. }
    ));
    // Another kind.
    let bma = file(&[("keel.kind", "bma")], &[("samples", &[1, 1], &[0.0])]);
    assert!(matches!(parse_err(&bma), Error::InvalidConfig { .. }));
    // Vertices whose length disagrees with the widths.
    let sizes: Vec<f32> = SIZES.iter().map(|&s| s as f32).collect();
    let short = file(
        &[("keel.kind", "simplex"), ("keel.config", CONFIG)],
        &[
            ("vertices", &[K, N, P - 1], &p.vertices[..K * N * (P - 1)]),
            ("points", &[4, N], &p.points),
            ("sizes", &[4], &sizes),
            ("input.mean", &[3], &p.mean),
            ("input.std", &[3], &p.std),
        ],
    );
    assert!(matches!(parse_err(&short), Error::InvalidConfig { .. }));
    // Points with another vertex count.
    let wrong_points = file(
        &[("keel.kind", "simplex"), ("keel.config", CONFIG)],
        &[
            ("vertices", &[K, N, P], &p.vertices),
            ("points", &[6, 2], &p.points),
            ("sizes", &[4], &sizes),
            ("input.mean", &[3], &p.mean),
            ("input.std", &[3], &p.std),
        ],
    );
    assert!(matches!(
        parse_err(&wrong_points),
        Error::TensorShape { role: "points", .. }
    ));
    // Too many layers for the reader's capacity.
    let st_bytes = simplex_file(&p, CONFIG);
    let st = SafeTensors::<8>::parse(&st_bytes).unwrap();
    assert!(matches!(
        Simplex::<2>::from_safetensors(&st),
        Err(Error::CapacityExceeded { .. })
    ));
    // Scratch and shapes at prediction time.
    let s = Simplex::<4>::from_safetensors(&st).unwrap();
    let mut probs = [0.0f64; 2];
    let mut small = vec![0.0f64; s.scratch_len() - 1];
    assert!(matches!(
        s.predict(&INPUTS[0], &mut probs, &mut small),
        Err(Error::ScratchTooSmall { .. })
    ));
    let mut scratch = vec![0.0f64; s.scratch_len()];
    assert!(matches!(
        s.predict(&[0.0; 2], &mut probs, &mut scratch),
        Err(Error::ShapeMismatch { what: "x", .. })
    ));
    let mut z = [0.0f64; 2];
    assert!(matches!(
        s.logits_at(&INPUTS[0], 2, &[1.0, 0.0, 0.0], &mut z, &mut scratch),
        Err(Error::IndexOutOfRange { .. })
    ));
}
