//! `keel_core::nn::Cnn` on files built here: a convolution checked by hand, strided, padded,
//! dilated and grouped convolutions and both poolings against a naive reference written below
//! (one loop per index, every tap tested against the input's bounds, in `f64`), whole networks
//! in `f32` against `f64`, and every malformed file the loader must refuse.
//!
//! Tolerances: `f64` against the reference 1e-12 relative (the two sum the same products in
//! different orders); `f32` against `f64` 1e-5 relative to the output's scale (float32 rounding
//! over a few hundred terms per output).

use keel_core::io::SafeTensors;
use keel_core::nn::{Activation, Cnn, CnnLayer, Output};
use keel_core::Error;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Files

/// A safetensors file with `keel.kind = kind`, `keel.config = config` (if any) and the tensors
/// (name, shape, values) stored as `dtype` (`"F32"` or `"F64"`).
fn file_of(
    kind: &str,
    config: Option<&str>,
    tensors: &[(String, Vec<usize>, Vec<f64>)],
    dtype: &str,
) -> Vec<u8> {
    let mut meta = serde_json::Map::new();
    meta.insert("keel.kind".into(), json!(kind));
    if let Some(c) = config {
        meta.insert("keel.config".into(), json!(c));
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), Value::Object(meta));
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for &v in values {
            if dtype == "F64" {
                data.extend_from_slice(&v.to_le_bytes());
            } else {
                data.extend_from_slice(&(v as f32).to_le_bytes());
            }
        }
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = Value::Object(header).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

fn load<const L: usize>(bytes: &[u8]) -> Result<Cnn<'_, L>, Error> {
    // The SafeTensors view must outlive the model's borrow of the bytes: leak it (tests only).
    let st: &'static SafeTensors<'static, 64> = Box::leak(Box::new(SafeTensors::parse(
        Box::leak(bytes.to_vec().into_boxed_slice()),
    )?));
    Cnn::from_safetensors(st)
}

fn load_error(bytes: &[u8]) -> Error {
    match load::<8>(bytes) {
        Ok(_) => panic!("the file loaded"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// A network description, its file and its naive reference

struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1), rounded to f32 (what the file stores).
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        f64::from((2.0 * u - 1.0) as f32)
    }
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

#[derive(Clone, Debug)]
enum Spec {
    Conv {
        out: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        act: &'static str,
    },
    Max {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    Avg {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    GlobalMean,
    Flatten,
    Dense {
        out: usize,
        act: &'static str,
    },
}

fn conv(out: usize, k: usize, s: usize, p: usize, d: usize, g: usize, act: &'static str) -> Spec {
    Spec::Conv {
        out,
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [d, d],
        groups: g,
        act,
    }
}

impl Spec {
    fn json(&self) -> Value {
        match self {
            Spec::Conv {
                out,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                act,
            } => json!({
                "type": "conv", "out": out, "kernel": kernel, "stride": stride,
                "padding": padding, "dilation": dilation, "groups": groups, "activation": act}),
            Spec::Max {
                kernel,
                stride,
                padding,
            } => {
                json!({"type": "maxpool", "kernel": kernel, "stride": stride, "padding": padding})
            }
            Spec::Avg {
                kernel,
                stride,
                padding,
            } => {
                json!({"type": "avgpool", "kernel": kernel, "stride": stride, "padding": padding})
            }
            Spec::GlobalMean => json!({"type": "global_mean"}),
            Spec::Flatten => json!({"type": "flatten"}),
            Spec::Dense { out, act } => json!({"type": "dense", "out": out, "activation": act}),
        }
    }
}

fn act(name: &str, v: f64) -> f64 {
    match name {
        "relu" => v.max(0.0),
        "tanh" => v.tanh(),
        "identity" => v,
        other => panic!("no reference for {other}"),
    }
}

/// Output size along one axis (PyTorch's formula).
fn out_len(n: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (n + 2 * p - d * (k - 1) - 1) / s + 1
}

/// The naive convolution: one loop per index, every tap tested against the input's bounds.
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f64],
    [c, h, w]: [usize; 3],
    weight: &[f64],
    bias: &[f64],
    out: usize,
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
    [dh, dw]: [usize; 2],
    groups: usize,
) -> (Vec<f64>, [usize; 3]) {
    let (oh, ow) = (out_len(h, kh, sh, ph, dh), out_len(w, kw, sw, pw, dw));
    let (cpg, opg) = (c / groups, out / groups);
    let mut y = vec![0.0; out * oh * ow];
    for o in 0..out {
        let g = o / opg;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[o];
                for ci in 0..cpg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * sh + ky * dh) as isize - ph as isize;
                            let ix = (ox * sw + kx * dw) as isize - pw as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let xv = x[((g * cpg + ci) * h + iy as usize) * w + ix as usize];
                            acc += weight[((o * cpg + ci) * kh + ky) * kw + kx] * xv;
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = acc;
            }
        }
    }
    (y, [out, oh, ow])
}

/// Naive pooling: max over the in-bounds taps, or their sum over `kh·kw`.
fn pool_ref(
    x: &[f64],
    [c, h, w]: [usize; 3],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    [ph, pw]: [usize; 2],
    max: bool,
) -> (Vec<f64>, [usize; 3]) {
    let (oh, ow) = (out_len(h, kh, sh, ph, 1), out_len(w, kw, sw, pw, 1));
    let mut y = vec![0.0; c * oh * ow];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * sh + ky) as isize - ph as isize;
                        let ix = (ox * sw + kx) as isize - pw as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(ch * h + iy as usize) * w + ix as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                    }
                }
                y[(ch * oh + oy) * ow + ox] = if max { acc } else { acc / (kh * kw) as f64 };
            }
        }
    }
    (y, [c, oh, ow])
}

