//! Finding NVIDIA's own programs, `nsys` to export an `.nsys-rep` and `ncu`
//! to print an `.ncu-rep`: from an environment variable, then `PATH`, then
//! where NVIDIA's installers put them. The installers do not add their
//! folders to `PATH` (the CUDA toolkit asks the user to; the standalone
//! Nsight packages install under `/opt/nvidia`), so a profile from a
//! machine with the tools installed would otherwise be refused there.

use std::path::{Path, PathBuf};

/// One of the NVIDIA programs the digests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvidiaTool {
    Nsys,
    Ncu,
}

impl NvidiaTool {
    pub fn program(self) -> &'static str {
        match self {
            NvidiaTool::Nsys => "nsys",
            NvidiaTool::Ncu => "ncu",
        }
    }

    /// The variable that names the program, overriding every other place.
    pub fn env_var(self) -> &'static str {
        match self {
            NvidiaTool::Nsys => "NSYS",
            NvidiaTool::Ncu => "NCU",
        }
    }

    /// The standalone package's versions folder, and where the program sits
    /// inside one version.
    fn versions_folder(self) -> (&'static str, &'static str) {
        match self {
            NvidiaTool::Nsys => ("opt/nvidia/nsight-systems", "bin/nsys"),
            NvidiaTool::Ncu => ("opt/nvidia/nsight-compute", "ncu"),
        }
    }

    /// Where the program was looked for, for an error line when none was found.
    fn places(self) -> String {
        let (versions, _) = self.versions_folder();
        format!(
            "none on PATH, in /usr/local/cuda/bin or under /{versions}; set {} to the program",
            self.env_var()
        )
    }
}

/// The program to run, or why none is: a phrase for an error line.
pub fn locate(tool: NvidiaTool) -> Result<PathBuf, String> {
    let var = std::env::var_os(tool.env_var()).filter(|v| !v.is_empty());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    locate_in(tool, var.as_deref().map(Path::new), &dirs, Path::new("/"))
}

/// [`locate`] over a given variable, `PATH` and file-system root.
fn locate_in(
    tool: NvidiaTool,
    var: Option<&Path>,
    path_dirs: &[PathBuf],
    root: &Path,
) -> Result<PathBuf, String> {
    if let Some(named) = var {
        // A variable that names nothing is a mistake to report, not a hint
        // to fall back on some other version.
        if named.is_file() {
            return Ok(named.to_path_buf());
        }
        return Err(format!(
            "{}={} is not a file",
            tool.env_var(),
            named.display()
        ));
    }
    let on_path = path_dirs.iter().map(|d| d.join(tool.program()));
    let (versions, inside) = tool.versions_folder();
    let newest = newest_version(&root.join(versions)).map(|v| v.join(inside));
    let toolkit = root.join("usr/local/cuda/bin").join(tool.program());
    on_path
        .chain(newest)
        .chain([toolkit])
        .find(|p| p.is_file())
        .ok_or_else(|| tool.places())
}

/// The subfolder with the highest version number, compared part by part
/// as numbers (`2025.10.1` is newer than `2025.3.1`).
fn newest_version(folder: &Path) -> Option<PathBuf> {
    std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = version_parts(e.file_name().to_str()?)?;
            Some((version, e.path()))
        })
        .max()
        .map(|(_, path)| path)
}

fn version_parts(name: &str) -> Option<Vec<u64>> {
    let parts: Vec<u64> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Hand-made install layouts: no NVIDIA tool is installed where the
    /// tests run, so the folders hold empty stand-in programs.
    fn program_at(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_newest_standalone_version_wins_over_the_toolkit() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        program_at(r, "usr/local/cuda/bin/nsys");
        program_at(r, "opt/nvidia/nsight-systems/2025.3.1/bin/nsys");
        let newest = program_at(r, "opt/nvidia/nsight-systems/2025.10.1/bin/nsys");
        program_at(r, "opt/nvidia/nsight-systems/2024.6.2/bin/nsys");
        assert_eq!(locate_in(NvidiaTool::Nsys, None, &[], r), Ok(newest));
        let ncu = program_at(r, "usr/local/cuda/bin/ncu");
        assert_eq!(locate_in(NvidiaTool::Ncu, None, &[], r), Ok(ncu));
    }

    #[test]
    fn path_wins_over_the_install_folders_and_the_variable_over_both() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        program_at(r, "opt/nvidia/nsight-compute/2025.3.1/ncu");
        let on_path = program_at(r, "bin/ncu");
        let dirs = [r.join("empty"), r.join("bin")];
        assert_eq!(locate_in(NvidiaTool::Ncu, None, &dirs, r), Ok(on_path));
        let named = program_at(r, "elsewhere/ncu-2025");
        let got = locate_in(NvidiaTool::Ncu, Some(&named), &dirs, r);
        assert_eq!(got, Ok(named));
    }

    #[test]
    fn a_variable_naming_nothing_is_reported_not_passed_over() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let dirs = [program_at(r, "bin/nsys").parent().unwrap().to_path_buf()];
        let missing = r.join("no/such/nsys");
        let err = locate_in(NvidiaTool::Nsys, Some(&missing), &dirs, r).unwrap_err();
        assert_eq!(err, format!("NSYS={} is not a file", missing.display()));
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("opt/nvidia/nsight-compute/notes")).unwrap();
        let err = locate_in(NvidiaTool::Ncu, None, &[], root.path()).unwrap_err();
        assert!(err.contains("/opt/nvidia/nsight-compute"), "{err}");
        assert!(err.contains("set NCU"), "{err}");
    }
}
