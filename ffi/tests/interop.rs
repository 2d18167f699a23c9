//! Cross-language: a C program (tests/c/interop.c, compiled here with the
//! system C compiler against include/memshelf.h and the static library)
//! and this Rust process, using the engine crate directly, share one
//! segment in both directions.

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::{Cache, Expiry};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The static library: the one cargo built beside this test binary
/// (target/<profile>/), else (`cargo test` does not always build a
/// staticlib-only package's library) one built now into the test's temp dir
/// (cargo holds the main target dir's lock while tests run).
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let lib = profile_dir.join("libmemshelf.a");
    // Only if it is as new as this test binary: an older one may speak an
    // older layout (`cargo test -p memshelf-ffi` does not rebuild it).
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if lib.exists() && mtime(&lib) >= mtime(&exe) {
        return lib;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-lib");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "memshelf-ffi",
            "--lib",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(repo())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p memshelf-ffi failed");
    let lib = target.join("debug").join("libmemshelf.a");
    assert!(lib.exists(), "{} missing after the build", lib.display());
    lib
}

/// Builds the C program against the static library.
fn build_c_program() -> PathBuf {
    let lib = static_lib();
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("interop-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(repo().join("include"))
        .arg(repo().join("tests/c/interop.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(status.success(), "compiling tests/c/interop.c failed");
    out
}

fn run(program: &Path, mode: &str, name: &str) {
    let out = Command::new(program).args([mode, name]).output().unwrap();
    assert!(
        out.status.success(),
        "interop {mode} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_and_rust_share_a_segment() {
    let program = build_c_program();
    let name = format!("ffi-interop-{}", std::process::id());
    let cache = Cache::open(&name, 8 << 20).unwrap();

    // C writes, Rust reads.
    run(&program, "write", &name);
    for i in 0..100 {
        let v = cache.get(format!("c:{i}")).unwrap();
        assert_eq!(v.as_deref(), Some(format!("from C {i}").as_bytes()));
    }
    assert!(matches!(cache.ttl(b"c:0").unwrap(), Some(Expiry::In(_))));
    assert_eq!(cache.incr(b"counter", 1).unwrap(), 2);
    cache.invalidate_tag(b"from-c").unwrap();
    assert_eq!(cache.get(b"c:1").unwrap(), None);

    // Rust writes, C reads.
    for i in 0..100 {
        cache
            .put(format!("rust:{i}"), format!("from Rust {i}"))
            .unwrap();
    }
    run(&program, "read", &name);

    drop(cache);
    engine::unlink(&name).unwrap();
    let _ = std::fs::remove_file(&program);
}
