//! The spool's files at rest: ChaCha20-Poly1305 (ring) under the spool key.
//!
//! A file is `MAGIC | nonce (12 bytes, random per write) | ciphertext | tag (16 bytes)`. The
//! associated data is the magic and the file's own name, which holds the request id: a file
//! renamed to another entry's name, or swapped with it, fails to open instead of being sent
//! as the other check.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// The key's length: ChaCha20-Poly1305 takes 256 bits.
pub const KEY_LEN: usize = 32;
/// Names the format and its version; a file without it is not one of ours.
const MAGIC: &[u8; 8] = b"BHYTSPL1";
const TAG_LEN: usize = 16;

/// Why a sealed file does not open. Wrong key, altered bytes and a cut-off tail all look the
/// same to an AEAD: the tag does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Shorter than the smallest sealed file.
    Truncated,
    /// Does not start with the spool's magic.
    NotSealed,
    /// The tag does not verify: altered, truncated, renamed, or sealed under another key.
    Authentication,
}

impl Broken {
    pub fn reason(self) -> &'static str {
        match self {
            Broken::Truncated => "truncated",
            Broken::NotSealed => "not a spool file",
            Broken::Authentication => {
                "does not authenticate: altered, truncated, renamed or sealed under another key"
            }
        }
    }
}

/// Why nothing could be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("random number generator unavailable")]
    Random,
    #[error("too large to seal")]
    TooLarge,
}

/// The spool key, ready to seal and open.
pub struct SpoolKey(LessSafeKey);

impl SpoolKey {
    /// `None` unless `bytes` is exactly [`KEY_LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).ok()?;
        Some(SpoolKey(LessSafeKey::new(key)))
    }

    /// `plaintext` sealed for the file called `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut body = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name)),
                &mut body,
            )
            // ring refuses only inputs beyond ChaCha20's 256 GiB per nonce.
            .map_err(|_| SealError::TooLarge)?;
        let mut file = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&body);
        Ok(file)
    }

    /// The plaintext of the file called `name`.
    pub fn open(&self, name: &str, file: &[u8]) -> Result<Vec<u8>, Broken> {
        if file.len() < MAGIC.len() + NONCE_LEN + TAG_LEN {
            return Err(if file.starts_with(MAGIC) || MAGIC.starts_with(file) {
                Broken::Truncated
            } else {
                Broken::NotSealed
            });
        }
        let (magic, rest) = file.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(Broken::NotSealed);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Broken::Truncated)?;
        let mut body = body.to_vec();
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(aad(name)), &mut body)
            .map_err(|_| Broken::Authentication)?;
        Ok(plaintext.to_vec())
    }
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = MAGIC.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SpoolKey {
        SpoolKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn opens_what_it_sealed_and_nothing_altered() {
        let k = key(7);
        let file = k.seal("a.entry", b"the check").unwrap();
        assert_eq!(k.open("a.entry", &file).unwrap(), b"the check");
        // The plaintext is not in the file (a sealer that copied it through would fail here).
        assert!(!file.windows(9).any(|w| w == b"the check"));
        // Each write has its own nonce: the same check sealed twice differs.
        assert_ne!(file, k.seal("a.entry", b"the check").unwrap());

        // Every single-bit flip anywhere is refused.
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(
                k.open("a.entry", &bad).is_err(),
                "flip at byte {i} accepted"
            );
        }
        // Every truncation is refused.
        for len in 0..file.len() {
            assert!(
                k.open("a.entry", &file[..len]).is_err(),
                "cut at {len} accepted"
            );
        }
        assert_eq!(k.open("a.entry", &file[..10]), Err(Broken::Truncated));
        // Another name (a swapped or renamed file) and another key are refused.
        assert_eq!(k.open("b.entry", &file), Err(Broken::Authentication));
        assert_eq!(key(8).open("a.entry", &file), Err(Broken::Authentication));
        assert_eq!(
            k.open("a.entry", b"{\"plain\": \"json written by someone\"}"),
            Err(Broken::NotSealed)
        );
    }

    #[test]
    fn a_key_must_be_32_bytes() {
        assert!(SpoolKey::from_bytes(&[0; 31]).is_none());
        assert!(SpoolKey::from_bytes(&[0; 33]).is_none());
        assert!(SpoolKey::from_bytes(&[]).is_none());
    }
}
