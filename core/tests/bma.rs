//! `keel_core::nn::Bma` on hand-built files: the average against a hand computation, and the
//! checks a malformed file fails.

use keel_core::io::SafeTensors;
use keel_core::nn::Bma;

/// A safetensors file of F32 tensors (name, shape, values) with `keel.kind = kind`.
fn file(kind: &str, tensors: &[(&str, &[usize], &[f32])]) -> Vec<u8> {
    let mut header = format!(r#"{{"__metadata__":{{"keel.kind":"{kind}"}}"#);
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

// Two samples of a 2 → 2 → 2 ReLU network: W0 [2, 2], b0 [2], W1 [2, 2], b1 [2] (12 parameters).
const S0: [f32; 12] = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
const S1: [f32; 12] = [
    0.5, -1.0, 2.0, 0.0, 0.1, -0.2, -1.0, 1.0, 0.5, 0.5, 0.3, 0.0,
];

fn samples() -> Vec<f32> {
    S0.iter().chain(&S1).copied().collect()
}

fn reference(x: [f64; 2]) -> [f64; 2] {
    let mut avg = [0.0; 2];
    for s in [S0, S1] {
        let s: Vec<f64> = s.iter().map(|&v| f64::from(v)).collect();
        let h: Vec<f64> = (0..2)
            .map(|j| (s[2 * j] * x[0] + s[2 * j + 1] * x[1] + s[4 + j]).max(0.0))
            .collect();
        let z: Vec<f64> = (0..2)
            .map(|j| s[6 + 2 * j] * h[0] + s[6 + 2 * j + 1] * h[1] + s[10 + j])
            .collect();
        let m = z[0].max(z[1]);
        let e = [(z[0] - m).exp(), (z[1] - m).exp()];
        for c in 0..2 {
            avg[c] += 0.5 * e[c] / (e[0] + e[1]);
        }
    }
    avg
}

#[test]
fn averages_probabilities_of_standardised_inputs() {
    let s = samples();
    let bytes = file(
        "bma",
        &[
            ("samples", &[2, 12], &s),
            ("sizes", &[3], &[2.0, 2.0, 2.0]),
            ("input.mean", &[2], &[1.0, -1.0]),
            ("input.std", &[2], &[2.0, 0.5]),
        ],
    );
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    let bma = Bma::<4>::from_safetensors(&st).unwrap();
    assert_eq!(
        (bma.count(), bma.inputs(), bma.classes(), bma.parameters()),
        (2, 2, 2, 12)
    );
    let mut scratch = [0.0f64; 4];
    for raw in [[3.0, -0.5], [1.0, -1.0], [-2.0, 0.25]] {
        let mut p = [0.0f64; 2];
        bma.predict(&raw, &mut p, &mut scratch).unwrap();
        let x = [(raw[0] - 1.0) / 2.0, (raw[1] + 1.0) / 0.5];
        let want = reference(x);
        for c in 0..2 {
            assert!((p[c] - want[c]).abs() < 1e-12, "{p:?} vs {want:?}");
        }
    }
    // Wrong buffer lengths are errors, not panics.
    let mut p = [0.0f64; 2];
    assert!(bma.predict(&[1.0], &mut p, &mut scratch).is_err());
    assert!(bma.predict(&[1.0, 2.0], &mut p[..1], &mut scratch).is_err());
    assert!(bma.predict(&[1.0, 2.0], &mut p, &mut scratch[..3]).is_err());
}

#[test]
fn malformed_files_are_refused() {
    let s = samples();
    let good: [(&str, &[usize], &[f32]); 4] = [
        ("samples", &[2, 12], &s),
        ("sizes", &[3], &[2.0, 2.0, 2.0]),
        ("input.mean", &[2], &[0.0, 0.0]),
        ("input.std", &[2], &[1.0, 1.0]),
    ];
    let parse = |kind: &str, t: &[(&str, &[usize], &[f32])]| {
        let bytes = file(kind, t);
        let st = SafeTensors::<8>::parse(&bytes).unwrap();
        Bma::<4>::from_safetensors(&st).map(|_| ())
    };
    assert!(parse("bma", &good).is_ok());
    assert!(parse("mlp", &good).is_err());
    let mut bad = good;
    bad[1] = ("sizes", &[3], &[2.0, 3.0, 2.0]); // 17 parameters, not 12
    assert!(parse("bma", &bad).is_err());
    bad[1] = ("sizes", &[3], &[2.0, 2.5, 2.0]);
    assert!(parse("bma", &bad).is_err());
    let mut bad = good;
    bad[3] = ("input.std", &[2], &[1.0, 0.0]);
    assert!(parse("bma", &bad).is_err());
    let mut bad = good;
    bad[2] = ("input.mean", &[3], &[0.0, 0.0, 0.0]);
    assert!(parse("bma", &bad).is_err());
    assert!(parse("bma", &good[..3]).is_err());
    // More layers than the type holds.
    let bytes = file("bma", &good);
    let st = SafeTensors::<8>::parse(&bytes).unwrap();
    assert!(Bma::<1>::from_safetensors(&st).is_err());
}
