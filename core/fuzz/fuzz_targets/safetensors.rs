//! Arbitrary bytes through the safetensors reader and, when they parse, through every tensor
//! read, the metadata, `Mlp::from_safetensors` and an evaluation (forward, class, gradient).
//! Any panic, out-of-bounds access or overflow (debug assertions are on) is a finding.

#![no_main]

use keel_core::io::SafeTensors;
use keel_core::nn::Mlp;
use libfuzzer_sys::fuzz_target;

/// Skip evaluating networks whose scratch would be large (they are valid, just slow to fuzz).
const MAX_SCRATCH: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(st) = SafeTensors::<'_, 16>::parse(data) else {
        return;
    };
    for (name, view) in st.tensors() {
        let _ = name.chars().count();
        let _ = name.bytes().count();
        assert_eq!(view.len() * view.dtype().size(), view.data().len());
        for i in 0..view.len() {
            let _ = view.element_bytes(i).expect("in range");
            let _ = view.get_f64(i);
            let _ = view.get::<f32>(i);
        }
        assert!(view.element_bytes(view.len()).is_err());
    }
    for (key, value) in st.metadata_entries() {
        let _ = (key.chars().count(), value.chars().count(), key == value);
    }
    let _ = st.metadata("keel.kind");

    let Ok(mlp) = Mlp::<'_, 8>::from_safetensors(&st) else {
        return;
    };
    if mlp.scratch_len() > MAX_SCRATCH {
        return;
    }
    let x = vec![0.0f32; mlp.inputs()];
    let mut out = vec![0.0f32; mlp.outputs()];
    let mut scratch = vec![0.0f32; mlp.scratch_len()];
    mlp.forward(&x, &mut out, &mut scratch)
        .expect("shapes are right");
    let _ = mlp.predict_class(&x, &mut scratch);
    let cotangent = vec![1.0f32; mlp.outputs()];
    let mut grad = vec![0.0f32; mlp.inputs()];
    mlp.input_gradient(&x, &cotangent, &mut grad, &mut scratch)
        .expect("shapes are right");
    // Wrong shapes are errors, not panics.
    assert!(mlp.forward(&x, &mut out, &mut scratch[..1]).is_err());
    assert!(mlp.forward(&out, &mut grad, &mut scratch).is_err() || mlp.inputs() == mlp.outputs());
    let x64 = vec![0.5f64; mlp.inputs()];
    let mut out64 = vec![0.0f64; mlp.outputs()];
    let mut scratch64 = vec![0.0f64; mlp.forward_scratch_len()];
    mlp.forward(&x64, &mut out64, &mut scratch64)
        .expect("shapes are right");
});
