//! Makes every artefact of this crate (tests included) find libtorch at run time without the user
//! exporting anything: an rpath to the torch wheel's `lib/`, and `libtorch_cuda.so` linked with
//! `--no-as-needed` because rustc's default `--as-needed` drops it (no symbol of it is referenced
//! directly), which would leave the binary CPU-only on a GPU machine. Also compiles `csrc/`, the
//! few libtorch calls tch does not bind (bfloat16 autocast, gradient hooks, peak GPU memory), against the same wheel's headers.
//!
//! Data-parallel training: `csrc/mpi.c` is compiled against the system's MPI (Debian's
//! libopenmpi-dev, found with `pkg-config ompi-c` or `mpicc --showme`) and `cfg(txfm_mpi)` is set;
//! without MPI headers (or with `TXFM_NO_MPI=1`) txfm still builds, and a multi-rank run says how
//! to get MPI. NCCL is not linked: it is loaded at run time from the torch wheel
//! (`TXFM_WHEEL_NCCL`, baked in here) or the system.

fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let include = std::path::Path::new(&lib).parent().expect("libtorch lib has a parent").join("include");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/autocast.cpp")
        .file("csrc/grad_hooks.cpp")
        .file("csrc/device_memory.cpp")
        .file("csrc/pinned.cpp")
        .include(&include)
        // The torch 2.x wheels are built with the C++11 ABI.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("txfm_csrc");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/grad_hooks.cpp");
    println!("cargo:rerun-if-changed=csrc/device_memory.cpp");
    println!("cargo:rerun-if-changed=csrc/pinned.cpp");
    mpi();
    let nccl = std::path::Path::new(&lib).join("../../nvidia/nccl/lib/libnccl.so.2");
    println!("cargo:rustc-env=TXFM_WHEEL_NCCL={}", nccl.display());
    // Read by crates that link this one (their build scripts see DEP_TXFM_TORCH_LIBTORCH_LIB).
    println!("cargo:libtorch_lib={lib}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Compiles the MPI shim if MPI's headers are found, and links libmpi.
fn mpi() {
    println!("cargo::rustc-check-cfg=cfg(txfm_mpi)");
    println!("cargo:rerun-if-env-changed=TXFM_NO_MPI");
    println!("cargo:rerun-if-changed=csrc/mpi.c");
    if std::env::var_os("TXFM_NO_MPI").is_some_and(|v| v != "0") {
        println!("cargo:warning=TXFM_NO_MPI is set: building without MPI (no multi-rank training)");
        return;
    }
    let Some(flags) = mpi_flags() else {
        println!(
            "cargo:warning=MPI not found (no `pkg-config ompi-c`, no `mpicc`): building without multi-rank training; \
             install libopenmpi-dev (scripts/setup.sh does) and rebuild to get it"
        );
        // Installing MPI adds its .pc file to one of these folders, which then reruns this script.
        if let Some(path) = run("pkg-config", &["--variable", "pc_path", "pkg-config"]) {
            for dir in path.trim().split(':').filter(|d| std::path::Path::new(d).is_dir()) {
                println!("cargo:rerun-if-changed={dir}");
            }
        }
        return;
    };
    let mut build = cc::Build::new();
    build.file("csrc/mpi.c");
    for flag in &flags {
        if let Some(dir) = flag.strip_prefix("-I") {
            build.include(dir);
        } else if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
    build.compile("txfm_mpi");
    for flag in &flags {
        if let Some(name) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        }
    }
    println!("cargo:rustc-cfg=txfm_mpi");
}

/// MPI's compile and link flags, split on whitespace: `pkg-config ompi-c` (Open MPI), `pkg-config
/// mpi`, or the compiler wrapper's `mpicc --showme` (whose first word is the compiler).
fn mpi_flags() -> Option<Vec<String>> {
    let words = |s: String| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    for package in ["ompi-c", "mpi"] {
        if let Some(flags) = run("pkg-config", &["--cflags", "--libs", package]) {
            return Some(words(flags));
        }
    }
    run("mpicc", &["--showme"]).map(|s| words(s).into_iter().skip(1).collect())
}

/// The standard output of a successful command.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
