//! Compiles every kernel source `../*.cu` as C++20 with the CUDA emulation header force-included
//! (plus `kernels.hpp`, the kernel contract, so a signature that drifts from it does not
//! compile), and `launch.cpp`, the `emu_<kernel>` entry points, into one static library.

use std::path::{Path, PathBuf};

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let kernels_dir = here.parent().expect("cuda/emu sits in cuda/").to_path_buf();
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kernels_dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    assert!(
        !sources.is_empty(),
        "no .cu files in {}",
        kernels_dir.display()
    );

    let header = here.join("cuda_emu.hpp");
    let contract = here.join("kernels.hpp");
    let launcher = here.join("launch.cpp");
    // A new .cu file also needs its kernels in kernels.hpp, which is watched.
    for p in sources
        .iter()
        .chain([&header, &contract, &launcher])
        .map(PathBuf::as_path)
        .chain([Path::new("build.rs")])
    {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    cc::Build::new()
        .cpp(true)
        .std("c++20")
        // `.cu` is not a C++ extension to the driver.
        .flag("-x")
        .flag("c++")
        .flag("-include")
        .flag(header.to_str().expect("UTF-8 path"))
        .flag("-include")
        .flag(contract.to_str().expect("UTF-8 path"))
        // Rust never fuses a·b + c into an FMA; neither may the emulation, or it would not be
        // bit-comparable with the CPU backend.
        .flag("-ffp-contract=off")
        .flag("-fno-fast-math")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .include(&here)
        .files(&sources)
        .file(&launcher)
        .compile("keel_cuda_emu");
}
