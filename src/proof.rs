//! Proof of check: a compact signed token in each answer, which a clinic keeps with its claim and
//! an auditor verifies offline with the backend's public key.
//!
//! The token is a JWS in compact form (`header.claims.signature`, base64url), signed with Ed25519
//! (`alg: EdDSA`); `kid` names the signing key. Claims carry keyed hashes, never a citizen ID or
//! a name. Public keys are kept in `keys/proof-keys/<kid>.pub` (hex), the retired ones included,
//! so a rotation never makes an old token unverifiable.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::digest;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::keys::KeyError;

const TYPE: &str = "bhyt-proof+jwt";

/// What a proof of check states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofClaims {
    /// Keyed hash of the subject (citizen ID, or social-insurance number for card numbers).
    pub sub: String,
    /// Facility code and station id.
    pub fac: String,
    pub sta: String,
    /// Keyed hash of the operator's citizen ID.
    pub op: String,
    /// When the check was answered, Unix seconds.
    pub iat: i64,
    /// The result code's name, its gateway code, and whether the card was usable.
    pub res: String,
    pub src: String,
    pub usable: bool,
    /// How the identity was established, and what the chip proved.
    pub ev: EvidenceClaim,
    /// The audit record written for the check, and the client's request id.
    pub rec: String,
    pub req: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceClaim {
    pub method: String,
    pub passive: bool,
    pub chip: bool,
    pub active: bool,
    /// The backend's own verdict on a presence proof ("verified" or "failed"); absent when none
    /// was offered, so tokens without one keep their earlier shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("not a proof token: {0}")]
    Malformed(&'static str),
    #[error("signed with key {0}, which is not among the trusted keys")]
    UnknownKey(String),
    #[error("the signature does not match: the token was altered or forged")]
    BadSignature,
}

pub struct ProofSigner {
    pair: Ed25519KeyPair,
    kid: String,
    /// The encoded header, the same in every token this key signs.
    header: String,
}

fn key_id(public_key: &[u8]) -> String {
    hex::encode(&digest::digest(&digest::SHA256, public_key).as_ref()[..8])
}

impl ProofSigner {
    pub fn new(pair: Ed25519KeyPair) -> Self {
        let kid = key_id(pair.public_key().as_ref());
        let header = Header {
            alg: "EdDSA".into(),
            typ: TYPE.into(),
            kid: kid.clone(),
        };
        let header = B64.encode(serde_json::to_vec(&header).expect("header serialises"));
        Self { pair, kid, header }
    }

    /// Writes this key's public half into `dir` as `<kid>.pub`, beside the retired ones.
    pub fn publish(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        let path = dir.join(format!("{}.pub", self.kid));
        if !path.exists() {
            std::fs::write(
                &path,
                format!("{}\n", hex::encode(self.pair.public_key().as_ref())),
            )
            .map_err(|source| KeyError::Io { path, source })?;
        }
        Ok(())
    }

    /// The token for `claims`, built in one string: the header is encoded once per key, and
    /// the signature is appended to the signing input it covers.
    pub fn sign(&self, claims: &ProofClaims) -> String {
        let claims = serde_json::to_vec(claims).expect("claims serialise");
        // base64url: 4 characters per 3 bytes; an Ed25519 signature is 64 bytes (86 characters).
        let mut token = String::with_capacity(self.header.len() + claims.len() * 4 / 3 + 92);
        token.push_str(&self.header);
        token.push('.');
        B64.encode_string(&claims, &mut token);
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        B64.encode_string(signature.as_ref(), &mut token);
        token
    }
}

/// Verifies tokens with public keys only: what an auditor runs.
#[derive(Default)]
pub struct ProofVerifier {
    keys: HashMap<String, Vec<u8>>,
}

impl ProofVerifier {
    /// Every `<kid>.pub` in `dir`.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| KeyError::Io {
                    path: dir.into(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "pub") {
                let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
                    path: path.clone(),
                    source,
                })?;
                let key = hex::decode(text.trim()).map_err(|_| KeyError::Invalid(path.clone()))?;
                keys.insert(key_id(&key), key);
            }
        }
        Ok(Self { keys })
    }

    pub fn verify(&self, token: &str) -> Result<ProofClaims, ProofError> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProofError::Malformed(
                "three base64url parts separated by dots",
            ));
        };
        let decode = |part: &str| {
            B64.decode(part)
                .map_err(|_| ProofError::Malformed("bad base64url"))
        };
        let parsed: Header = serde_json::from_slice(&decode(header)?)
            .map_err(|_| ProofError::Malformed("bad header"))?;
        if parsed.alg != "EdDSA" || parsed.typ != TYPE {
            return Err(ProofError::Malformed("not an EdDSA bhyt proof"));
        }
        let key = self
            .keys
            .get(&parsed.kid)
            .ok_or_else(|| ProofError::UnknownKey(parsed.kid.clone()))?;
        let signing_input = &token.trim()[..header.len() + 1 + claims.len()];
        UnparsedPublicKey::new(&ED25519, key)
            .verify(signing_input.as_bytes(), &decode(signature)?)
            .map_err(|_| ProofError::BadSignature)?;
        serde_json::from_slice(&decode(claims)?).map_err(|_| ProofError::Malformed("bad claims"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ProofClaims {
        ProofClaims {
            sub: "ab".repeat(32),
            fac: "01821".into(),
            sta: "desk-1".into(),
            op: "cd".repeat(32),
            iat: 1_790_000_000,
            res: "CARD_VALID".into(),
            src: "000".into(),
            usable: true,
            ev: EvidenceClaim {
                method: "IDENTITY_METHOD_CHIP".into(),
                passive: true,
                chip: false,
                active: true,
                presence: Some("verified".into()),
            },
            rec: "r-00".into(),
            req: "req-1".into(),
        }
    }

    #[test]
    fn verifies_and_refuses_any_altered_byte() {
        let dir = tempfile::tempdir().unwrap();
        let signer = ProofSigner::new(crate::keys::signing_key(dir.path(), "proof").unwrap());
        signer.publish(&dir.path().join("pub")).unwrap();
        let verifier = ProofVerifier::load(&dir.path().join("pub")).unwrap();
        let token = signer.sign(&claims());
        assert_eq!(verifier.verify(&token).unwrap(), claims());
        for i in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            if altered != token {
                assert!(
                    verifier.verify(&altered).is_err(),
                    "byte {i} altered and still verified"
                );
            }
        }
        assert!(
            ProofVerifier::default()
                .verify(&token)
                .unwrap_err()
                .to_string()
                .contains("not among")
        );
    }
}
