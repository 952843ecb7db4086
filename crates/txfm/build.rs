//! Makes every artefact of this crate (tests included) find libtorch at run time without the user
//! exporting anything: an rpath to the torch wheel's `lib/`, and `libtorch_cuda.so` linked with
//! `--no-as-needed` because rustc's default `--as-needed` drops it (no symbol of it is referenced
//! directly), which would leave the binary CPU-only on a GPU machine. Also compiles `csrc/`, the
//! few libtorch calls tch does not bind (bfloat16 autocast), against the same wheel's headers.

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
        .include(&include)
        // The torch 2.x wheels are built with the C++11 ABI.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .flag_if_supported("-Wno-unused-parameter")
        .compile("txfm_csrc");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    // Read by crates that link this one (their build scripts see DEP_TXFM_TORCH_LIBTORCH_LIB).
    println!("cargo:libtorch_lib={lib}");
    println!("cargo:rerun-if-changed=build.rs");
}
