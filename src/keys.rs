//! The backend's own secrets, kept as files under `<data_dir>/keys` and created on first start:
//!
//! - `pseudonym/`: keys of the keyed hash (HMAC-SHA-256) that stands in for citizen IDs, card
//!   numbers and operator IDs in cache keys and audit records. Without them the hashes cannot be
//!   linked back to people by trying all 10^12 IDs.
//! - `data/`: AES-256-GCM keys that seal personal data at rest (Redis values, the audit log's
//!   clear identities, stored answers); see [`crate::seal`].
//! - `audit-signing.pk8`: the Ed25519 key that signs audit checkpoints; `audit-signing.pub` is
//!   the public half auditors use to verify the log offline.
//! - `proof-signing.pk8`: the Ed25519 key that signs proof-of-check tokens; `proof-keys/` keeps
//!   the public half of every key ever used, so old tokens stay verifiable after a rotation.
//!
//! Key rings (`pseudonym/`, `data/`) hold `<id>.key` files and a `current` file naming the key
//! new data uses; `bhyt-verify keys rotate` adds a key to each and makes it current. Old keys
//! stay: sealed data names its key, and audit queries by citizen hash with every pseudonym key,
//! so records written before a rotation are still found. Back the keys directory up with the
//! audit database: without it, sealed identities and queries by citizen are lost.

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

/// Keyed hashing of personal identifiers, with the current key and every older one.
#[derive(Clone)]
pub struct Pseudonymizer {
    /// The current key first.
    keys: Vec<hmac::Key>,
}

impl Pseudonymizer {
    pub fn new(secret: &[u8]) -> Self {
        Self::from_ring(&[secret.to_vec()])
    }

    fn from_ring(secrets: &[Vec<u8>]) -> Self {
        let keys = secrets
            .iter()
            .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s))
            .collect();
        Self { keys }
    }

    /// A hex keyed hash of `value` in a `purpose` domain, so the same ID hashes differently as a
    /// cache key and as an audit subject.
    pub fn hash(&self, purpose: &str, value: &str) -> String {
        Self::hash_with(&self.keys[0], purpose, value)
    }

    /// The hashes of `value` under every key, current first: what a search must match to find
    /// records written before a rotation.
    pub fn all_hashes(&self, purpose: &str, value: &str) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| Self::hash_with(k, purpose, value))
            .collect()
    }

    fn hash_with(key: &hmac::Key, purpose: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        hex::encode(ctx.sign().as_ref())
    }
}

/// A directory of 256-bit secret keys, `<id>.key` each, and `current` naming the one in use.
pub struct KeyRing {
    /// (id, secret), the current key first.
    pub keys: Vec<(String, Vec<u8>)>,
}

impl KeyRing {
    /// Loads the ring in `dir`, creating it with one key if it does not exist.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let current_path = dir.join("current");
        if !current_path.exists() {
            Self::rotate(dir)?;
        }
        let current = read(&current_path)?.trim().to_owned();
        let io = |source| KeyError::Io {
            path: dir.into(),
            source,
        };
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(id) = name.strip_suffix(".key") else {
                continue;
            };
            let secret =
                hex::decode(read(&path)?.trim()).map_err(|_| KeyError::Invalid(path.clone()))?;
            if secret.len() != 32 {
                return Err(KeyError::Invalid(path));
            }
            keys.push((id.to_owned(), secret));
        }
        keys.sort_by_key(|(id, _)| (*id != current, id.clone()));
        if keys.first().is_none_or(|(id, _)| *id != current) {
            return Err(KeyError::Invalid(current_path));
        }
        Ok(Self { keys })
    }

    /// Adds a new random key to the ring in `dir` and makes it current; returns its id.
    pub fn rotate(dir: &Path) -> Result<String, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| KeyError::Invalid(dir.into()))?;
        let id = hex::encode(&digest::digest(&digest::SHA256, &secret).as_ref()[..4]);
        write_private(
            &dir.join(format!("{id}.key")),
            hex::encode(secret).as_bytes(),
        )?;
        // Replace `current` atomically: a crash leaves the old or the new name, never half.
        let (current, temporary) = (dir.join("current"), dir.join("current.new"));
        fs::write(&temporary, format!("{id}\n")).map_err(|source| KeyError::Io {
            path: temporary.clone(),
            source,
        })?;
        fs::rename(&temporary, &current).map_err(|source| KeyError::Io {
            path: current,
            source,
        })?;
        Ok(id)
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
    pub sealer: crate::seal::Sealer,
    pub signer: CheckpointSigner,
    pub proof_signer: crate::proof::ProofSigner,
}

