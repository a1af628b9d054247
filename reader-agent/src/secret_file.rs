//! A secret the agent keeps in a file of its own (the spool's key, the HIS token): readable by
//! this user only, created once, never left half-written.
//!
//! A new secret is written to a private temporary file, fsync'd and hard-linked into place, so
//! two agents starting at once end up with the same secret (the second link fails and that agent
//! reads the first one's) and a crash never leaves a short file behind.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;

/// Names starting so are writes in progress; one left by a crash was never acknowledged.
pub const TMP_PREFIX: &str = ".tmp-";

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Other users may read it (Unix mode bits).
    #[error("open to other users (mode {mode:o})")]
    Readable { mode: u32 },
}

/// The secret in `path`, `None` when there is no such file. Refused when other users may read it.
pub fn read_secret(path: &Path) -> Result<Option<Vec<u8>>, SecretFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Readable { mode });
        }
    }
    Ok(Some(bytes))
}

/// Creates `path` (and its directory, private) holding `secret`; when another start created it
/// first, that one's secret. Either way, what the file now holds.
pub fn create_secret(path: &Path, secret: &[u8]) -> Result<Vec<u8>, SecretFileError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let _ = fs::remove_file(&tmp);
    let written = create_private(&tmp).and_then(|mut file| {
        file.write_all(secret)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(secret.to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(path)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "removed meanwhile").into()),
        Err(e) => Err(e.into()),
    }
}

/// Creates `dir` (and its parents) if missing, private to this user on Unix.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file (never an existing one), private to this user on Unix.
pub fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Makes the names in `dir` (a creation, rename or removal) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
