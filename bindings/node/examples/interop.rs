//! Interop check for the Node tests: the Rust engine writes entries a Node
//! process reads, and checks entries a Node process wrote.
//!
//! ```text
//! cargo run -p memshelf-node --example interop -- write NAME
//! cargo run -p memshelf-node --example interop -- check NAME
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, name] = &args[..] else {
        eprintln!("usage: interop write|check NAME");
        return ExitCode::from(2);
    };
    let cache = match memshelf::OpenOptions::new()
        .capacity(16 << 20)
        .create(mode == "write")
        .open(name)
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("open {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match mode.as_str() {
        "write" => write(&cache),
        "check" => check(&cache),
        _ => Err(format!("unknown mode {mode}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interop {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(c: &memshelf::Cache) -> Result<(), String> {
    let e = |e: memshelf::Error| e.to_string();
    c.put("from-rust:text", "héllo from Rust").map_err(e)?;
    c.put(b"from-rust:\x00\xffbin", [0u8, 1, 2, 255])
        .map_err(e)?;
    c.put("from-rust:empty", b"").map_err(e)?;
    c.put("from-rust:big", vec![b'r'; 200_000]).map_err(e)?;
    c.incr("from-rust:counter", 41).map_err(e)?;
    Ok(())
}

fn check(c: &memshelf::Cache) -> Result<(), String> {
    let expect = |key: &[u8], want: &[u8]| -> Result<(), String> {
        match c.get(key).map_err(|e| e.to_string())? {
            Some(v) if v == want => Ok(()),
            other => Err(format!(
                "{:?}: expected {} bytes, got {:?}",
                String::from_utf8_lossy(key),
                want.len(),
                other.map(|v| v.len())
            )),
        }
    };
    expect(b"from-node:text", "日本語 from Node".as_bytes())?;
    expect(b"from-node:\x01\x02bin", &[9, 8, 7, 0])?;
    expect(b"from-node:counter", b"7")?;
    expect(b"from-node:big", &vec![b'n'; 300_000])?;
    Ok(())
}
