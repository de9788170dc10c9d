//! Runnable examples for the identity crates. Each file in this folder is an example:
//! `cargo run -p identity-examples --example token -- --help`.
