//! Gives the `txfm` binary the same libtorch rpath and CUDA link as the library (see its build.rs).

fn main() {
    let lib = std::env::var("DEP_TXFM_TORCH_LIBTORCH_LIB")
        .expect("the txfm library did not report its libtorch directory");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
