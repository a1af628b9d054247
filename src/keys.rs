//! The backend's own secrets, kept as files under `<data_dir>/keys` and created on first start:
//!
//! - `pseudonym.key`: the key of the keyed hash (HMAC-SHA-256) that stands in for citizen IDs,
//!   card numbers and operator IDs in cache keys and audit records. Without it the hashes cannot
//!   be linked back to people by trying all 10^12 IDs. Losing it makes audit queries by citizen
//!   impossible for older records: back it up with the audit database.
//! - `audit-signing.pk8`: the Ed25519 key that signs audit checkpoints; `audit-signing.pub` is
//!   the public half auditors use to verify the log offline.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use ring::{digest, hmac};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {0} is not a valid key")]
    Invalid(PathBuf),
}

/// Keyed hashing of personal identifiers.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl Pseudonymizer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A hex keyed hash of `value` in a `purpose` domain, so the same ID hashes differently as a
    /// cache key and as an audit subject.
    pub fn hash(&self, purpose: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }
}

/// Signs audit checkpoints.
pub struct CheckpointSigner {
    pair: Ed25519KeyPair,
}

impl CheckpointSigner {
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier::new(self.pair.public_key().as_ref().to_vec())
    }
}

/// Verifies checkpoint signatures with a public key; needs no secret, so auditors can run it.
#[derive(Clone)]
pub struct CheckpointVerifier {
    public_key: Vec<u8>,
}

impl CheckpointVerifier {
    pub fn new(public_key: Vec<u8>) -> Self {
        Self { public_key }
    }

    /// Short identifier of the key, stored beside each signature.
    pub fn key_id(&self) -> String {
        hex::encode(&digest::digest(&digest::SHA256, &self.public_key).as_ref()[..8])
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::Invalid(path.into()))?;
        Ok(Self::new(bytes))
    }
}

/// The keys a backend process holds.
pub struct Keys {
    pub pseudonymizer: Pseudonymizer,
    pub signer: CheckpointSigner,
}

impl Keys {
    /// Loads the keys from `dir`, creating missing ones (files readable by the owner only).
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        let rng = SystemRandom::new();
        let pseudonym_path = dir.join("pseudonym.key");
        if !pseudonym_path.exists() {
            let mut secret = [0u8; 32];
            rng.fill(&mut secret)
                .map_err(|_| KeyError::Invalid(pseudonym_path.clone()))?;
            write_private(&pseudonym_path, hex::encode(secret).as_bytes())?;
        }
        let secret = hex::decode(read(&pseudonym_path)?.trim())
            .map_err(|_| KeyError::Invalid(pseudonym_path.clone()))?;
        if secret.len() < 32 {
            return Err(KeyError::Invalid(pseudonym_path));
        }

        let signing_path = dir.join("audit-signing.pk8");
        if !signing_path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Invalid(signing_path.clone()))?;
            write_private(&signing_path, hex::encode(pkcs8.as_ref()).as_bytes())?;
        }
        let pkcs8 = hex::decode(read(&signing_path)?.trim())
            .map_err(|_| KeyError::Invalid(signing_path.clone()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| KeyError::Invalid(signing_path.clone()))?;
        let public_path = dir.join("audit-signing.pub");
        let public_hex = hex::encode(pair.public_key().as_ref());
        if read(&public_path).ok().as_deref().map(str::trim) != Some(public_hex.as_str()) {
            fs::write(&public_path, format!("{public_hex}\n")).map_err(|source| KeyError::Io {
                path: public_path,
                source,
            })?;
        }
        Ok(Self {
            pseudonymizer: Pseudonymizer::new(&secret),
            signer: CheckpointSigner { pair },
        })
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_hash_by_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let b = Keys::load_or_create(dir.path()).unwrap();
        let h = a.pseudonymizer.hash("subject", "001099012345");
        assert_eq!(h, b.pseudonymizer.hash("subject", "001099012345"));
        assert_ne!(h, a.pseudonymizer.hash("cache", "001099012345"));
        assert!(!h.contains("001099012345"));
        let sig = a.signer.sign(b"checkpoint");
        let verifier = CheckpointVerifier::load(&dir.path().join("audit-signing.pub")).unwrap();
        assert!(verifier.verify(b"checkpoint", &sig));
        assert!(!verifier.verify(b"checkpoint!", &sig));
    }
}
