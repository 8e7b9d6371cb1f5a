//! The C API from C: compiles `tests/c/bad_input.c` against `include/keel.h` and this build's
//! static library with the system C compiler (`$CC`, else `cc`), with AddressSanitizer and
//! UndefinedBehaviorSanitizer when the compiler has them, and runs it on the firmware's
//! exported models. It calls every function with bad input and checks each status code.

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

fn compile(cc: &str, lib: &Path, out: &Path, sanitize: bool) -> std::process::Output {
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
        .arg(dir.join("tests/c/bad_input.c"))
        .arg(lib)
        .args(["-lm", "-lpthread", "-ldl", "-o"])
        .arg(out);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"))
}

#[test]
fn every_function_rejects_bad_input_with_its_code() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let lib = static_lib();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keel-ffi-bad-input");
    let mut built = compile(&cc, &lib, &out, true);
    if !built.status.success() {
        eprintln!(
            "compiling with sanitizers failed, retrying without:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        built = compile(&cc, &lib, &out, false);
    }
    assert!(
        built.status.success(),
        "compiling bad_input.c failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/assets");
    let run = Command::new(&out)
        .arg(&assets)
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .output()
        .expect("run bad_input");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "bad_input failed ({}):\n{stdout}{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("checks, 0 failed"),
        "unexpected summary: {last}"
    );
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
        "10 s of the 3-pendulum: energy -58.965160 -> -58.965275\n\
         dt = 0: KEEL_STATUS_INVALID_PARAMETER\n\
         state of 11 floats: KEEL_STATUS_SHAPE_MISMATCH\n"
    );
}
