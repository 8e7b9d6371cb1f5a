//! `keel_ntk` through the C API's Rust symbols, against the core's `NtkAdaptation` called
//! directly on the firmware's sine network (`firmware/assets/ntk-sine.safetensors`): the same
//! code path, so every prediction, variance and log marginal likelihood must be bit-identical.
//! Then every status code each function documents.

use std::ptr::{null, null_mut};

use keel_core::io::SafeTensors;
use keel_core::nn::{Mlp, NtkAdaptation, NtkBuffers, PriorMean};
use keel_ffi::model::keel_model_load;
use keel_ffi::ntk::{
    keel_ntk_adapt, keel_ntk_clear, keel_ntk_init, keel_ntk_predict, keel_ntk_predict_mean_jvp,
    keel_ntk_sizes, keel_ntk_stats, keel_ntk_weight_offset, keel_ntk_weight_offset_len,
};
use keel_ffi::{
    KeelModel, KeelNtk, KeelNtkPrior, KeelStatus, KEEL_MODEL_WORDS, KEEL_NTK_MAX_POINTS,
    KEEL_NTK_WORDS,
};

fn asset(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware/assets")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A model handle on the heap (an adaptation borrows it: it must not move).
fn load(bytes: &[u8]) -> Box<KeelModel> {
    let mut m = Box::new(KeelModel {
        opaque: [0; KEEL_MODEL_WORDS],
    });
    // SAFETY: a writable handle; the bytes outlive the handle in every test.
    let s = unsafe { keel_model_load(&mut *m, bytes.as_ptr(), bytes.len()) };
    assert_eq!(s, KeelStatus::Ok);
    m
}

fn handle() -> Box<KeelNtk> {
    Box::new(KeelNtk {
        opaque: [0; KEEL_NTK_WORDS],
    })
}

/// Ten points of a sine task unlike the one the network was trained on, and test inputs.
fn task() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..10).map(|i| -4.5 + i as f32).collect();
    let y = x.iter().map(|&x| 1.7 * (1.3 * x + 0.4).sin()).collect();
    let test = (0..17).map(|i| -5.0 + 0.625 * i as f32).collect();
    (x, y, test)
}

/// `(sizes, memory, scratch)` for an adaptation of capacity `n`.
fn sized(model: &KeelModel, n: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut mem, mut scr) = (0usize, 0usize);
    // SAFETY: a loaded handle and writable outputs.
    let s = unsafe { keel_ntk_sizes(model, n, &mut mem, &mut scr) };
    assert_eq!(s, KeelStatus::Ok);
    (vec![0.0; mem], vec![0.0; scr])
}

fn predict(ntk: &KeelNtk, x: f32, scratch: &mut [f32]) -> (KeelStatus, [f32; 3]) {
    let mut p = [f32::NAN; 3];
    let [m, vf, vy] = &mut p;
    // SAFETY: an initialised handle, valid input, scratch and outputs.
    let s = unsafe { keel_ntk_predict(ntk, &x, 1, scratch.as_mut_ptr(), scratch.len(), m, vf, vy) };
    (s, p)
}

fn stats(ntk: &KeelNtk) -> (KeelStatus, f32, usize, usize) {
    let (mut lml, mut n, mut cap) = (f32::NAN, usize::MAX, usize::MAX);
    // SAFETY: valid outputs.
    let s = unsafe { keel_ntk_stats(ntk, &mut lml, &mut n, &mut cap) };
    (s, lml, n, cap)
}

