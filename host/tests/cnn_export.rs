//! The CNN writer (`keel::export::cnn_bytes`) and batch-norm folding: folded convolutions equal
//! convolution then batch norm, a written file evaluates in `keel-core` as a direct `f64`
//! reference written here does (conv → BN → ReLU → pool → dense, the weights rounded to `f32` as
//! the file stores them), the reference `safetensors` crate reads it, and every inconsistency
//! between the configuration and the weights is refused with the layer named.

use keel::export::{cnn_bytes, fold_batch_norm, AugerinoExport, CnnConfig, CnnLayer, OutputKind};
use keel_core::io::SafeTensors;
use keel_core::nn::Cnn;

/// Named tensors as `cnn_bytes` takes them.
type Weights = Vec<(String, Vec<usize>, Vec<f64>)>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        2.0 * ((z >> 11) as f64 / (1u64 << 53) as f64) - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// A direct convolution (stride 1, zero padding `p`, one group): every output pixel sums its
/// in-bounds taps.
fn conv(
    x: &[f64],
    [c, h, w]: [usize; 3],
    weight: &[f64],
    bias: &[f64],
    k: usize,
    p: usize,
) -> Vec<f64> {
    let o = bias.len();
    let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
    let mut y = vec![0.0; o * oh * ow];
    for oc in 0..o {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[oc];
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (
                                (oy + ky) as isize - p as isize,
                                (ox + kx) as isize - p as isize,
                            );
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += weight[((oc * c + ci) * k + ky) * k + kx]
                                    * x[(ci * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                }
                y[(oc * oh + oy) * ow + ox] = acc;
            }
        }
    }
    y
}

/// Eval-mode batch norm of a `[O, n]` activation.
fn batch_norm(
    y: &[f64],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let n = y.len() / gamma.len();
    y.iter()
        .enumerate()
        .map(|(k, v)| {
            let c = k / n;
            gamma[c] * (v - mean[c]) / (var[c] + eps).sqrt() + beta[c]
        })
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x as f32)).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rtol * (w.abs() + scale),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

struct Bn {
    gamma: Vec<f64>,
    beta: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
}

fn bn(o: usize, rng: &mut Rng) -> Bn {
    Bn {
        gamma: rng.vec(o).iter().map(|g| 0.5 + g.abs()).collect(),
        beta: rng.vec(o),
        mean: rng.vec(o),
        var: rng.vec(o).iter().map(|v| 0.1 + v * v).collect(),
    }
}

#[test]
fn a_folded_convolution_equals_convolution_then_batch_norm() {
    let mut rng = Rng(1);
    let shape = [3, 5, 4];
    let x = rng.vec(60);
    let (o, k) = (4, 3);
    let weight = rng.vec(o * 3 * k * k);
    let n = bn(o, &mut rng);
    for bias in [Some(rng.vec(o)), None] {
        let b = bias.clone().unwrap_or(vec![0.0; o]);
        let want = batch_norm(
            &conv(&x, shape, &weight, &b, k, 1),
            &n.gamma,
            &n.beta,
            &n.mean,
            &n.var,
            1e-5,
        );
        let (w2, b2) = fold_batch_norm(
            &weight,
            bias.as_deref(),
            &n.gamma,
            &n.beta,
            &n.mean,
            &n.var,
            1e-5,
        )
        .unwrap();
        assert_close("folded", &conv(&x, shape, &w2, &b2, k, 1), &want, 1e-12);
    }
    // Identity statistics leave the layer as it was.
    let ones = vec![1.0; o];
    let zeros = vec![0.0; o];
    let b = rng.vec(o);
    let (w2, b2) = fold_batch_norm(&weight, Some(&b), &ones, &zeros, &zeros, &ones, 0.0).unwrap();
    assert_eq!((w2, b2), (weight.clone(), b));
    // Mismatched lengths and a non-positive variance are refused.
    assert!(fold_batch_norm(&weight, None, &n.gamma[..3], &n.beta, &n.mean, &n.var, 1e-5).is_err());
    assert!(fold_batch_norm(&weight[..7], None, &n.gamma, &n.beta, &n.mean, &n.var, 1e-5).is_err());
    assert!(fold_batch_norm(
        &weight,
        Some(&[0.0; 3]),
        &n.gamma,
        &n.beta,
        &n.mean,
        &n.var,
        1e-5
    )
    .is_err());
    let mut var = n.var.clone();
    var[2] = -1.0;
    let e = fold_batch_norm(&weight, None, &n.gamma, &n.beta, &n.mean, &var, 1e-5).unwrap_err();
    assert!(e.to_string().contains("running_var[2]"), "{e}");
}

