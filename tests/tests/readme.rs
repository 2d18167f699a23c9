//! The root README's Rust quick start is the crate README's
//! (`core/README.md`), which `cargo test -p memshelf --doc` compiles with
//! warnings denied: the two copies must stay equal.

use std::path::Path;

fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.push(current.take().unwrap()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn root_readme_rust_quick_start_is_the_crate_readme_doctest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let crate_blocks = rust_blocks(&read("core/README.md"));
    let root_blocks = rust_blocks(&read("README.md"));
    assert!(!crate_blocks.is_empty(), "core/README.md has no Rust block");
    for block in &root_blocks {
        assert!(
            crate_blocks.contains(block),
            "a Rust block of README.md is not in core/README.md (the doctested copy):\n{block}"
        );
    }
    assert!(!root_blocks.is_empty(), "README.md has no Rust quick start");
}