#[test]
fn predictions_are_the_cores_bit_for_bit() {
    let bytes = asset("ntk-sine.safetensors");
    let model = load(&bytes);
    let st = SafeTensors::<64>::parse(&bytes).unwrap();
    let mlp = Mlp::<8>::from_safetensors(&st).unwrap();
    let (x, y, test) = task();
    for (prior, mean) in [
        (KeelNtkPrior::Zero, PriorMean::Zero),
        (KeelNtkPrior::Network, PriorMean::Network),
    ] {
        for capacity in [10, KEEL_NTK_MAX_POINTS] {
            let (mut mem, mut scr) = sized(&model, capacity);
            let r = mlp.gradient_factors_len();
            assert_eq!(r, 162);
            assert_eq!(mem.len(), capacity * r + capacity * capacity + capacity);
            let mut ntk = handle();
            // SAFETY: valid handle, model and memory, which outlive `ntk`'s use.
            let s = unsafe {
                keel_ntk_init(
                    &mut *ntk,
                    &*model,
                    prior as i32,
                    0.01,
                    mem.as_mut_ptr(),
                    mem.len(),
                )
            };
            assert_eq!(s, KeelStatus::Ok);

            let mut core_mem = vec![0.0f32; mem.len()];
            let (factors, rest) = core_mem.split_at_mut(capacity * r);
            let (factor, z) = rest.split_at_mut(capacity * capacity);
            let buf = NtkBuffers { factors, factor, z };
            let mut core = NtkAdaptation::new(&mlp, mean, 0.01f32, buf).unwrap();
            assert_eq!(core.scratch_len(), scr.len());
            let mut core_scr = vec![0.0f32; scr.len()];

            let same = |ffi: &KeelNtk, core: &NtkAdaptation<'_, f32, 8>, scr: &mut [f32]| {
                let mut cs = vec![0.0f32; scr.len()];
                for &t in &test {
                    let (s, [m, vf, vy]) = predict(ffi, t, scr);
                    assert_eq!(s, KeelStatus::Ok);
                    let p = core.predict(&[t], &mut cs).unwrap();
                    assert_eq!(
                        [m.to_bits(), vf.to_bits(), vy.to_bits()],
                        [p.mean.to_bits(), p.var_f.to_bits(), p.var_y.to_bits()],
                        "x = {t}: C API {m} {vf} {vy}, core {p:?}"
                    );
                }
                let (s, lml, n, cap) = stats(ffi);
                assert_eq!(s, KeelStatus::Ok);
                assert_eq!(lml.to_bits(), core.log_marginal_likelihood().to_bits());
                assert_eq!((n, cap), (core.len(), capacity));
            };
            // The prior, then the adapted posterior.
            same(&ntk, &core, &mut scr);
            // SAFETY: valid buffers of the stated lengths.
            let s = unsafe {
                keel_ntk_adapt(
                    &mut *ntk,
                    x.as_ptr(),
                    x.len(),
                    y.as_ptr(),
                    y.len(),
                    scr.as_mut_ptr(),
                    scr.len(),
                )
            };
            assert_eq!(s, KeelStatus::Ok);
            core.adapt(&x, &y, &mut core_scr).unwrap();
            same(&ntk, &core, &mut scr);
            // The weight offset and the forward-mode means along it.
            let mut p = 0usize;
            // SAFETY: an initialised handle and a writable output.
            assert_eq!(
                unsafe { keel_ntk_weight_offset_len(&*ntk, &mut p) },
                KeelStatus::Ok
            );
            assert_eq!(p, mlp.parameter_count());
            let (mut u, mut core_u) = (vec![f32::NAN; p], vec![0.0f32; p]);
            // SAFETY: valid buffers of the stated lengths.
            let s = unsafe {
                keel_ntk_weight_offset(&*ntk, u.as_mut_ptr(), p, scr.as_mut_ptr(), scr.len())
            };
            assert_eq!(s, KeelStatus::Ok);
            core.weight_offset(&mut core_u, &mut core_scr).unwrap();
            assert!(u
                .iter()
                .zip(&core_u)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            for &t in &test {
                let mut m = f32::NAN;
                // SAFETY: valid buffers of the stated lengths.
                let s = unsafe {
                    keel_ntk_predict_mean_jvp(
                        &*ntk,
                        &t,
                        1,
                        u.as_ptr(),
                        p,
                        scr.as_mut_ptr(),
                        scr.len(),
                        &mut m,
                    )
                };
                assert_eq!(s, KeelStatus::Ok);
                let c = core.predict_mean_jvp(&[t], &core_u, &mut core_scr).unwrap();
                assert_eq!(m.to_bits(), c.to_bits(), "x = {t}: {m} vs {c}");
                let (_, [mean, ..]) = predict(&ntk, t, &mut scr);
                assert!(
                    (m - mean).abs() <= 1e-4 * (1.0 + mean.abs()),
                    "{m} vs {mean}"
                );
            }
            // The adaptation fits its points: within a few noise deviations.
            for (&xi, &yi) in x.iter().zip(&y) {
                let (_, [m, vf, vy]) = predict(&ntk, xi, &mut scr);
                assert!((m - yi).abs() < 0.3, "x = {xi}: {m} vs {yi}");
                assert!(vf >= 0.0 && vy >= vf);
            }
            // SAFETY: an initialised handle.
            assert_eq!(unsafe { keel_ntk_clear(&mut *ntk) }, KeelStatus::Ok);
            core.clear();
            same(&ntk, &core, &mut scr);
        }
    }
}

