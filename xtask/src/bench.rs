//! `cargo xtask bench`: builds and runs `identity-bench` in release mode, after describing the
//! machine (cores and CPU model) so the printed table can be pasted into `BENCHMARKS.md`
//! as is.

use std::process::Command;

use crate::sh::{self, Result};

pub(crate) fn run(args: &[String]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = sh::output(Command::new("lscpu").env("LC_ALL", "C"))
        .and_then(|out| cpu_model(&out))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    println!("machine: {cores} cores ({model})\n");
    let mut cmd = sh::cargo(["run", "--quiet", "--release", "-p", "identity-bench", "--"]);
    cmd.args(args);
    sh::run(&mut cmd)
}

/// The `Model name:` value in `lscpu` output.
fn cpu_model(lscpu: &str) -> Option<String> {
    lscpu
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .map(|m| m.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_read_from_lscpu() {
        let out = "Architecture: x86_64\nModel name:      AMD EPYC\nThread(s) per core: 1\n";
        assert_eq!(cpu_model(out).as_deref(), Some("AMD EPYC"));
        assert_eq!(cpu_model("Architecture: x86_64\n"), None);
    }
}
