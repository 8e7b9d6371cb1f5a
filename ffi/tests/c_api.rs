//! The C API from C: compiles the programs in `tests/c/` against `include/keel.h` and this
//! build's static library with the system C compiler (`$CC`, else `cc`), with AddressSanitizer
//! and UndefinedBehaviorSanitizer when the compiler has them, and runs them on the firmware's
//! exported models. `bad_input.c` calls every function with bad input and checks each status
//! code; `ntk.c` adapts the sine network to new points, and its numbers are checked here against
//! keel-core's own `NtkAdaptation`, bit for bit.

use std::path::{Path, PathBuf};
use std::process::Command;

/// This build's `libkeel_ffi.a`: cargo builds the library's `staticlib` next to the `rlib` the
/// test links, in `target/<profile>/deps/` (the newest, if several feature sets are cached).
/// `KEEL_FFI_LIB` overrides it.
fn static_lib() -> PathBuf {
    if let Some(p) = std::env::var_os("KEEL_FFI_LIB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    std::fs::read_dir(deps)
        .expect("deps folder readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libkeel_ffi-") && n.ends_with(".a"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .expect("no libkeel_ffi-*.a next to the test: is crate-type staticlib still set?")
}

fn compile(cc: &str, lib: &Path, src: &str, out: &Path, sanitize: bool) -> std::process::Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(cc);
    cmd.args([
        "-std=c11",
        "-D_GNU_SOURCE",
        "-g",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
    ]);
    if sanitize {
        cmd.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
    }
    cmd.arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("tests/c").join(src))
        .arg(lib)
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(out);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"))
}

/// Builds `tests/c/{name}.c` (with sanitizers if the compiler has them), runs it on the
/// firmware's assets, checks it succeeded and printed `N checks, 0 failed` last, and returns its
/// standard output.
fn build_and_run(name: &str) -> String {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let lib = static_lib();
    let src = format!("{name}.c");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("keel-ffi-{name}"));
    let mut built = compile(&cc, &lib, &src, &out, true);
    if !built.status.success() {
        eprintln!(
            "compiling with sanitizers failed, retrying without:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        built = compile(&cc, &lib, &src, &out, false);
    }
    assert!(
        built.status.success(),
        "compiling {src} failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets");
    let run = Command::new(&out)
        .arg(&assets)
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success(),
        "{name} failed ({}):\n{stdout}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("checks, 0 failed"),
        "unexpected summary: {last}"
    );
    stdout
}

#[test]
fn every_function_rejects_bad_input_with_its_code() {
    build_and_run("bad_input");
}

/// A float C printed with `%a` (`0x1.8p+1`, `-0x0p+0`), exactly.
fn hex_float(s: &str) -> f32 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("not %a: {s}"));
    let (mantissa, exp) = s.split_once('p').expect("%a has an exponent");
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut m = u64::from_str_radix(int, 16).expect("hex digits");
    for c in frac.chars() {
        m = m * 16 + u64::from(c.to_digit(16).expect("hex digit"));
    }
    let e: i32 = exp.parse::<i32>().expect("exponent") - 4 * frac.len() as i32;
    // Exact: an f32 printed by %a has at most 24 significant bits, and f64 holds them all.
    let v = m as f64 * 2f64.powi(e);
    (if neg { -v } else { v }) as f32
}

/// `ntk.c` adapts the sine network to 10 points through the C API; rerunning keel-core's
/// `NtkAdaptation` on the points it printed gives the same bits for every mean, variance and
/// the log marginal likelihood (the C API adds checks, not arithmetic).
#[test]
fn ntk_from_c_matches_the_core() {
    use keel_core::io::SafeTensors;
    use keel_core::nn::{Mlp, NtkAdaptation, NtkMemory, PriorMean};

    let stdout = build_and_run("ntk");
    let fields = |tag: &str| -> Vec<Vec<f32>> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(|l| l.split_whitespace().map(hex_float).collect())
            .collect()
    };
    let points = fields("point ");
    let tests = fields("test ");
    let lml = fields("lml ");
    assert_eq!((points.len(), tests.len(), lml.len()), (10, 17, 1));

    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets/ntk-sine.safetensors"),
    )
    .unwrap();
    let st = SafeTensors::<64>::parse(&bytes).unwrap();
    let mlp = Mlp::<8>::from_safetensors(&st).unwrap();
    let mut memory = NtkMemory::<f32, 10, 162>::new();
    let mut ntk = NtkAdaptation::new(&mlp, PriorMean::Network, 0.01, memory.buffers()).unwrap();
    let mut scratch = vec![0.0f32; ntk.scratch_len()];
    let x: Vec<f32> = points.iter().map(|p| p[0]).collect();
    let y: Vec<f32> = points.iter().map(|p| p[1]).collect();
    let network: Vec<f32> = tests
        .iter()
        .map(|t| ntk.predict(&t[..1], &mut scratch).unwrap().mean)
        .collect();
    ntk.adapt(&x, &y, &mut scratch).unwrap();
    let bits = |v: &[f32]| v.iter().map(|a| a.to_bits()).collect::<Vec<_>>();
    for (t, net) in tests.iter().zip(network) {
        let p = ntk.predict(&t[..1], &mut scratch).unwrap();
        assert_eq!(
            bits(&t[1..]),
            bits(&[p.mean, p.var_f, p.var_y, net]),
            "x = {}: C {:?}, core {p:?} (network {net})",
            t[0],
            &t[1..]
        );
    }
    assert_eq!(lml[0][0].to_bits(), ntk.log_marginal_likelihood().to_bits());
}

/// The README's C example is `examples/pendulum.c` verbatim, and it builds and runs as the README
/// says (with this build's library in place of `target/release/libkeel_ffi.a`).
#[test]
fn the_readme_example_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(dir.join("examples/pendulum.c")).unwrap();
    let readme = std::fs::read_to_string(dir.join("../README.md")).unwrap();
    assert!(
        readme.contains(&format!("```c\n{example}```")),
        "README.md's C example differs from ffi/examples/pendulum.c"
    );
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keel-ffi-pendulum");
    let built = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("examples/pendulum.c"))
        .arg(static_lib())
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&out).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "10 s of the 3-pendulum: energy -58.965160 -> -58.965244\n\
         dt = 0: KEEL_STATUS_INVALID_PARAMETER\n\
         state of 11 floats: KEEL_STATUS_SHAPE_MISMATCH\n"
    );
}
