//! Sealing personal data at rest with AES-256-GCM (ring): cached coverage in Redis, the clear
//! identities in the audit log, the answers kept for idempotent replays.
//!
//! A sealed value is `key id (8 ASCII hex) | nonce (12) | ciphertext and tag`. The key id lets
//! values sealed before a key rotation be opened after it. The associated data names what the
//! value is (e.g. "redis-coverage"), so a value copied into another place does not open there.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const KEY_ID_LEN: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed data is malformed")]
    Malformed,
    #[error("sealed with key {0}, which this backend does not hold")]
    UnknownKey(String),
    #[error("sealed data failed authentication (altered, or sealed for another use)")]
    Forged,
}

pub struct Sealer {
    /// (id, key), the current key first.
    keys: Vec<(String, LessSafeKey)>,
    rng: SystemRandom,
}

impl Sealer {
    /// A sealer over a key ring of 32-byte secrets, current first (see `keys::KeyRing`).
    pub fn new(ring: Vec<(String, Vec<u8>)>) -> Self {
        let keys = ring
            .into_iter()
            .filter(|(id, _)| id.len() == KEY_ID_LEN)
            .map(|(id, secret)| {
                let key = UnboundKey::new(&AES_256_GCM, &secret).expect("32-byte AES-256 key");
                (id, LessSafeKey::new(key))
            })
            .collect::<Vec<_>>();
        assert!(!keys.is_empty(), "a data key ring with at least one key");
        Self {
            keys,
            rng: SystemRandom::new(),
        }
    }

    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Vec<u8> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(purpose),
            &mut body,
        )
        .expect("AES-GCM sealing of a bounded message");
        out.extend_from_slice(&body);
        out
    }

    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < KEY_ID_LEN + NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (id, rest) = sealed.split_at(KEY_ID_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let id = std::str::from_utf8(id).map_err(|_| SealError::Malformed)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(purpose), &mut body)
            .map_err(|_| SealError::Forged)?;
        Ok(plain.to_vec())
    }

    /// [`seal`](Self::seal) as hex text, for text columns.
    pub fn seal_text(&self, purpose: &str, plain: &str) -> String {
        hex::encode(self.seal(purpose, plain.as_bytes()))
    }

    pub fn open_text(&self, purpose: &str, sealed: &str) -> Result<String, SealError> {
        let bytes = hex::decode(sealed).map_err(|_| SealError::Malformed)?;
        String::from_utf8(self.open(purpose, &bytes)?).map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)]) -> Vec<(String, Vec<u8>)> {
        ids.iter()
            .map(|(id, b)| (id.to_string(), vec![*b; 32]))
            .collect()
    }

    #[test]
    fn seals_and_opens_across_a_rotation() {
        let old = Sealer::new(ring(&[("0000aaaa", 1)]));
        let sealed = old.seal("redis-coverage", b"Nguyen Van An 001099012345");
        assert!(!sealed.windows(12).any(|w| w == b"001099012345"));
        let rotated = Sealer::new(ring(&[("0000bbbb", 2), ("0000aaaa", 1)]));
        assert_eq!(
            rotated.open("redis-coverage", &sealed).unwrap(),
            b"Nguyen Van An 001099012345"
        );
        assert!(rotated.seal("x", b"y").starts_with(b"0000bbbb"));
    }

    #[test]
    fn refuses_altered_misused_or_unknown() {
        let s = Sealer::new(ring(&[("0000aaaa", 1)]));
        let mut sealed = s.seal("audit-subject", b"001099012345");
        assert_eq!(s.open("redis-coverage", &sealed), Err(SealError::Forged));
        *sealed.last_mut().unwrap() ^= 1;
        assert_eq!(s.open("audit-subject", &sealed), Err(SealError::Forged));
        let other = Sealer::new(ring(&[("0000cccc", 3)]));
        assert_eq!(
            other.open("audit-subject", &s.seal("audit-subject", b"x")),
            Err(SealError::UnknownKey("0000aaaa".into()))
        );
        assert_eq!(s.open("audit-subject", b"short"), Err(SealError::Malformed));
    }
}
