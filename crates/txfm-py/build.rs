//! Where the extension finds libtorch at run time: first `$ORIGIN/../torch/lib`, the torch wheel
//! installed beside the `txfm` package in the same site-packages (a user's own venv), then the
//! build venv's torch (a development build). `import txfm` imports torch first, so its libraries
//! are normally loaded already; the rpath covers `import txfm._txfm` on its own. `libtorch_cuda`
//! is linked `--no-as-needed` for the reason the library's build.rs gives.

fn main() {
    let lib = std::env::var("DEP_TXFM_TORCH_LIBTORCH_LIB").expect("the txfm library did not report its libtorch directory");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib:{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
