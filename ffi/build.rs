//! Gives libmemshelf.so the SONAME libmemshelf.so.<ABI version>, so
//! programs linked against it find a compatible library after upgrades.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmemshelf.so.1");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
