//! What the command-line tests share: the repository root, a fresh scratch folder, and
//! the binary run from the root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (scenarios, samples and domain paths are relative to it).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An empty folder for one test: `cutover-<area>-<pid>-<name>` in the temporary folder.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cutover-{area}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `cutover` with `args`, run from the repository root.
pub fn in_root(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover")).args(args).current_dir(root()).output().unwrap()
}