/// A buffer of `n` floats starting one byte into a float (misaligned).
fn skewed(v: &mut [f32]) -> *mut f32 {
    v.as_mut_ptr().cast::<u8>().wrapping_add(1).cast()
}

#[test]
fn sizes_and_init_refuse_bad_input() {
    let bytes = asset("ntk-sine.safetensors");
    let model = load(&bytes);
    let (mut mem, _) = sized(&model, 10);
    assert_eq!(mem.len(), 10 * 162 + 100 + 10);
    let (mut ml, mut sl) = (0usize, 0usize);
    let unloaded = Box::new(KeelModel {
        opaque: [0; KEEL_MODEL_WORDS],
    });
    // SAFETY (all calls below): every pointer is null, misaligned or valid for its length; the
    // API checks the first two.
    unsafe {
        assert_eq!(
            keel_ntk_sizes(null(), 10, &mut ml, &mut sl),
            KeelStatus::NullPointer
        );
        assert_eq!(
            keel_ntk_sizes(&*model, 10, null_mut(), &mut sl),
            KeelStatus::NullPointer
        );
        assert_eq!(
            keel_ntk_sizes(&*model, 10, &mut ml, null_mut()),
            KeelStatus::NullPointer
        );
        assert_eq!(
            keel_ntk_sizes(&*unloaded, 10, &mut ml, &mut sl),
            KeelStatus::InvalidHandle
        );
        let off = (&*model as *const KeelModel).cast::<u8>().wrapping_add(4);
        assert_eq!(
            keel_ntk_sizes(off.cast(), 10, &mut ml, &mut sl),
            KeelStatus::Misaligned
        );
        for n in [0, KEEL_NTK_MAX_POINTS + 1, usize::MAX] {
            assert_eq!(
                keel_ntk_sizes(&*model, n, &mut ml, &mut sl),
                KeelStatus::UnsupportedSize
            );
        }
        assert_eq!(keel_ntk_sizes(&*model, 1, &mut ml, &mut sl), KeelStatus::Ok);
        assert_eq!((ml, sl), (162 + 1 + 1, 162 + 40 + 1));
        assert_eq!(
            keel_ntk_sizes(&*model, 32, &mut ml, &mut sl),
            KeelStatus::Ok
        );
        assert_eq!((ml, sl), (32 * 162 + 32 * 32 + 32, 234));

        let mut ntk = handle();
        let init = |ntk: *mut KeelNtk, model: *const KeelModel, prior, noise, m: *mut f32, len| {
            keel_ntk_init(ntk, model, prior, noise, m, len)
        };
        let (p, len) = (mem.as_mut_ptr(), mem.len());
        assert_eq!(
            init(null_mut(), &*model, 1, 0.01, p, len),
            KeelStatus::NullPointer
        );
        let off = (&mut *ntk as *mut KeelNtk).cast::<u8>().wrapping_add(4);
        assert_eq!(
            init(off.cast(), &*model, 1, 0.01, p, len),
            KeelStatus::Misaligned
        );
        assert_eq!(
            init(&mut *ntk, null(), 1, 0.01, p, len),
            KeelStatus::NullPointer
        );
        assert_eq!(
            init(&mut *ntk, &*unloaded, 1, 0.01, p, len),
            KeelStatus::InvalidHandle
        );
        assert_eq!(
            init(&mut *ntk, &*model, 1, 0.01, null_mut(), len),
            KeelStatus::NullPointer
        );
        assert_eq!(
            init(&mut *ntk, &*model, 1, 0.01, skewed(&mut mem), len - 1),
            KeelStatus::Misaligned
        );
        for bad in [0, len - 1, len + 1, 33 * 162 + 33 * 33 + 33] {
            assert_eq!(
                init(&mut *ntk, &*model, 1, 0.01, p, bad),
                KeelStatus::CountMismatch,
                "memory_len {bad}"
            );
        }
        assert_eq!(
            init(&mut *ntk, &*model, 1, 0.01, p, usize::MAX),
            KeelStatus::InvalidArgument
        );
        for prior in [-1, 2, i32::MAX] {
            assert_eq!(
                init(&mut *ntk, &*model, prior, 0.01, p, len),
                KeelStatus::InvalidArgument
            );
        }
        assert_eq!(
            init(&mut *ntk, &*model, 1, f32::NAN, p, len),
            KeelStatus::InvalidArgument
        );
        for noise in [0.0, -0.0, -1.0, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(
                init(&mut *ntk, &*model, 1, noise, p, len),
                KeelStatus::InvalidParameter,
                "noise {noise}"
            );
        }

        // Other kinds: a classifier MLP (not a regression head), an EMLP, a policy.
        let digits = asset("digits-mlp.safetensors");
        let classifier = load(&digits);
        let (dl, _) = sized(&classifier, 4);
        let mut dmem = vec![0.0f32; dl.len()];
        assert_eq!(
            init(
                &mut *ntk,
                &*classifier,
                1,
                0.01,
                dmem.as_mut_ptr(),
                dmem.len()
            ),
            KeelStatus::InvalidConfig
        );
        for other in ["emlp-o5.safetensors", "pendulum-policy.safetensors"] {
            let b = asset(other);
            let m = load(&b);
            assert_eq!(
                keel_ntk_sizes(&*m, 10, &mut ml, &mut sl),
                KeelStatus::WrongKind
            );
            assert_eq!(
                init(&mut *ntk, &*m, 1, 0.01, p, len),
                KeelStatus::WrongKind,
                "{other}"
            );
        }
        // A CNN never makes a model handle of the C API.
        let cnn = asset("cnn-digit.safetensors");
        let mut m = Box::new(KeelModel {
            opaque: [0; KEEL_MODEL_WORDS],
        });
        assert_ne!(
            keel_model_load(&mut *m, cnn.as_ptr(), cnn.len()),
            KeelStatus::Ok
        );
        assert_eq!(
            init(&mut *ntk, &*m, 1, 0.01, p, len),
            KeelStatus::InvalidHandle
        );

        // A failed init leaves the handle invalid, even after a successful one.
        assert_eq!(init(&mut *ntk, &*model, 1, 0.01, p, len), KeelStatus::Ok);
        assert_eq!(
            init(&mut *ntk, &*model, 1, -1.0, p, len),
            KeelStatus::InvalidParameter
        );
        assert_eq!(stats(&ntk).0, KeelStatus::InvalidHandle);
        assert_eq!(keel_ntk_clear(&mut *ntk), KeelStatus::InvalidHandle);
    }
}

