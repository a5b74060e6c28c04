//! Private by default: the database holds every message and the password
//! hashes, the configuration the relay's and the database's passwords, the
//! TLS key the server's identity. Everything postdesk creates is readable
//! by its own user only, from the moment it is created (a umask, not a
//! chmod afterwards, which would leave a window), and `serve` warns about
//! anything older that others can read.

use std::path::{Path, PathBuf};

/// Makes every file and directory this process creates from now on
/// private (files 0600, directories 0700): SQLite's database, WAL and
/// shared-memory files, the search index, the configuration, the pid file.
pub fn make_new_files_private() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
}

/// Writes a file that only its owner may read, created with that mode.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

/// Of these paths, those that exist and that users other than the owner
/// may read (or, for a directory, enter).
pub fn readable_by_others<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        paths
            .into_iter()
            .filter(|path| {
                std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
            })
            .map(Path::to_path_buf)
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = paths;
        Vec::new()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_file_is_created_private_and_an_open_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        write_private(&key, b"secret").expect("write");
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let open = dir.path().join("open.txt");
        std::fs::write(&open, b"x").expect("write");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            readable_by_others([key.as_path(), open.as_path()]),
            vec![open.clone()]
        );
    }
}
