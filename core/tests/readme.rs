//! The README's Rust example is `core/examples/controller.rs`'s marked part, word for word, so the
//! example CI runs (`cargo run -p keel-core --example controller`) is the one the README shows.

#[test]
fn the_readme_rust_example_is_the_controller_example() {
    let example = include_str!("../examples/controller.rs");
    let readme = include_str!("../../README.md");
    let begin =
        example.find("// README:begin\n").expect("begin marker") + "// README:begin\n".len();
    let end = example.find("// README:end").expect("end marker");
    let part = &example[begin..end];
    let block = format!("```rust\n{part}```\n");
    assert!(
        readme.contains(&block),
        "README.md has no ```rust block equal to core/examples/controller.rs between its README \
         markers; copy the example's part into the README"
    );
}
