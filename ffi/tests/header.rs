//! The committed `include/memshelf.h` must be what cbindgen generates from
//! this crate now. `MEMSHELF_BLESS=1 cargo test -p memshelf-ffi --test
//! header` (scripts/gen-header.sh) rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/memshelf.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    if std::env::var_os("MEMSHELF_BLESS").is_some() {
        std::fs::write(&header, &fresh).expect("write include/memshelf.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/memshelf.h is stale: run scripts/gen-header.sh and commit it"
    );
}
