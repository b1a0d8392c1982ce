//! The `pvd` binary starts and explains itself. (Also makes cargo build `pvd` before the
//! workspace's interop tests run, which find it next to their own test binaries.)

use std::process::Command;

#[test]
fn help_lists_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_pvd"))
        .arg("--help")
        .output()
        .expect("run pvd --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: pvd"), "{text}");
}