/// A layer's weight shape, weight and bias.
type Params = (Vec<usize>, Vec<f64>, Vec<f64>);

struct Net {
    input: [usize; 3],
    specs: Vec<Spec>,
    /// Per layer: (weight shape, weight, bias) for conv and dense.
    params: Vec<Option<Params>>,
    norm: Option<(f64, f64)>,
}

impl Net {
    fn new(input: [usize; 3], specs: Vec<Spec>, seed: u64) -> Net {
        let mut rng = Rng(seed);
        let mut shape = input;
        let mut params = Vec::new();
        for s in &specs {
            let (p, next) = match *s {
                Spec::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    ..
                } => {
                    let ws = vec![out, shape[0] / groups, kernel[0], kernel[1]];
                    let w = rng.vec(ws.iter().product());
                    let b = rng.vec(out);
                    let next = [
                        out,
                        out_len(shape[1], kernel[0], stride[0], padding[0], dilation[0]),
                        out_len(shape[2], kernel[1], stride[1], padding[1], dilation[1]),
                    ];
                    (Some((ws, w, b)), next)
                }
                Spec::Max {
                    kernel,
                    stride,
                    padding,
                }
                | Spec::Avg {
                    kernel,
                    stride,
                    padding,
                } => (
                    None,
                    [
                        shape[0],
                        out_len(shape[1], kernel[0], stride[0], padding[0], 1),
                        out_len(shape[2], kernel[1], stride[1], padding[1], 1),
                    ],
                ),
                Spec::GlobalMean => (None, [shape[0], 1, 1]),
                Spec::Flatten => (None, [shape.iter().product(), 1, 1]),
                Spec::Dense { out, .. } => {
                    let ws = vec![out, shape[0]];
                    (
                        Some((ws, rng.vec(out * shape[0]), rng.vec(out))),
                        [out, 1, 1],
                    )
                }
            };
            params.push(p);
            shape = next;
        }
        Net {
            input,
            specs,
            params,
            norm: None,
        }
    }

    fn config(&self) -> Value {
        json!({
            "input": self.input,
            "input_normalization": self.norm.is_some(),
            "output": "logits",
            "layers": self.specs.iter().map(Spec::json).collect::<Vec<_>>(),
        })
    }

    fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f64>)> {
        let mut t = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if let Some((ws, w, b)) = p {
                t.push((format!("layer{i}.weight"), ws.clone(), w.clone()));
                t.push((format!("layer{i}.bias"), vec![b.len()], b.clone()));
            }
        }
        if let Some((m, s)) = self.norm {
            t.push(("input.mean".into(), vec![1], vec![m]));
            t.push(("input.std".into(), vec![1], vec![s]));
        }
        t
    }

    fn file(&self, dtype: &str) -> Vec<u8> {
        file_of(
            "cnn",
            Some(&self.config().to_string()),
            &self.tensors(),
            dtype,
        )
    }

    fn reference(&self, image: &[f64]) -> Vec<f64> {
        let mut x: Vec<f64> = match self.norm {
            Some((m, s)) => image.iter().map(|v| (v - m) / s).collect(),
            None => image.to_vec(),
        };
        let mut shape = self.input;
        for (spec, p) in self.specs.iter().zip(&self.params) {
            let (y, next) = match *spec {
                Spec::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    act: a,
                } => {
                    let (ws, w, b) = p.as_ref().unwrap();
                    assert_eq!(ws[1], shape[0] / groups);
                    let (y, next) = conv_ref(
                        &x, shape, w, b, out, kernel, stride, padding, dilation, groups,
                    );
                    (y.into_iter().map(|v| act(a, v)).collect(), next)
                }
                Spec::Max {
                    kernel,
                    stride,
                    padding,
                } => pool_ref(&x, shape, kernel, stride, padding, true),
                Spec::Avg {
                    kernel,
                    stride,
                    padding,
                } => pool_ref(&x, shape, kernel, stride, padding, false),
                Spec::GlobalMean => {
                    let n = shape[1] * shape[2];
                    (
                        x.chunks(n)
                            .map(|c| c.iter().sum::<f64>() / n as f64)
                            .collect(),
                        [shape[0], 1, 1],
                    )
                }
                Spec::Flatten => (x.clone(), [x.len(), 1, 1]),
                Spec::Dense { out, act: a } => {
                    let (_, w, b) = p.as_ref().unwrap();
                    let y = (0..out)
                        .map(|j| {
                            let z: f64 =
                                b[j] + (0..x.len()).map(|k| w[j * x.len() + k] * x[k]).sum::<f64>();
                            act(a, z)
                        })
                        .collect();
                    (y, [out, 1, 1])
                }
            };
            x = y;
            shape = next;
        }
        x
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rtol * (w.abs() + scale);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{k}]: got {g}, want {w} (tol {tol:e})"
        );
    }
}

/// The model's output on `image` in f64 and in f32 (widened).
fn run_both(bytes: &[u8], image: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let cnn = load::<16>(bytes).unwrap();
    let mut scratch64 = vec![0.0f64; cnn.scratch_len()];
    let mut out64 = vec![0.0f64; cnn.outputs()];
    cnn.forward(image, &mut out64, &mut scratch64).unwrap();
    let image32: Vec<f32> = image.iter().map(|&v| v as f32).collect();
    let mut scratch32 = vec![0.0f32; cnn.scratch_len()];
    let mut out32 = vec![0.0f32; cnn.outputs()];
    cnn.forward(&image32, &mut out32, &mut scratch32).unwrap();
    (out64, out32.into_iter().map(f64::from).collect())
}

