//! Makes every artefact of this crate (tests included) find libtorch at run time without the user
//! exporting anything: an rpath to the torch wheel's `lib/`, and `libtorch_cuda.so` linked with
//! `--no-as-needed` because rustc's default `--as-needed` drops it (no symbol of it is referenced
//! directly), which would leave the binary CPU-only on a GPU machine.

fn main() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    // Read by crates that link this one (their build scripts see DEP_TXFM_TORCH_LIBTORCH_LIB).
    println!("cargo:libtorch_lib={lib}");
    println!("cargo:rerun-if-changed=build.rs");
}