fn conv_layer(out: usize, k: usize, p: usize, activation: &str) -> CnnLayer {
    CnnLayer::Conv {
        out,
        kernel: [k, k],
        stride: [1, 1],
        padding: [p, p],
        dilation: [1, 1],
        groups: 1,
        activation: activation.into(),
    }
}

/// conv(3×3, pad 1, BN folded, relu) → maxpool 2 → flatten → dense 3, on a 2×6×6 input.
fn model(seed: u64) -> (CnnConfig, Weights, impl Fn(&[f64]) -> Vec<f64>) {
    let mut rng = Rng(seed);
    let config = CnnConfig {
        input: [2, 6, 6],
        layers: vec![
            conv_layer(4, 3, 1, "relu"),
            CnnLayer::MaxPool {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            CnnLayer::Flatten,
            CnnLayer::Dense {
                out: 3,
                activation: "identity".into(),
            },
        ],
        output: OutputKind::Logits,
        normalization: Some((0.5, 0.25)),
        augerino: None,
        classes: Some(vec!["a".into(), "b".into(), "c".into()]),
    };
    let w0 = rng.vec(4 * 2 * 9);
    let n = bn(4, &mut rng);
    let (fw, fb) = fold_batch_norm(&w0, None, &n.gamma, &n.beta, &n.mean, &n.var, 1e-5).unwrap();
    let w3 = rng.vec(3 * 36);
    let b3 = rng.vec(3);
    let weights = vec![
        ("layer0.weight".to_string(), vec![4, 2, 3, 3], fw.clone()),
        ("layer0.bias".to_string(), vec![4], fb.clone()),
        ("layer3.weight".to_string(), vec![3, 36], w3.clone()),
        ("layer3.bias".to_string(), vec![3], b3.clone()),
    ];
    // The reference: conv (folded, f32-rounded weights as stored) → relu → 2×2 max → dense.
    let (fw, fb, w3, b3) = (to_f32(&fw), to_f32(&fb), to_f32(&w3), to_f32(&b3));
    let reference = move |image: &[f64]| {
        let x: Vec<f64> = image.iter().map(|v| (v - 0.5) / 0.25).collect();
        let y: Vec<f64> = conv(&x, [2, 6, 6], &fw, &fb, 3, 1)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        let mut pooled = vec![0.0; 36];
        for c in 0..4 {
            for i in 0..3 {
                for j in 0..3 {
                    let at = |di: usize, dj: usize| y[(c * 6 + 2 * i + di) * 6 + 2 * j + dj];
                    pooled[(c * 3 + i) * 3 + j] =
                        at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                }
            }
        }
        (0..3)
            .map(|o| b3[o] + (0..36).map(|k| w3[o * 36 + k] * pooled[k]).sum::<f64>())
            .collect::<Vec<f64>>()
    };
    (config, weights, reference)
}

#[test]
fn a_written_cnn_evaluates_in_the_core_as_the_reference_does() {
    let (config, weights, reference) = model(2);
    let bytes = cnn_bytes(&config, &weights).unwrap();
    assert_eq!(
        bytes,
        cnn_bytes(&config, &weights).unwrap(),
        "deterministic"
    );
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let cnn = Cnn::<'_, 8>::from_safetensors(&st).unwrap();
    assert_eq!(cnn.outputs(), 3);
    assert_eq!(cnn.normalization(), Some((0.5, 0.25)));
    let mut scratch = vec![0.0f64; cnn.scratch_len()];
    for seed in 0..4 {
        let image: Vec<f64> = Rng(100 + seed).vec(72).iter().map(|v| v.abs()).collect();
        let mut out = vec![0.0; 3];
        cnn.forward(&image, &mut out, &mut scratch).unwrap();
        assert_close("core vs reference", &out, &reference(&image), 1e-12);
    }
    // The reference reader agrees on the layout, and the configuration is the documented JSON.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("layer0.weight").unwrap().shape(), &[4, 2, 3, 3]);
    assert_eq!(
        st.tensor("input.std").unwrap().data(),
        &0.25f32.to_le_bytes()[..]
    );
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["keel.kind"], "cnn");
    let json: serde_json::Value = serde_json::from_str(&meta["keel.config"]).unwrap();
    assert_eq!(json["input"], serde_json::json!([2, 6, 6]));
    assert_eq!(json["input_normalization"], true);
    assert_eq!(json["layers"][0]["type"], "conv");
    assert_eq!(
        json["layers"][1],
        serde_json::json!({"type": "maxpool", "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0]})
    );
    assert_eq!(json["layers"][2], serde_json::json!({"type": "flatten"}));
    assert_eq!(json["classes"][2], "c");
    assert!(json.get("augerino").is_none());
}

#[test]
fn an_augerino_export_carries_its_widths_and_copies() {
    let (mut config, weights, _) = model(3);
    config.augerino = Some(AugerinoExport {
        widths: [0.01, 0.02, 1.5, 0.0, 0.1, 0.05],
        copies: 6,
    });
    let bytes = cnn_bytes(&config, &weights).unwrap();
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let cnn = Cnn::<'_, 8>::from_safetensors(&st).unwrap();
    assert_eq!(cnn.config().augerino_copies(), Some(6));
    assert_eq!(cnn.augerino_widths().unwrap()[2], 1.5);
    let aug = keel_core::nn::Augerino::new(&cnn).unwrap();
    assert_eq!(aug.default_copies(), 6);
    for bad in [[0.0, 0.0, -0.1, 0.0, 0.0, 0.0], [f64::NAN; 6]] {
        config.augerino = Some(AugerinoExport {
            widths: bad,
            copies: 4,
        });
        assert!(cnn_bytes(&config, &weights).is_err());
    }
    config.augerino = Some(AugerinoExport {
        widths: [0.0; 6],
        copies: 0,
    });
    assert!(cnn_bytes(&config, &weights).is_err());
}

fn error(config: &CnnConfig, weights: &[(String, Vec<usize>, Vec<f64>)]) -> String {
    cnn_bytes(config, weights).unwrap_err().to_string()
}

fn says(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[test]
fn inconsistent_weights_are_refused_naming_the_layer() {
    let (config, weights, _) = model(4);
    let without =
        |name: &str| -> Vec<_> { weights.iter().filter(|t| t.0 != name).cloned().collect() };
    says(
        &error(&config, &without("layer3.bias")),
        &["layer 3 (dense)", "no `layer3.bias`"],
    );
    let mut wrong = without("layer0.weight");
    wrong.push(("layer0.weight".into(), vec![4, 1, 3, 3], vec![0.0; 36]));
    says(
        &error(&config, &wrong),
        &["layer 0 (conv)", "[4, 1, 3, 3]", "[4, 2, 3, 3]"],
    );
    let mut short = without("layer3.bias");
    short.push(("layer3.bias".into(), vec![3], vec![0.0; 2]));
    says(&error(&config, &short), &["layer 3 (dense)", "2 values"]);
    // Unfolded batch norm, weights on a pool, a tensor given twice.
    let mut extra = weights.clone();
    extra.push(("layer0.running_mean".into(), vec![4], vec![0.0; 4]));
    says(
        &error(&config, &extra),
        &["layer0.running_mean", "fold_batch_norm"],
    );
    let mut extra = weights.clone();
    extra.push(("layer1.weight".into(), vec![1], vec![0.0]));
    says(&error(&config, &extra), &["layer1.weight", "no layer uses"]);
    let mut twice = weights.clone();
    twice.push(weights[0].clone());
    says(&error(&config, &twice), &["layer0.weight", "twice"]);
    // Values that are not finite f32s.
    for bad in [f64::NAN, 1e39] {
        let mut w = weights.clone();
        w[2].2[5] = bad;
        says(&error(&config, &w), &["layer3.weight", "value 5"]);
    }
}

#[test]
fn configurations_that_do_not_fit_are_refused_naming_the_layer() {
    let (config, weights, _) = model(5);
    let with_layer = |i: usize, layer: CnnLayer| {
        let mut c = config.clone();
        c.layers[i] = layer;
        c
    };
    // A 9×9 kernel over 6×6 padded by 1.
    says(
        &error(&with_layer(0, conv_layer(4, 9, 1, "relu")), &weights),
        &["layer 0 (conv)", "larger than the input"],
    );
    // Pool padding over half the window; a window over the 6×6 activation.
    let pool = |k: usize, p: usize| CnnLayer::MaxPool {
        kernel: [k, k],
        stride: [k, k],
        padding: [p, p],
    };
    says(
        &error(&with_layer(1, pool(2, 2)), &weights),
        &["layer 1 (maxpool)", "half"],
    );
    says(
        &error(&with_layer(1, pool(7, 0)), &weights),
        &["layer 1 (maxpool)", "larger"],
    );
    // Dense on an unflattened input; groups that do not divide the channels; an unknown activation.
    says(
        &error(
            &with_layer(
                2,
                CnnLayer::Dense {
                    out: 3,
                    activation: "relu".into(),
                },
            ),
            &weights,
        ),
        &["layer 2 (dense)", "flat input"],
    );
    let mut grouped = conv_layer(4, 3, 1, "relu");
    if let CnnLayer::Conv { groups, .. } = &mut grouped {
        *groups = 3;
    }
    says(
        &error(&with_layer(0, grouped), &weights),
        &["layer 0 (conv)", "multiples of 3 groups"],
    );
    says(
        &error(&with_layer(0, conv_layer(4, 3, 1, "gelu")), &weights),
        &["layer 0 (conv)", "`gelu`"],
    );
    // A Gaussian head, a bad normalisation, a zero input size.
    let mut c = config.clone();
    c.output = OutputKind::Gaussian;
    says(&error(&c, &weights), &["`logits` or `regression`"]);
    let mut c = config.clone();
    c.normalization = Some((0.0, 0.0));
    says(&error(&c, &weights), &["std"]);
    let mut c = config.clone();
    c.input = [2, 0, 6];
    says(&error(&c, &weights), &["input"]);
    // The expected shapes, for a trainer to lay out its parameters.
    assert_eq!(
        config.weight_shapes().unwrap(),
        vec![
            Some((vec![4, 2, 3, 3], 4)),
            None,
            None,
            Some((vec![3, 36], 3))
        ]
    );
    assert_eq!(
        config.shapes().unwrap(),
        vec![[4, 6, 6], [4, 3, 3], [36, 1, 1], [3, 1, 1]]
    );
}

/// The CNN the firmware's `cnn-bench` binary embeds (`firmware/assets/cnn-digit.safetensors`):
/// a digits-sized Augerino CNN with fixed seeded weights (not trained — it measures cost, not
/// accuracy): conv 3×3 1→8 relu, 2×2 max pool, conv 3×3 8→16 relu, global mean, dense 16→10,
/// input normalised by (x − 8)/4 (the digits' 0–16 pixels), widths for a rotation-heavy
/// Augerino, 4 copies.
fn firmware_cnn() -> (CnnConfig, Weights) {
    let mut rng = Rng(2021);
    let mut scaled = |n: usize, fan_in: usize| -> Vec<f64> {
        let s = (3.0 / fan_in as f64).sqrt();
        rng.vec(n).into_iter().map(|v| v * s).collect()
    };
    let weights = vec![
        ("layer0.weight".to_string(), vec![8, 1, 3, 3], scaled(72, 9)),
        ("layer0.bias".to_string(), vec![8], scaled(8, 9)),
        (
            "layer2.weight".to_string(),
            vec![16, 8, 3, 3],
            scaled(1152, 72),
        ),
        ("layer2.bias".to_string(), vec![16], scaled(16, 72)),
        ("layer4.weight".to_string(), vec![10, 16], scaled(160, 16)),
        ("layer4.bias".to_string(), vec![10], scaled(10, 16)),
    ];
    let config = CnnConfig {
        input: [1, 8, 8],
        layers: vec![
            conv_layer(8, 3, 1, "relu"),
            CnnLayer::MaxPool {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            conv_layer(16, 3, 1, "relu"),
            CnnLayer::GlobalMean,
            CnnLayer::Dense {
                out: 10,
                activation: "identity".into(),
            },
        ],
        output: OutputKind::Logits,
        normalization: Some((8.0, 4.0)),
        augerino: Some(AugerinoExport {
            widths: [0.05, 0.05, 1.0, 0.05, 0.05, 0.05],
            copies: 4,
        }),
        classes: None,
    };
    (config, weights)
}

/// The committed firmware asset is exactly what the writer makes of `firmware_cnn`
/// (`KEEL_WRITE_ASSETS=1` rewrites it).
#[test]
fn the_firmware_cnn_asset_is_the_writers_output() {
    let (config, weights) = firmware_cnn();
    let bytes = cnn_bytes(&config, &weights).unwrap();
    let path: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "firmware",
        "assets",
        "cnn-digit.safetensors",
    ]
    .iter()
    .collect();
    if std::env::var_os("KEEL_WRITE_ASSETS").is_some() {
        keel::export::write_cnn(&path, &config, &weights).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "rerun with KEEL_WRITE_ASSETS=1"
    );
    let st = SafeTensors::<'_, 16>::parse(&bytes).unwrap();
    let cnn = Cnn::<'_, 8>::from_safetensors(&st).unwrap();
    assert_eq!(cnn.scratch_len(), 1024);
}