/// The network against its reference in f64 (1e-12) and f32 against f64 (1e-5).
fn check(net: &Net, seed: u64, what: &str) {
    let n: usize = net.input.iter().product();
    let image = Rng(seed).vec(n);
    let want = net.reference(&image);
    for dtype in ["F32", "F64"] {
        let (got64, got32) = run_both(&net.file(dtype), &image);
        assert_close(&format!("{what} f64 {dtype}"), &got64, &want, 1e-12);
        assert_close(&format!("{what} f32 {dtype}"), &got32, &got64, 1e-5);
    }
}

// ---------------------------------------------------------------------------------------------
// Values

/// One 3×3 channel `1..9`, kernel `[[1, 2], [3, 4]]`, bias 0.5: each output is
/// `x[i,j] + 2x[i,j+1] + 3x[i+1,j] + 4x[i+1,j+1] + 0.5`, worked out by hand.
#[test]
fn a_two_by_two_convolution_matches_the_hand_computation() {
    let image: Vec<f64> = (1..=9).map(f64::from).collect();
    let tensors = |pad: usize| {
        let config = json!({"input": [1, 3, 3], "input_normalization": false, "output": "regression",
            "layers": [{"type": "conv", "out": 1, "kernel": 2, "padding": pad, "activation": "identity"},
                       {"type": "flatten"}]});
        file_of(
            "cnn",
            Some(&config.to_string()),
            &[
                (
                    "layer0.weight".into(),
                    vec![1, 1, 2, 2],
                    vec![1.0, 2.0, 3.0, 4.0],
                ),
                ("layer0.bias".into(), vec![1], vec![0.5]),
            ],
            "F32",
        )
    };
    // 1+4+12+20, 2+6+15+24, 4+10+21+32, 5+12+24+36, each + 0.5.
    let (got, got32) = run_both(&tensors(0), &image);
    assert_eq!(got, [37.5, 47.5, 67.5, 77.5]);
    assert_eq!(got32, got);
    // Padding 1: a 4×4 output; the corner sees only x[0,0] through the tap 4, the opposite
    // corner only x[2,2] = 9 through the tap 1, the top edge's second pixel x[0,0]·3 + x[0,1]·4.
    let (got, _) = run_both(&tensors(1), &image);
    assert_eq!(got.len(), 16);
    assert_eq!(got[0], 4.0 * 1.0 + 0.5);
    assert_eq!(got[15], 9.0 + 0.5);
    assert_eq!(got[1], 3.0 * 1.0 + 4.0 * 2.0 + 0.5);
    assert_eq!(got[5], 37.5);
}

#[test]
fn strided_padded_dilated_and_grouped_convolutions_match_the_naive_reference() {
    let cases: Vec<([usize; 3], Spec)> = vec![
        ([1, 7, 6], conv(2, 3, 1, 0, 1, 1, "identity")),
        ([2, 7, 6], conv(3, 3, 2, 0, 1, 1, "identity")),
        ([2, 7, 6], conv(3, 3, 1, 2, 1, 1, "identity")),
        ([2, 9, 8], conv(2, 3, 1, 1, 2, 1, "identity")),
        ([4, 6, 7], conv(6, 3, 1, 1, 1, 2, "identity")),
        ([4, 6, 7], conv(4, 3, 2, 1, 1, 4, "relu")),
        ([3, 8, 9], conv(3, 2, 3, 1, 2, 3, "tanh")),
        (
            [2, 9, 7],
            Spec::Conv {
                out: 4,
                kernel: [3, 2],
                stride: [2, 1],
                padding: [0, 1],
                dilation: [1, 3],
                groups: 2,
                act: "identity",
            },
        ),
        // The kernel exactly covers the padded input: one output pixel.
        ([1, 3, 3], conv(2, 5, 1, 1, 1, 1, "identity")),
        // Padding wider than the kernel's reach: border outputs are the bias alone.
        ([1, 3, 4], conv(1, 2, 1, 3, 1, 1, "identity")),
        // 1×1 input, 1×1 kernel.
        ([5, 1, 1], conv(3, 1, 1, 0, 1, 1, "identity")),
    ];
    for (k, (input, spec)) in cases.into_iter().enumerate() {
        let net = Net::new(input, vec![spec.clone(), Spec::Flatten], 100 + k as u64);
        check(&net, 7 + k as u64, &format!("case {k} {input:?} {spec:?}"));
    }
}

#[test]
fn pooling_matches_the_naive_reference() {
    let pools = [
        ([2, 2], [2, 2], [0, 0]),
        ([3, 3], [2, 2], [1, 1]),
        ([3, 2], [1, 2], [1, 0]),
        ([2, 2], [1, 1], [1, 1]),
    ];
    for (k, &(kernel, stride, padding)) in pools.iter().enumerate() {
        for max in [true, false] {
            let spec = if max {
                Spec::Max {
                    kernel,
                    stride,
                    padding,
                }
            } else {
                Spec::Avg {
                    kernel,
                    stride,
                    padding,
                }
            };
            let net = Net::new([3, 7, 6], vec![spec.clone(), Spec::Flatten], 0);
            check(&net, 40 + k as u64, &format!("{spec:?}"));
        }
    }
}