impl Keys {
    /// Loads the keys from `dir`, creating missing ones (files readable by the owner only).
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        let pseudonyms = KeyRing::load_or_create(&dir.join("pseudonym"))?;
        let secrets: Vec<Vec<u8>> = pseudonyms.keys.into_iter().map(|(_, s)| s).collect();
        let sealer = crate::seal::Sealer::new(KeyRing::load_or_create(&dir.join("data"))?.keys);
        let pair = signing_key(dir, "audit-signing")?;
        let proof_signer = crate::proof::ProofSigner::new(signing_key(dir, "proof-signing")?);
        proof_signer.publish(&dir.join("proof-keys"))?;
        Ok(Self {
            pseudonymizer: Pseudonymizer::from_ring(&secrets),
            sealer,
            signer: CheckpointSigner { pair },
            proof_signer,
        })
    }

    /// Rotates the pseudonym and data key rings and the proof-signing key (whose public half
    /// stays in `proof-keys/`). The audit-signing key is not rotated here.
    pub fn rotate(dir: &Path) -> Result<(), KeyError> {
        KeyRing::rotate(&dir.join("pseudonym"))?;
        KeyRing::rotate(&dir.join("data"))?;
        let proof = dir.join("proof-signing.pk8");
        if proof.exists() {
            let retired = dir.join(format!(
                "proof-signing.{}.retired",
                crate::audit::writer::now_micros()
            ));
            fs::rename(&proof, &retired).map_err(|source| KeyError::Io {
                path: proof,
                source,
            })?;
        }
        Ok(())
    }
}

/// Loads (creating on first use) the Ed25519 key `<name>.pk8` in `dir`, and writes its public
/// half beside it as `<name>.pub` (hex).
pub fn signing_key(dir: &Path, name: &str) -> Result<Ed25519KeyPair, KeyError> {
    let path = dir.join(format!("{name}.pk8"));
    if !path.exists() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| KeyError::Invalid(path.clone()))?;
        write_private(&path, hex::encode(pkcs8.as_ref()).as_bytes())?;
    }
    let pkcs8 = hex::decode(read(&path)?.trim()).map_err(|_| KeyError::Invalid(path.clone()))?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| KeyError::Invalid(path.clone()))?;
    let public_path = dir.join(format!("{name}.pub"));
    let public_hex = hex::encode(pair.public_key().as_ref());
    if read(&public_path).ok().as_deref().map(str::trim) != Some(public_hex.as_str()) {
        fs::write(&public_path, format!("{public_hex}\n")).map_err(|source| KeyError::Io {
            path: public_path,
            source,
        })?;
    }
    Ok(pair)
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
        // After a rotation the old hash is still among the ones searched.
        Keys::rotate(dir.path()).unwrap();
        let rotated = Keys::load_or_create(dir.path()).unwrap();
        assert_ne!(rotated.pseudonymizer.hash("subject", "001099012345"), h);
        assert!(
            rotated
                .pseudonymizer
                .all_hashes("subject", "001099012345")
                .contains(&h)
        );
        assert_eq!(h, b.pseudonymizer.hash("subject", "001099012345"));
        assert_ne!(h, a.pseudonymizer.hash("cache", "001099012345"));
        assert!(!h.contains("001099012345"));
        let sig = a.signer.sign(b"checkpoint");
        let verifier = CheckpointVerifier::load(&dir.path().join("audit-signing.pub")).unwrap();
        assert!(verifier.verify(b"checkpoint", &sig));
        assert!(!verifier.verify(b"checkpoint!", &sig));
    }
}