#[test]
fn adapt_predict_and_stats_refuse_bad_input() {
    let bytes = asset("ntk-sine.safetensors");
    let model = load(&bytes);
    let (mut mem, mut scr) = sized(&model, 10);
    let (x, y, _) = task();
    let mut ntk = handle();
    let zeroed = handle();
    let adapt = |ntk: *mut KeelNtk,
                 x: *const f32,
                 xl: usize,
                 y: *const f32,
                 n: usize,
                 s: *mut f32,
                 sl: usize| {
        // SAFETY: every pointer is null, misaligned or valid for its length.
        unsafe { keel_ntk_adapt(ntk, x, xl, y, n, s, sl) }
    };
    // SAFETY: `nt` below points to the live handle.
    let count = |ntk: *const KeelNtk| stats(unsafe { &*ntk }).2;
    // SAFETY (all blocks below): as above.
    unsafe {
        assert_eq!(
            keel_ntk_init(&mut *ntk, &*model, 1, 0.01, mem.as_mut_ptr(), mem.len()),
            KeelStatus::Ok
        );
    }
    let (xp, yp, sp, sl) = (x.as_ptr(), y.as_ptr(), scr.as_mut_ptr(), scr.len());
    let good = |ntk: *mut KeelNtk| {
        assert_eq!(adapt(ntk, xp, 10, yp, 10, sp, sl), KeelStatus::Ok);
        assert_eq!(count(ntk), 10);
    };
    let nt: *mut KeelNtk = &mut *ntk;
    assert_eq!(
        adapt(null_mut(), xp, 10, yp, 10, sp, sl),
        KeelStatus::NullPointer
    );
    let z: *const KeelNtk = &*zeroed;
    assert_eq!(
        adapt(z.cast_mut(), xp, 10, yp, 10, sp, sl),
        KeelStatus::InvalidHandle
    );
    // Each refusal forgets the points.
    let cases: &[(
        KeelStatus,
        *const f32,
        usize,
        *const f32,
        usize,
        *mut f32,
        usize,
    )] = &[
        (KeelStatus::NullPointer, null(), 10, yp, 10, sp, sl),
        (KeelStatus::NullPointer, xp, 10, null(), 10, sp, sl),
        (KeelStatus::NullPointer, xp, 10, yp, 10, null_mut(), sl),
        (KeelStatus::ShapeMismatch, xp, 9, yp, 10, sp, sl),
        (KeelStatus::ShapeMismatch, xp, 10, yp, 9, sp, sl),
        (KeelStatus::ScratchTooSmall, xp, 10, yp, 10, sp, sl - 1),
        (KeelStatus::InvalidArgument, xp, usize::MAX, yp, 10, sp, sl),
        (
            KeelStatus::BufferOverlap,
            sp.cast_const(),
            10,
            yp,
            10,
            sp,
            sl,
        ),
    ];
    for (i, &(want, x, xl, y, n, s, sl)) in cases.iter().enumerate() {
        good(nt);
        assert_eq!(adapt(nt, x, xl, y, n, s, sl), want, "case {i}");
        assert_eq!(count(nt), 0, "case {i}");
    }
    // Misaligned inputs and scratch.
    let mut buf = vec![0.0f32; 64];
    let sk = skewed(&mut buf);
    assert_eq!(adapt(nt, sk, 10, yp, 10, sp, sl), KeelStatus::Misaligned);
    assert_eq!(adapt(nt, xp, 10, sk, 10, sp, sl), KeelStatus::Misaligned);
    assert_eq!(adapt(nt, xp, 10, yp, 10, sk, 20), KeelStatus::Misaligned);
    // Scratch, x or y inside the adaptation's memory.
    let mp = mem.as_mut_ptr();
    assert_eq!(adapt(nt, xp, 10, yp, 10, mp, sl), KeelStatus::BufferOverlap);
    assert_eq!(adapt(nt, mp, 10, yp, 10, sp, sl), KeelStatus::BufferOverlap);
    assert_eq!(adapt(nt, xp, 10, mp, 10, sp, sl), KeelStatus::BufferOverlap);
    // NaN and infinite values.
    let mut bad = x.clone();
    bad[3] = f32::NAN;
    good(nt);
    assert_eq!(
        adapt(nt, bad.as_ptr(), 10, yp, 10, sp, sl),
        KeelStatus::InvalidArgument
    );
    assert_eq!(count(nt), 0);
    assert_eq!(
        adapt(nt, xp, 10, bad.as_ptr(), 10, sp, sl),
        KeelStatus::InvalidArgument
    );
    bad[3] = f32::INFINITY;
    assert_eq!(
        adapt(nt, bad.as_ptr(), 10, yp, 10, sp, sl),
        KeelStatus::NonFinite
    );
    assert_eq!(
        adapt(nt, xp, 10, bad.as_ptr(), 10, sp, sl),
        KeelStatus::NonFinite
    );
    // More points than the capacity (10 here).
    let many: Vec<f32> = (0..11).map(|i| i as f32 * 0.3).collect();
    assert_eq!(
        adapt(nt, many.as_ptr(), 11, many.as_ptr(), 11, sp, sl),
        KeelStatus::CapacityExceeded
    );
    // No points is allowed: back to the prior.
    good(nt);
    assert_eq!(adapt(nt, xp, 0, yp, 0, sp, sl), KeelStatus::Ok);
    assert_eq!(count(nt), 0);

    // predict
    good(nt);
    let (mut m, mut vf, mut vy) = (0.0f32, 0.0f32, 0.0f32);
    // One input; the second value is there so that the wrong-length calls below (length 2) stay
    // inside the array: they must fail on the length, not read past it into a neighbour (which
    // the overlap check would then report first, depending on the stack's layout).
    let x0 = [0.3f32, 0.0];
    let pr = |ntk: *const KeelNtk,
              x: *const f32,
              xl: usize,
              s: *mut f32,
              sl: usize,
              m: *mut f32,
              vf: *mut f32,
              vy: *mut f32| {
        // SAFETY: every pointer is null, misaligned or valid for its length.
        unsafe { keel_ntk_predict(ntk, x, xl, s, sl, m, vf, vy) }
    };
    let (pm, pf, py) = (&mut m as *mut f32, &mut vf as *mut f32, &mut vy as *mut f32);
    let x0p = x0.as_ptr();
    assert_eq!(
        pr(null(), x0p, 1, sp, sl, pm, pf, py),
        KeelStatus::NullPointer
    );
    assert_eq!(pr(z, x0p, 1, sp, sl, pm, pf, py), KeelStatus::InvalidHandle);
    assert_eq!(
        pr(nt, null(), 1, sp, sl, pm, pf, py),
        KeelStatus::NullPointer
    );
    assert_eq!(
        pr(nt, x0p, 1, null_mut(), sl, pm, pf, py),
        KeelStatus::NullPointer
    );
    assert_eq!(
        pr(nt, x0p, 2, sp, sl, pm, pf, py),
        KeelStatus::ShapeMismatch
    );
    assert_eq!(
        pr(nt, x0p, 0, sp, sl, pm, pf, py),
        KeelStatus::ShapeMismatch
    );
    assert_eq!(
        pr(nt, x0p, 1, sp, sl - 1, pm, pf, py),
        KeelStatus::ScratchTooSmall
    );
    assert_eq!(pr(nt, sk, 1, sp, sl, pm, pf, py), KeelStatus::Misaligned);
    assert_eq!(pr(nt, x0p, 1, sk, 20, pm, pf, py), KeelStatus::Misaligned);
    assert_eq!(
        pr(nt, [f32::NAN].as_ptr(), 1, sp, sl, pm, pf, py),
        KeelStatus::InvalidArgument
    );
    assert_eq!(
        pr(nt, [f32::INFINITY].as_ptr(), 1, sp, sl, pm, pf, py),
        KeelStatus::NonFinite
    );
    assert_eq!(
        pr(nt, x0p, 1, mp, sl, pm, pf, py),
        KeelStatus::BufferOverlap
    );
    assert_eq!(pr(nt, mp, 1, sp, sl, pm, pf, py), KeelStatus::BufferOverlap);
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, sp.wrapping_add(3), pf, py),
        KeelStatus::BufferOverlap
    );
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, pm, mp.wrapping_add(3), py),
        KeelStatus::BufferOverlap
    );
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, pm, pf, x0p.cast_mut()),
        KeelStatus::BufferOverlap
    );
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, pm, pf, skewed(&mut buf)),
        KeelStatus::Misaligned
    );
    // Predictions don't forget the points; outputs may be skipped.
    assert_eq!(count(nt), 10);
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, null_mut(), null_mut(), null_mut()),
        KeelStatus::Ok
    );
    assert_eq!(pr(nt, x0p, 1, sp, sl, pm, null_mut(), py), KeelStatus::Ok);
    assert!(m.is_finite() && vy > 0.0);

    // The weight offset and forward-mode means.
    let mut p = 0usize;
    // SAFETY (all calls below): every pointer is null, misaligned or valid for its length.
    unsafe {
        assert_eq!(
            keel_ntk_weight_offset_len(null(), &mut p),
            KeelStatus::NullPointer
        );
        assert_eq!(
            keel_ntk_weight_offset_len(z, &mut p),
            KeelStatus::InvalidHandle
        );
        assert_eq!(
            keel_ntk_weight_offset_len(nt, null_mut()),
            KeelStatus::NullPointer
        );
        assert_eq!(keel_ntk_weight_offset_len(nt, &mut p), KeelStatus::Ok);
        assert_eq!(p, 1761);
        let mut u = vec![0.0f32; p];
        let up = u.as_mut_ptr();
        let wo = |n: *const KeelNtk, u: *mut f32, ul: usize, s: *mut f32, sl: usize| {
            keel_ntk_weight_offset(n, u, ul, s, sl)
        };
        assert_eq!(wo(null(), up, p, sp, sl), KeelStatus::NullPointer);
        assert_eq!(wo(z, up, p, sp, sl), KeelStatus::InvalidHandle);
        assert_eq!(wo(nt, null_mut(), p, sp, sl), KeelStatus::NullPointer);
        assert_eq!(wo(nt, up, p, null_mut(), sl), KeelStatus::NullPointer);
        assert_eq!(wo(nt, up, p - 1, sp, sl), KeelStatus::ShapeMismatch);
        assert_eq!(wo(nt, up, p, sp, sl - 1), KeelStatus::ScratchTooSmall);
        assert_eq!(
            wo(nt, up, p, up.wrapping_add(5), sl),
            KeelStatus::BufferOverlap
        );
        assert_eq!(wo(nt, mp, 20, sp, sl), KeelStatus::BufferOverlap);
        assert_eq!(wo(nt, up, p, mp, sl), KeelStatus::BufferOverlap);
        assert_eq!(wo(nt, skewed(&mut buf), 20, sp, sl), KeelStatus::Misaligned);
        assert_eq!(wo(nt, up, p, sp, sl), KeelStatus::Ok);
        let upc = up.cast_const();
        let jvp =
            |n: *const KeelNtk,
             x: *const f32,
             xl: usize,
             u: *const f32,
             ul: usize,
             s: *mut f32,
             sl: usize,
             m: *mut f32| { keel_ntk_predict_mean_jvp(n, x, xl, u, ul, s, sl, m) };
        assert_eq!(
            jvp(null(), x0p, 1, upc, p, sp, sl, pm),
            KeelStatus::NullPointer
        );
        assert_eq!(
            jvp(z, x0p, 1, upc, p, sp, sl, pm),
            KeelStatus::InvalidHandle
        );
        assert_eq!(
            jvp(nt, null(), 1, upc, p, sp, sl, pm),
            KeelStatus::NullPointer
        );
        assert_eq!(
            jvp(nt, x0p, 1, null(), p, sp, sl, pm),
            KeelStatus::NullPointer
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, null_mut(), sl, pm),
            KeelStatus::NullPointer
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, sp, sl, null_mut()),
            KeelStatus::NullPointer
        );
        assert_eq!(
            jvp(nt, x0p, 2, upc, p, sp, sl, pm),
            KeelStatus::ShapeMismatch
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p - 1, sp, sl, pm),
            KeelStatus::ShapeMismatch
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, sp, 159, pm),
            KeelStatus::ScratchTooSmall
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, up, sl, pm),
            KeelStatus::BufferOverlap
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, sp, sl, up.wrapping_add(1)),
            KeelStatus::BufferOverlap
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, sp, sl, sp),
            KeelStatus::BufferOverlap
        );
        assert_eq!(
            jvp(nt, x0p, 1, upc, p, mp, sl, pm),
            KeelStatus::BufferOverlap
        );
        assert_eq!(
            jvp(nt, mp, 1, upc, p, sp, sl, pm),
            KeelStatus::BufferOverlap
        );
        assert_eq!(
            jvp(nt, [f32::NAN].as_ptr(), 1, upc, p, sp, sl, pm),
            KeelStatus::InvalidArgument
        );
        assert_eq!(
            jvp(nt, [f32::INFINITY].as_ptr(), 1, upc, p, sp, sl, pm),
            KeelStatus::NonFinite
        );
        // `u` is not scanned; a NaN in it makes the mean NaN, which is refused.
        u[7] = f32::NAN;
        assert_eq!(
            jvp(nt, x0p, 1, u.as_ptr(), p, sp, sl, pm),
            KeelStatus::NonFinite
        );
        u[7] = 0.0;
        assert_eq!(jvp(nt, x0p, 1, u.as_ptr(), p, sp, sl, pm), KeelStatus::Ok);
    }

    // stats
    // SAFETY: null and valid pointers.
    unsafe {
        let mut l = 0.0f32;
        let mut c = 0usize;
        assert_eq!(
            keel_ntk_stats(null(), &mut l, &mut c, &mut c),
            KeelStatus::NullPointer
        );
        assert_eq!(
            keel_ntk_stats(z, &mut l, &mut c, &mut c),
            KeelStatus::InvalidHandle
        );
        assert_eq!(
            keel_ntk_stats(nt, null_mut(), null_mut(), null_mut()),
            KeelStatus::Ok
        );
        assert_eq!(keel_ntk_clear(null_mut()), KeelStatus::NullPointer);
        assert_eq!(keel_ntk_clear(z.cast_mut()), KeelStatus::InvalidHandle);
    }
    let (s, lml, n, cap) = stats(unsafe { &*nt });
    assert_eq!((s, n, cap), (KeelStatus::Ok, 10, 10));
    assert!(lml.is_finite());

    // A model handle reloaded with another kind, or cleared by a failed load, is noticed.
    let mut model = model;
    let policy = asset("pendulum-policy.safetensors");
    // SAFETY: a writable handle and valid bytes.
    unsafe {
        assert_eq!(
            keel_model_load(&mut *model, policy.as_ptr(), policy.len()),
            KeelStatus::Ok
        );
    }
    assert_eq!(stats(unsafe { &*nt }).0, KeelStatus::InvalidHandle);
    assert_eq!(
        pr(nt, x0p, 1, sp, sl, pm, pf, py),
        KeelStatus::InvalidHandle
    );
    assert_eq!(adapt(nt, xp, 10, yp, 10, sp, sl), KeelStatus::InvalidHandle);
    // SAFETY: as above (a file cut short: the load fails and invalidates the handle).
    unsafe {
        assert_ne!(
            keel_model_load(&mut *model, bytes.as_ptr(), 10),
            KeelStatus::Ok
        );
    }
    assert_eq!(stats(unsafe { &*nt }).0, KeelStatus::InvalidHandle);
    // Reloaded with the same file: usable again.
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            keel_model_load(&mut *model, bytes.as_ptr(), bytes.len()),
            KeelStatus::Ok
        );
    }
    assert_eq!(stats(unsafe { &*nt }).0, KeelStatus::Ok);
    drop(scr);
}