/// Average pooling counts the padding (PyTorch's `count_include_pad = True`): a 3×3 window at
/// the corner of a padded all-ones image averages 4 ones and 5 zeros.
#[test]
fn average_pooling_counts_padded_zeros() {
    let config = json!({"input": [1, 4, 4], "input_normalization": false, "output": "regression",
        "layers": [{"type": "avgpool", "kernel": 3, "stride": 3, "padding": 1}, {"type": "flatten"}]});
    let bytes = file_of("cnn", Some(&config.to_string()), &[], "F32");
    let (got, _) = run_both(&bytes, &[1.0; 16]);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], 4.0 / 9.0);
    // Window rows 2..5 → 2, 3 (4 is padding): 2×2 ones in the bottom-right.
    assert_eq!(got[3], 4.0 / 9.0);
    // Max pooling of the same: padding never wins, even against negative values.
    let config = json!({"input": [1, 4, 4], "input_normalization": false, "output": "regression",
        "layers": [{"type": "maxpool", "kernel": 3, "stride": 3, "padding": 1}, {"type": "flatten"}]});
    let bytes = file_of("cnn", Some(&config.to_string()), &[], "F32");
    let (got, _) = run_both(&bytes, &[-2.0; 16]);
    assert_eq!(got, [-2.0; 4]);
}

#[test]
fn max_pooling_propagates_nan() {
    let config = json!({"input": [1, 2, 2], "input_normalization": false, "output": "regression",
        "layers": [{"type": "maxpool", "kernel": 2}, {"type": "flatten"}]});
    let bytes = file_of("cnn", Some(&config.to_string()), &[], "F32");
    let cnn = load::<4>(&bytes).unwrap();
    let mut out = [0.0f32];
    let mut scratch = vec![0.0f32; cnn.scratch_len()];
    for nan_at in 0..4 {
        let mut image = [1.0f32, 5.0, 3.0, 2.0];
        image[nan_at] = f32::NAN;
        cnn.forward(&image, &mut out, &mut scratch).unwrap();
        assert!(out[0].is_nan(), "NaN at {nan_at}");
    }
}

#[test]
fn whole_networks_agree_with_the_reference_in_f64_and_f32() {
    let nets = [
        // A digit-sized classifier: conv, pool, grouped conv, average pool, flatten, dense head.
        Net::new(
            [1, 8, 8],
            vec![
                conv(4, 3, 1, 1, 1, 1, "relu"),
                Spec::Max {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                },
                conv(8, 3, 1, 1, 1, 2, "tanh"),
                Spec::Avg {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                },
                Spec::Flatten,
                Spec::Dense {
                    out: 16,
                    act: "relu",
                },
                Spec::Dense {
                    out: 10,
                    act: "identity",
                },
            ],
            1,
        ),
        // Strided convolutions into a global mean.
        Net::new(
            [3, 11, 10],
            vec![
                conv(6, 3, 2, 1, 1, 3, "relu"),
                conv(8, 3, 1, 2, 2, 2, "relu"),
                Spec::GlobalMean,
                Spec::Dense {
                    out: 4,
                    act: "identity",
                },
            ],
            2,
        ),
    ];
    for (k, mut net) in nets.into_iter().enumerate() {
        check(&net, 90 + k as u64, &format!("net {k}"));
        net.norm = Some((0.25, 0.5));
        check(&net, 91 + k as u64, &format!("net {k} normalised"));
    }
}

