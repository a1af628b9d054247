//! How the spool touches the disk: private directories and files, writes that survive a crash
//! whole or not at all, and the key file.
//!
//! A file is written under a temporary name, fsync'd, renamed into place and its directory
//! fsync'd, so after a power cut it is either absent or complete, and its name is durable
//! before the desk is told the check was kept. On Unix the directories are 0700 and the files
//! 0600. On Windows neither the mode nor a directory fsync exists: the directories' ACL must
//! restrict them to the service account (README), and NTFS journals the rename.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::SpoolError;
use super::sealed::{KEY_LEN, SpoolKey};
use crate::secret_file::{SecretFileError, create_private, create_secret, read_secret};
pub use crate::secret_file::{TMP_PREFIX, create_private_dir, sync_dir};

/// Writes `bytes` as `dir/name`, replacing any file of that name, durably (module comment).
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    // A temporary left by an earlier crash under this very name holds nothing acknowledged.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = create_private(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, dir.join(name))) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes the temporaries a crash left in `dir`.
pub fn clear_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The spool key from `path`, created there first (`secret_file`) when absent and
/// `may_create`.
pub fn load_or_create_key(path: &Path, may_create: bool) -> Result<SpoolKey, SpoolError> {
    let problem = |problem: String| SpoolError::Key {
        path: path.display().to_string(),
        problem,
    };
    let bytes = match read_secret(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) if !may_create => {
            return Err(problem(
                "missing, but the spool holds entries sealed under a key: restore that key file"
                    .into(),
            ));
        }
        Ok(None) => {
            let mut key = [0u8; KEY_LEN];
            getrandom::fill(&mut key).map_err(|_| SpoolError::Random)?;
            create_secret(path, &key).map_err(|e| problem(format!("cannot create: {e}")))?
        }
        Err(SecretFileError::Readable { mode }) => {
            return Err(problem(format!(
                "open to other users (mode {mode:o}): make it private with chmod 600"
            )));
        }
        Err(e) => return Err(problem(e.to_string())),
    };
    SpoolKey::from_bytes(&bytes)
        .ok_or_else(|| problem(format!("{} bytes, a spool key is {KEY_LEN}", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("spool.key");
        let first = load_or_create_key(&path, true).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The second start reads the same key: what the first sealed, the second opens.
        let second = load_or_create_key(&path, true).unwrap();
        let sealed = first.seal("n", b"x").unwrap();
        assert_eq!(second.open("n", &sealed).unwrap(), b"x");
        assert_eq!(fs::read(&path).unwrap(), bytes);
        // No temporaries left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_short_open_or_missing_key_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.key");
        let missing = load_or_create_key(&path, false).err().unwrap().to_string();
        assert!(missing.contains("missing"), "{missing}");
        assert!(!path.exists());

        std::fs::write(&path, [1u8; 16]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let open = load_or_create_key(&path, true).err().unwrap().to_string();
            assert!(open.contains("chmod 600"), "{open}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let short = load_or_create_key(&path, true).err().unwrap().to_string();
        assert!(short.contains("16 bytes"), "{short}");
        // Never overwritten: the short file may be a damaged copy of the real key.
        assert_eq!(fs::read(&path).unwrap(), [1u8; 16]);
    }

    #[test]
    fn a_durable_write_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write_durably(dir.path(), "a", b"first").unwrap();
        write_durably(dir.path(), "a", b"second").unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"second");
        fs::write(dir.path().join(format!("{TMP_PREFIX}b")), b"torn").unwrap();
        clear_temporaries(dir.path()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
    }
}