#[test]
fn the_model_reports_its_shapes_and_predicts_the_largest_logit() {
    let net = Net::new(
        [1, 8, 8],
        vec![
            conv(4, 3, 1, 1, 1, 1, "relu"),
            Spec::Max {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            Spec::GlobalMean,
            Spec::Dense {
                out: 3,
                act: "identity",
            },
        ],
        5,
    );
    let bytes = net.file("F32");
    let cnn = load::<8>(&bytes).unwrap();
    assert_eq!(cnn.input_shape(), [1, 8, 8]);
    assert_eq!(cnn.input_len(), 64);
    assert_eq!(cnn.outputs(), 3);
    assert_eq!(
        cnn.layer_shapes().collect::<Vec<_>>(),
        [[4, 8, 8], [4, 4, 4], [4, 1, 1], [3, 1, 1]]
    );
    // Two buffers of the largest activation (the first conv's 4·8·8).
    assert_eq!(cnn.scratch_len(), 2 * 256);
    assert_eq!(cnn.config().output(), Output::Logits);
    assert!(
        matches!(cnn.config().layers()[0], CnnLayer::Conv(c) if c.activation == Activation::Relu && c.padding == [1, 1])
    );
    assert!(cnn.augerino_widths().is_none());
    let image = Rng(3).vec(64);
    let want = net.reference(&image);
    let best = (0..3).max_by(|&a, &b| want[a].total_cmp(&want[b])).unwrap();
    let mut scratch = vec![0.0f64; cnn.scratch_len()];
    assert_eq!(cnn.predict_class(&image, &mut scratch).unwrap(), best);
}

// ---------------------------------------------------------------------------------------------
// Caller errors

#[test]
fn short_scratch_and_wrong_lengths_are_errors() {
    let net = Net::new(
        [2, 5, 5],
        vec![conv(3, 3, 1, 1, 1, 1, "relu"), Spec::Flatten],
        9,
    );
    let bytes = net.file("F32");
    let cnn = load::<4>(&bytes).unwrap();
    let image = vec![0.5f32; 50];
    let mut out = vec![0.0f32; 75];
    let needed = cnn.scratch_len();
    assert_eq!(needed, 150);
    let mut scratch = vec![0.0f32; needed - 1];
    assert_eq!(
        cnn.forward(&image, &mut out, &mut scratch),
        Err(Error::ScratchTooSmall {
            needed,
            got: needed - 1
        })
    );
    let mut scratch = vec![0.0f32; needed];
    assert_eq!(
        cnn.forward(&image[1..], &mut out, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "image",
            expected: 50,
            got: 49
        })
    );
    assert_eq!(
        cnn.forward(&image, &mut out[1..], &mut scratch),
        Err(Error::ShapeMismatch {
            what: "output",
            expected: 75,
            got: 74
        })
    );
    assert!(cnn.forward(&image, &mut out, &mut scratch).is_ok());
    // predict_class needs logits; this net's are (`Net` writes `logits`), a regression's not.
    let config = json!({"input": [1, 2, 2], "input_normalization": false, "output": "regression",
        "layers": [{"type": "flatten"}]});
    let bytes = file_of("cnn", Some(&config.to_string()), &[], "F32");
    let cnn = load::<2>(&bytes).unwrap();
    assert!(matches!(
        cnn.predict_class(&[0.0f32; 4], &mut [0.0; 8]),
        Err(Error::InvalidConfig { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Bad files

fn small() -> Net {
    Net::new(
        [1, 6, 6],
        vec![
            conv(2, 3, 1, 0, 1, 1, "relu"),
            Spec::Max {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            },
            Spec::Flatten,
            Spec::Dense {
                out: 3,
                act: "identity",
            },
        ],
        11,
    )
}

fn with_config(config: &Value, tensors: &[(String, Vec<usize>, Vec<f64>)]) -> Error {
    load_error(&file_of("cnn", Some(&config.to_string()), tensors, "F32"))
}

fn invalid_config_says(e: Error, words: &str) {
    match e {
        Error::InvalidConfig { what } => assert!(what.contains(words), "{what:?} lacks {words:?}"),
        other => panic!("expected InvalidConfig about {words:?}, got {other:?}"),
    }
}

#[test]
fn another_kind_of_model_is_refused_by_name() {
    let net = small();
    let config = net.config().to_string();
    for (kind, says) in [
        ("mlp", "`mlp`"),
        ("emlp", "`emlp`"),
        ("bma", "`bma`"),
        ("policy", "`policy`"),
    ] {
        let e = load_error(&file_of(kind, Some(&config), &net.tensors(), "F32"));
        invalid_config_says(e, says);
        assert!(e.to_string().contains(&format!("is `{kind}`")), "{e}");
    }
    invalid_config_says(
        load_error(&file_of("toaster", Some(&config), &net.tensors(), "F32")),
        "not `cnn`",
    );
    // No kind at all, and no configuration.
    let mut bytes = file_of("cnn", None, &net.tensors(), "F32");
    invalid_config_says(load_error(&bytes), "no `keel.config`");
    bytes = {
        let header = json!({"layer0.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
            .to_string();
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&1.0f32.to_le_bytes());
        b
    };
    invalid_config_says(load_error(&bytes), "no `keel.kind`");
}

#[test]
fn missing_misshapen_and_extra_tensors_name_their_layer() {
    let net = small();
    let config = net.config();
    let all = net.tensors();
    let without = |name: &str| -> Vec<_> { all.iter().filter(|t| t.0 != name).cloned().collect() };
    assert_eq!(
        with_config(&config, &without("layer3.weight")),
        Error::TensorNotFound {
            role: "weight",
            layer: Some(3)
        }
    );
    assert_eq!(
        with_config(&config, &without("layer0.bias")),
        Error::TensorNotFound {
            role: "bias",
            layer: Some(0)
        }
    );
    let reshaped = |name: &str, shape: Vec<usize>| -> Vec<_> {
        all.iter()
            .map(|t| {
                if t.0 == name {
                    (t.0.clone(), shape.clone(), t.2.clone())
                } else {
                    t.clone()
                }
            })
            .collect()
    };
    // The conv's weight as [2, 1, 9] and as [1, 2, 3, 3] (same element count, wrong layout).
    assert_eq!(
        with_config(&config, &reshaped("layer0.weight", vec![2, 1, 9])),
        Error::TensorShape {
            role: "weight",
            layer: Some(0)
        }
    );
    assert_eq!(
        with_config(&config, &reshaped("layer0.weight", vec![1, 2, 3, 3])),
        Error::TensorShape {
            role: "weight",
            layer: Some(0)
        }
    );
    // The dense layer sees 2·2·2 = 8 inputs, not 24.
    let mut wrong_in = without("layer3.weight");
    wrong_in.push(("layer3.weight".into(), vec![3, 24], vec![0.0; 72]));
    assert_eq!(
        with_config(&config, &wrong_in),
        Error::TensorShape {
            role: "weight",
            layer: Some(3)
        }
    );
    assert_eq!(
        with_config(&config, &reshaped("layer3.bias", vec![1, 3])),
        Error::TensorShape {
            role: "bias",
            layer: Some(3)
        }
    );
    // Weights on a pooling layer; a layer past the last.
    let mut extra = all.clone();
    extra.push(("layer1.weight".into(), vec![1], vec![0.0]));
    assert!(matches!(
        with_config(&config, &extra),
        Error::InvalidLayer { layer: 1, .. }
    ));
    let mut extra = all.clone();
    extra.push(("layer4.bias".into(), vec![1], vec![0.0]));
    invalid_config_says(with_config(&config, &extra), "more layers");
    // Integer weights are not floats.
    let mut bytes = net.file("F32");
    let find = |from: usize, what: &[u8]| {
        from + bytes[from..]
            .windows(what.len())
            .position(|w| w == what)
            .unwrap()
    };
    let at = find(find(0, b"\"layer0.bias\""), b"\"F32\"") + 1;
    bytes[at..at + 3].copy_from_slice(b"I32");
    let e = load_error(&bytes);
    assert!(matches!(e, Error::UnsupportedDtype { .. }), "{e:?}");
}

#[test]
fn layers_that_do_not_fit_their_input_name_the_layer() {
    let base = |layers: Value| json!({"input": [2, 5, 5], "input_normalization": false, "output": "logits", "layers": layers});
    let cases = [
        // A 7-tap kernel over 5 + 2·0 pixels; a dilated 3-tap one spanning 7 over 5 + 2·0.
        (
            json!([{"type": "flatten"}, {"type": "conv", "out": 1, "kernel": 7, "activation": "relu"}]),
            1,
        ),
        (
            json!([{"type": "conv", "out": 1, "kernel": 3, "dilation": 3, "activation": "relu"}]),
            0,
        ),
        // 2 input channels, 3 groups; 4 outputs in 3 groups.
        (
            json!([{"type": "conv", "out": 3, "kernel": 1, "groups": 3, "activation": "relu"}]),
            0,
        ),
        (
            json!([{"type": "flatten"}, {"type": "conv", "out": 4, "kernel": 1, "groups": 3, "activation": "relu"}]),
            1,
        ),
        // A 6-window pool over 5 pixels; pool padding over half the window.
        (json!([{"type": "maxpool", "kernel": 6}]), 0),
        (
            json!([{"type": "global_mean"}, {"type": "avgpool", "kernel": 2, "padding": 2}]),
            1,
        ),
        // Dense on an unflattened input.
        (
            json!([{"type": "dense", "out": 2, "activation": "relu"}]),
            0,
        ),
        // Zero sizes, a foreign key, an unknown type, a missing activation.
        (
            json!([{"type": "conv", "out": 0, "kernel": 1, "activation": "relu"}]),
            0,
        ),
        (
            json!([{"type": "flatten"}, {"type": "conv", "out": 1, "kernel": [1, 0], "activation": "relu"}]),
            1,
        ),
        (
            json!([{"type": "conv", "out": 1, "kernel": 1, "stride": 0, "activation": "relu"}]),
            0,
        ),
        (json!([{"type": "maxpool", "kernel": 2, "dilation": 2}]), 0),
        (json!([{"type": "flatten", "out": 3}]), 0),
        (json!([{"type": "global_mean"}, {"type": "batchnorm"}]), 1),
        (json!([{"type": "conv", "out": 1, "kernel": 1}]), 0),
        (
            json!([{"type": "conv", "out": 1, "kernel": [1, 1, 1], "activation": "relu"}]),
            0,
        ),
        (
            json!([{"type": "conv", "out": 1, "kernel": 1, "activation": "gelu"}]),
            0,
        ),
        (json!([5]), 0),
    ];
    for (layers, at) in cases {
        let e = with_config(&base(layers.clone()), &[]);
        assert!(
            matches!(e, Error::InvalidLayer { layer, .. } if layer == at),
            "{layers}: {e:?}"
        );
    }
    // A kernel that overflows (`dilation·(k − 1)` past usize).
    let e = with_config(
        &base(
            json!([{"type": "conv", "out": 1, "kernel": 3, "dilation": u64::MAX, "activation": "relu"}]),
        ),
        &[],
    );
    assert!(matches!(e, Error::InvalidLayer { layer: 0, .. }), "{e:?}");
}

#[test]
fn invalid_top_level_configurations_are_refused() {
    let net = small();
    let good = net.config();
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good.as_object().unwrap().clone();
        f(&mut c);
        Value::Object(c)
    };
    for key in ["input", "layers", "output", "input_normalization"] {
        invalid_config_says(
            with_config(
                &edit(&|c| {
                    c.remove(key);
                }),
                &net.tensors(),
            ),
            key,
        );
    }
    for input in [
        json!([1, 6]),
        json!([1, 6, 0]),
        json!([1, 6, 6, 1]),
        json!("1x6x6"),
    ] {
        invalid_config_says(
            with_config(
                &edit(&|c| {
                    c.insert("input".into(), input.clone());
                }),
                &net.tensors(),
            ),
            "`input`",
        );
    }
    invalid_config_says(
        with_config(
            &edit(&|c| {
                c.insert("layers".into(), json!([]));
            }),
            &[],
        ),
        "empty",
    );
    invalid_config_says(
        with_config(
            &edit(&|c| {
                c.insert("output".into(), json!("gaussian"));
            }),
            &net.tensors(),
        ),
        "`output`",
    );
    assert!(matches!(
        load_error(&file_of("cnn", Some("[1, 2]"), &[], "F32")),
        Error::InvalidConfig { .. }
    ));
    assert!(matches!(
        load_error(&file_of("cnn", Some("{\"input\": [1,2,"), &[], "F32")),
        Error::InvalidJson { .. }
    ));
    // A key given twice, at the top level and inside a layer.
    let twice = r#"{"input":[1,2,2],"input":[1,2,2],"input_normalization":false,"output":"logits","layers":[{"type":"flatten"}]}"#;
    assert!(matches!(
        load_error(&file_of("cnn", Some(twice), &[], "F32")),
        Error::DuplicateKey { .. }
    ));
    let twice = r#"{"input":[1,2,2],"input_normalization":false,"output":"logits","layers":[{"type":"flatten","type":"flatten"}]}"#;
    assert!(matches!(
        load_error(&file_of("cnn", Some(twice), &[], "F32")),
        Error::DuplicateKey { .. }
    ));
    // More layers than the capacity.
    let long = edit(&|c| {
        c.insert("layers".into(), json!(vec![json!({"type": "flatten"}); 9]));
    });
    assert_eq!(
        with_config(&long, &[]),
        Error::CapacityExceeded {
            what: "layers",
            capacity: 8
        }
    );
    // Unknown keys are ignored; a pair may be one integer.
    let mut tolerant = good.clone();
    tolerant["note"] = json!({"anything": [1, 2]});
    tolerant["layers"][0]["kernel"] = json!(3);
    tolerant["layers"][0]["comment"] = json!("3x3");
    assert!(load::<8>(&file_of(
        "cnn",
        Some(&tolerant.to_string()),
        &net.tensors(),
        "F32"
    ))
    .is_ok());
}

#[test]
fn bad_normalisation_and_augerino_blocks_are_refused() {
    let mut net = small();
    net.norm = Some((0.5, 0.0));
    invalid_config_says(load_error(&net.file("F32")), "`input.std`");
    net.norm = Some((f64::NAN, 1.0));
    invalid_config_says(load_error(&net.file("F32")), "`input.mean`");
    net.norm = Some((0.5, 2.0));
    let without_std: Vec<_> = net
        .tensors()
        .into_iter()
        .filter(|t| t.0 != "input.std")
        .collect();
    assert_eq!(
        with_config(&net.config(), &without_std),
        Error::TensorNotFound {
            role: "input.std",
            layer: None
        }
    );
    let cnn_bytes = net.file("F32");
    assert_eq!(
        load::<8>(&cnn_bytes).unwrap().normalization(),
        Some((0.5, 2.0))
    );

    let mut config = net.config();
    config["augerino"] = json!({"copies": 4});
    let widths = |w: Vec<f64>| {
        let mut t = net.tensors();
        t.push(("augerino.widths".into(), vec![w.len()], w));
        t
    };
    let good = widths(vec![0.1, 0.2, 1.5, 0.0, 0.3, 0.25]);
    let bytes = file_of("cnn", Some(&config.to_string()), &good, "F32");
    let cnn = load::<8>(&bytes).unwrap();
    assert_eq!(cnn.config().augerino_copies(), Some(4));
    let w = cnn.augerino_widths().unwrap();
    assert_eq!(w[2], f64::from(1.5f32));
    assert_eq!(w[4], f64::from(0.3f32));
    assert_eq!(
        with_config(&config, &net.tensors()),
        Error::TensorNotFound {
            role: "augerino.widths",
            layer: None
        }
    );
    assert_eq!(
        with_config(&config, &widths(vec![0.1; 5])),
        Error::TensorShape {
            role: "augerino.widths",
            layer: None
        }
    );
    invalid_config_says(
        with_config(&config, &widths(vec![0.1, 0.1, -0.5, 0.1, 0.1, 0.1])),
        "non-negative",
    );
    for bad in [
        json!({"copies": 0}),
        json!({}),
        json!(3),
        json!({"copies": 2.5}),
    ] {
        config["augerino"] = bad;
        invalid_config_says(with_config(&config, &good), "`augerino`");
    }
    config["augerino"] = Value::Null;
    invalid_config_says(with_config(&config, &good), "no `augerino`");
    assert!(load::<8>(&file_of(
        "cnn",
        Some(&config.to_string()),
        &net.tensors(),
        "F32"
    ))
    .is_ok());
}

#[test]
fn a_truncated_file_is_an_error_not_a_panic() {
    let bytes = small().file("F32");
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let e = load_error(&bytes[..cut]);
        assert!(
            matches!(
                e,
                Error::Truncated { .. }
                    | Error::OffsetsOutOfBounds { .. }
                    | Error::InvalidJson { .. }
            ),
            "cut at {cut}: {e:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Augerino

use keel_core::nn::Augerino;
use keel_core::random::{uniform, Xoshiro256PlusPlus};
use keel_core::vision::{augerino_transform, warp_bilinear};
use rand_core::{Rng as _, TryRng};

/// A generator whose every draw is the same 64 bits (so `uniform` returns one fixed `u`).
struct Constant(u64);

impl TryRng for Constant {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.0 >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        Ok(())
    }
}

/// A 1×5×5 classifier with Augerino widths `widths`, copies 4.
fn augerino_file(widths: [f64; 6]) -> (Net, Vec<u8>) {
    let net = Net::new(
        [1, 5, 5],
        vec![
            conv(3, 3, 1, 1, 1, 1, "tanh"),
            Spec::Flatten,
            Spec::Dense {
                out: 4,
                act: "identity",
            },
        ],
        21,
    );
    let mut config = net.config();
    config["augerino"] = json!({"copies": 4});
    let mut tensors = net.tensors();
    tensors.push(("augerino.widths".into(), vec![6], widths.to_vec()));
    let bytes = file_of("cnn", Some(&config.to_string()), &tensors, "F32");
    (net, bytes)
}

fn log_softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    v.iter().map(|x| x - lse).collect()
}

fn augerino_predict(
    bytes: &[u8],
    image: &[f64],
    copies: usize,
    rng: &mut impl rand_core::Rng,
) -> Vec<f64> {
    let cnn = load::<8>(bytes).unwrap();
    let aug = Augerino::new(&cnn).unwrap();
    let mut out = vec![0.0; cnn.outputs()];
    let mut scratch = vec![0.0; aug.scratch_len()];
    aug.predict(image, copies, rng, &mut out, &mut scratch)
        .unwrap();
    out
}

#[test]
fn zero_widths_give_the_plain_log_softmax_and_use_six_draws_per_copy() {
    let (net, bytes) = augerino_file([0.0; 6]);
    let image = Rng(4).vec(25);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut twin = rng.clone();
    let got = augerino_predict(&bytes, &image, 3, &mut rng);
    assert_close(
        "identity warps",
        &got,
        &log_softmax(&net.reference(&image)),
        1e-12,
    );
    assert!((got.iter().map(|v| v.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
    for _ in 0..18 {
        twin.next_u64();
    }
    assert_eq!(rng.next_u64(), twin.next_u64(), "exactly 6·J draws");
}

#[test]
fn the_average_follows_the_documented_draws() {
    let widths = [0.4, 0.3, 1.3, 0.2, 0.1, 0.25];
    let (net, bytes) = augerino_file(widths);
    let image = Rng(5).vec(25);
    let copies = 5;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut twin = rng.clone();
    let got = augerino_predict(&bytes, &image, copies, &mut rng);
    // Copy by copy, generator by generator: ε = uθ − θ/2 with θ as stored (f32).
    let theta = widths.map(|w| f64::from(w as f32));
    let mut want = vec![0.0; 4];
    let mut copies_seen = Vec::new();
    for _ in 0..copies {
        let eps: [f64; 6] = std::array::from_fn(|i| {
            let u: f64 = uniform(&mut twin);
            u * theta[i] - theta[i] / 2.0
        });
        let t = augerino_transform(&eps).unwrap();
        let mut warped = vec![0.0; 25];
        warp_bilinear(&image, 1, 5, 5, &[t[0], t[1]], &mut warped, 5, 5).unwrap();
        let lp = log_softmax(&net.reference(&warped));
        for (w, l) in want.iter_mut().zip(&lp) {
            *w += l / copies as f64;
        }
        copies_seen.push(lp);
    }
    assert_close("average of log-softmaxes", &got, &want, 1e-12);
    // The copies differ (the widths are not zero), so the average is not any one of them.
    assert!(copies_seen.iter().all(|lp| (lp[0] - got[0]).abs() > 1e-9));
    // Jensen: the averaged log-probabilities' exponentials sum to at most 1.
    assert!(got.iter().map(|v| v.exp()).sum::<f64>() <= 1.0 + 1e-12);
    // f32 agrees with f64 (the same draws rounded to f32).
    let cnn = load::<8>(&bytes).unwrap();
    let aug = Augerino::new(&cnn).unwrap();
    let image32: Vec<f32> = image.iter().map(|&v| v as f32).collect();
    let mut out32 = vec![0.0f32; 4];
    let mut scratch32 = vec![0.0f32; aug.scratch_len()];
    aug.predict(
        &image32,
        copies,
        &mut Xoshiro256PlusPlus::seed_from_u64(11),
        &mut out32,
        &mut scratch32,
    )
    .unwrap();
    let out32: Vec<f64> = out32.into_iter().map(f64::from).collect();
    assert_close("f32", &out32, &got, 1e-4);
    assert_eq!(aug.default_copies(), 4);
    assert_eq!(aug.widths(), theta);
}

/// With every `u = 0` the rotation coefficient is `−θ₂/2`: θ₂ = π turns the picture a quarter
/// turn clockwise, which for a square image is a permutation of the pixels.
#[test]
fn a_rotation_width_of_pi_at_u_zero_is_a_clockwise_quarter_turn() {
    let (net, bytes) = augerino_file([0.0, 0.0, std::f64::consts::PI, 0.0, 0.0, 0.0]);
    let image = Rng(6).vec(25);
    // Clockwise as displayed (rows downwards): out[i][j] = in[n − 1 − j][i].
    let turned: Vec<f64> = (0..25).map(|k| image[(4 - k % 5) * 5 + k / 5]).collect();
    let got = augerino_predict(&bytes, &image, 2, &mut Constant(0));
    assert_close(
        "quarter turn",
        &got,
        &log_softmax(&net.reference(&turned)),
        1e-6,
    );
    let unturned = log_softmax(&net.reference(&image));
    assert!(
        got.iter().zip(&unturned).any(|(a, b)| (a - b).abs() > 1e-3),
        "the turn matters"
    );
}

#[test]
fn augerino_refuses_plain_files_zero_copies_and_short_buffers() {
    let plain = small().file("F32");
    let cnn = load::<8>(&plain).unwrap();
    assert!(matches!(
        Augerino::new(&cnn),
        Err(Error::InvalidConfig { .. })
    ));
    let (_, bytes) = augerino_file([0.1; 6]);
    let cnn = load::<8>(&bytes).unwrap();
    let aug = Augerino::new(&cnn).unwrap();
    assert_eq!(aug.scratch_len(), 25 + 4 + cnn.scratch_len());
    let image = [0.5f32; 25];
    let mut out = [0.0f32; 4];
    let mut scratch = vec![0.0f32; aug.scratch_len()];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    assert_eq!(
        aug.predict(&image, 0, &mut rng, &mut out, &mut scratch),
        Err(Error::InvalidParameter {
            name: "copies",
            value: 0.0
        })
    );
    let needed = aug.scratch_len();
    assert_eq!(
        aug.predict(&image, 2, &mut rng, &mut out, &mut scratch[1..]),
        Err(Error::ScratchTooSmall {
            needed,
            got: needed - 1
        })
    );
    assert!(matches!(
        aug.predict(&image[1..], 2, &mut rng, &mut out, &mut scratch),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        aug.predict(&image, 2, &mut rng, &mut out[1..], &mut scratch),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut big = vec![0.0f32; needed + 4];
    let class = aug.predict_class(&image, 2, &mut rng, &mut big).unwrap();
    assert!(class < 4);
    assert!(matches!(
        aug.predict_class(&image, 2, &mut rng, &mut big[1..]),
        Err(Error::ScratchTooSmall { .. })
    ));
}
