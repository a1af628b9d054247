//! Chip Authentication, the terminal's side (ICAO 9303-11, 6.2), ECDH: the terminal sends an
//! ephemeral public key, both sides compute the shared point with the chip's static key from DG14,
//! and secure messaging restarts under keys derived from its x-coordinate (counter zero).
//!
//! Only a chip holding DG14's private key reaches the same keys, so a clone that copied DG14 is
//! caught by the secure messaging itself: the command sent under the new keys fails its MAC
//! check on the clone (it answers 69 88) or the clone's answer fails the terminal's. This module
//! sends that command at once (SELECT of the application) and reports Chip Authentication only
//! when its protected answer verifies. The proof convinces this terminal alone (nothing a third
//! party can check later; Active Authentication gives that), and it proves the chip is genuine
//! only once passive authentication has shown DG14 itself was signed by the issuer.
//!
//! Commands, both under the current secure channel: AES suites use MSE:Set AT (00 22 41 A4,
//! DO80 protocol, DO84 key id) and GENERAL AUTHENTICATE (00 86 00 00, `7C { 80 key }`, answer
//! `7C 00`); the 3DES suite of version 1 uses MSE:Set KAT (00 22 41 A6, DO91 key, DO84 key id).

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode, Tag, TagNumber};
use spki::SubjectPublicKeyInfoRef;

use crate::apdu::{ApduError, CommandApdu, StatusWord};
use crate::crypto::{Cipher, SessionKeys};
use crate::lds::dg14::{Dg14, ID_CA_ECDH, ID_PK_ECDH, is_under};
use crate::pace::DomainCurve;
use crate::pace::ec::{self, EcError};
use crate::reader::{ReadError, Reader};
use crate::sm::SecureChannel;
use crate::stats::Phase;
use crate::transport::{Transport, TransportError};

/// A Le whose protected answer fits a short APDU under every cipher.
const SHORT_LE: usize = 223;

/// id-ecPublicKey.
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// Named curves a Chip Authentication key may name.
const NAMED_CURVES: [(&str, DomainCurve); 3] = [
    ("1.2.840.10045.3.1.7", DomainCurve::NistP256),
    ("1.3.36.3.3.2.8.1.1.7", DomainCurve::BrainpoolP256r1),
    ("1.3.36.3.3.2.8.1.1.11", DomainCurve::BrainpoolP384r1),
];

/// Why Chip Authentication did not complete.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// DG14 offers no ECDH Chip Authentication this library runs (DH, or an unknown suite).
    #[error("DG14 offers no supported Chip Authentication")]
    Unsupported,
    /// The chip's key gives its curve by explicit parameters that name no supported curve, or
    /// the caller gave no resolver for them (`cccd-authenticity` matches explicit parameters
    /// field by field; see [`CaParams::from_dg14_resolving`]).
    #[error("Chip Authentication key has explicit curve parameters of no supported curve")]
    ExplicitParameters,
    /// The chip's key is malformed or not a point on its curve.
    #[error("Chip Authentication key is not a valid point")]
    InvalidKey,
    /// The card refused a step with this status word.
    #[error("card refused Chip Authentication ({0})")]
    Refused(StatusWord),
    /// The card's answer to GENERAL AUTHENTICATE is not `7C 00`.
    #[error("malformed Chip Authentication response")]
    MalformedResponse,
    /// The first exchange under the new keys failed: the chip does not hold DG14's private key
    /// (a clone), or the answer was forged. The channel is closed.
    #[error("chip failed Chip Authentication: {0}")]
    NotAuthenticated(ReadError),
    /// An exchange before the key switch failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Random,
}

impl From<ApduError> for CaError {
    fn from(e: ApduError) -> Self {
        CaError::Read(e.into())
    }
}

impl From<EcError> for CaError {
    fn from(e: EcError) -> Self {
        match e {
            EcError::Random => CaError::Random,
            _ => CaError::InvalidKey,
        }
    }
}

/// What Chip Authentication ran with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaParams {
    /// id-CA-ECDH-* (cipher and MAC of the new channel).
    pub protocol: ObjectIdentifier,
    pub version: u8,
    pub cipher: Cipher,
    pub curve: DomainCurve,
    /// The chip's static public point (uncompressed).
    pub chip_key: Vec<u8>,
    pub key_id: Option<u32>,
}

/// What the agent shows: "chip authenticated (CA, AES-128, BrainpoolP256r1)".
impl std::fmt::Display for CaParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cipher = match self.cipher {
            Cipher::TripleDes => "3DES",
            Cipher::Aes128 => "AES-128",
            Cipher::Aes192 => "AES-192",
            Cipher::Aes256 => "AES-256",
        };
        write!(f, "chip authenticated (CA, {cipher}, {:?})", self.curve)
    }
}

/// The cipher an id-CA-ECDH-* protocol names (last arc: 1 3DES, 2..4 AES-128/192/256).
fn cipher_of(protocol: &ObjectIdentifier) -> Option<Cipher> {
    if !is_under(protocol, &ID_CA_ECDH) {
        return None;
    }
    Some(match protocol.as_bytes().last()? {
        1 => Cipher::TripleDes,
        2 => Cipher::Aes128,
        3 => Cipher::Aes192,
        4 => Cipher::Aes256,
        _ => return None,
    })
    .filter(|_| protocol.as_bytes().len() == ID_CA_ECDH.as_bytes().len() + 1)
}

impl CaParams {
    /// The ECDH Chip Authentication DG14 offers, its key on a named curve.
    pub fn from_dg14(dg14: &Dg14<'_>) -> Result<Self, CaError> {
        Self::pick(dg14, None)
    }

    /// As [`CaParams::from_dg14`], a key given by explicit parameters taking the curve
    /// `resolve` finds for them (their DER). Named curves are matched here, never by `resolve`.
    pub fn from_dg14_resolving(
        dg14: &Dg14<'_>,
        resolve: impl Fn(&[u8]) -> Option<DomainCurve>,
    ) -> Result<Self, CaError> {
        Self::pick(dg14, Some(&resolve))
    }

    fn pick(
        dg14: &Dg14<'_>,
        resolve: Option<&dyn Fn(&[u8]) -> Option<DomainCurve>>,
    ) -> Result<Self, CaError> {
        let infos: Vec<_> = dg14
            .chip_authentication()
            .filter_map(|i| cipher_of(&i.protocol).map(|c| (i, c)))
            .collect();
        let keys: Vec<_> = dg14
            .chip_authentication_keys()
            .filter(|k| k.protocol == ID_PK_ECDH)
            .collect();
        // Pair an info with a key: by key id, or the only key when the info names none. Where
        // several pairs exist (a chip may offer more than one key), the strongest cipher wins,
        // the first listed on a tie: refusing a choice would refuse a genuine chip.
        let keys = &keys;
        let (info, cipher, key) = infos
            .iter()
            .flat_map(|(info, cipher)| {
                keys.iter()
                    .filter(move |k| {
                        k.key_id == info.key_id || (keys.len() == 1 && info.key_id.is_none())
                    })
                    .map(move |k| (*info, *cipher, *k))
            })
            .rev()
            .max_by_key(|(_, cipher, _)| strength(*cipher))
            .ok_or(CaError::Unsupported)?;
        let spki = SubjectPublicKeyInfoRef::from_der(key.public_key_info)
            .map_err(|_| CaError::InvalidKey)?;
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(CaError::Unsupported);
        }
        let parameters = spki.algorithm.parameters.ok_or(CaError::InvalidKey)?;
        let curve = match parameters.decode_as::<ObjectIdentifier>() {
            Ok(oid) => NAMED_CURVES
                .iter()
                .find(|(s, _)| ObjectIdentifier::new(s).is_ok_and(|o| o == oid))
                .map(|(_, c)| *c)
                .ok_or(CaError::Unsupported)?,
            Err(_) => {
                let der = parameters.to_der().map_err(|_| CaError::InvalidKey)?;
                resolve
                    .and_then(|resolve| resolve(&der))
                    .ok_or(CaError::ExplicitParameters)?
            }
        };
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or(CaError::InvalidKey)?;
        ec::validate(curve, point)?;
        Ok(CaParams {
            protocol: info.protocol,
            version: info.version,
            cipher,
            curve,
            chip_key: point.to_vec(),
            key_id: info.key_id.or(key.key_id),
        })
    }
}

/// Runs Chip Authentication over the reader's open secure channel and, on success, leaves the
/// reader on the new channel. Returns the parameters it ran with, for the agent to show "chip
/// authenticated (CA)". The application must be selected.
pub fn chip_authenticate<T: Transport>(
    reader: &mut Reader<T>,
    params: &CaParams,
) -> Result<CaParams, CaError> {
    if !reader.is_secure() {
        return Err(ReadError::NoSecureChannel.into());
    }
    let curve = params.curve;
    ec::validate(curve, &params.chip_key)?;
    let sk = ec::random_scalar(curve)?;
    let pk = ec::multiply(curve, &sk, None)?;
    let key_id = params.key_id.map(key_reference);

    if params.cipher == Cipher::TripleDes {
        let mut data = object(context(0x11), &pk)?;
        if let Some(id) = &key_id {
            data.extend(object(context(4), id)?);
        }
        let kat = CommandApdu::new(0x00, 0x22, 0x41, 0xA6).with_data(data);
        let response = reader.exchange(&kat, Phase::Authentication)?;
        if !response.sw.is_success() {
            return Err(CaError::Refused(response.sw));
        }
    } else {
        let mut data = object(context(0), params.protocol.as_bytes())?;
        if let Some(id) = &key_id {
            data.extend(object(context(4), id)?);
        }
        let set_at = CommandApdu::new(0x00, 0x22, 0x41, 0xA4).with_data(data);
        let response = reader.exchange(&set_at, Phase::Authentication)?;
        if !response.sw.is_success() {
            return Err(CaError::Refused(response.sw));
        }
        let dynamic = object(application(28), &object(context(0), &pk)?)?;
        let general_authenticate = |le| {
            CommandApdu::new(0x00, 0x86, 0x00, 0x00)
                .with_data(dynamic.clone())
                .with_le(le)
        };
        // Le 256 makes the protected command extended; a reader that refuses extended APDUs gets
        // it again with a short Le (the answer is two bytes; the refused command never reached
        // the card, so the counters are in step).
        let response = match reader.exchange(&general_authenticate(256), Phase::Authentication) {
            Err(ReadError::Transport(TransportError::Rejected)) => {
                reader.exchange(&general_authenticate(SHORT_LE), Phase::Authentication)?
            }
            other => other?,
        };
        if !response.sw.is_success() {
            return Err(CaError::Refused(response.sw));
        }
        if response.data != [0x7C, 0x00] {
            return Err(CaError::MalformedResponse);
        }
    }

    let shared = ec::multiply(curve, &sk, Some(&params.chip_key))?;
    let keys = SessionKeys::derive(params.cipher, ec::x_coordinate(curve, &shared)?);
    let ssc = vec![0; params.cipher.block_size()];
    let channel = SecureChannel::new(keys, &ssc).map_err(|_| CaError::MalformedResponse)?;
    reader.set_channel(channel);
    // The proof: the first exchange under the new keys must verify both ways.
    match reader.select_application() {
        Ok(()) => Ok(params.clone()),
        Err(e) => {
            reader.close_channel();
            Err(CaError::NotAuthenticated(e))
        }
    }
}

/// Preference among offered suites.
fn strength(cipher: Cipher) -> u8 {
    match cipher {
        Cipher::TripleDes => 0,
        Cipher::Aes128 => 1,
        Cipher::Aes192 => 2,
        Cipher::Aes256 => 3,
    }
}

/// A key id as the shortest big-endian integer (DO84 content).
fn key_reference(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    bytes[start..].to_vec()
}

fn object(tag: Tag, value: &[u8]) -> Result<Vec<u8>, CaError> {
    AnyRef::new(tag, value)
        .and_then(|a| a.to_der())
        .map_err(|_| CaError::MalformedResponse)
}

const fn context(number: u32) -> Tag {
    Tag::ContextSpecific {
        constructed: false,
        number: TagNumber(number),
    }
}

const fn application(number: u32) -> Tag {
    Tag::Application {
        constructed: true,
        number: TagNumber(number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lds::{build, dg14};
    use crate::tlv;

    /// A valid point on brainpoolP256r1 in a named-curve key info.
    fn key_info() -> Vec<u8> {
        let point = ec::multiply(DomainCurve::BrainpoolP256r1, &[7], None).unwrap();
        let curve = ObjectIdentifier::new_unwrap("1.3.36.3.3.2.8.1.1.7")
            .to_der()
            .unwrap();
        build::public_key_info(ID_EC_PUBLIC_KEY, Some(&curve), &point).unwrap()
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv::encoded(tlv::Tag::new(0x30), &parts.concat())
    }

    fn oid(s: &str) -> Vec<u8> {
        ObjectIdentifier::new_unwrap(s).to_der().unwrap()
    }

    fn int(n: u32) -> Vec<u8> {
        n.to_der().unwrap()
    }

    #[test]
    fn two_keys_with_ids_pair_by_id_and_the_stronger_suite_wins() {
        let infos = [
            seq(&[oid("0.4.0.127.0.7.2.2.3.2.2"), int(1), int(1)]),
            seq(&[oid("0.4.0.127.0.7.2.2.3.2.4"), int(1), int(2)]),
            seq(&[ID_PK_ECDH.to_der().unwrap(), key_info(), int(1)]),
            seq(&[ID_PK_ECDH.to_der().unwrap(), key_info(), int(2)]),
            // A DH offer is not run.
            seq(&[oid("0.4.0.127.0.7.2.2.3.1.2"), int(1), int(3)]),
        ];
        let bytes = tlv::encoded(
            dg14::DG14_TAG,
            &tlv::encoded(tlv::Tag::new(0x31), &infos.concat()),
        );
        let parsed = dg14::parse(&bytes).unwrap();
        let params = CaParams::from_dg14(&parsed).unwrap();
        assert_eq!((params.cipher, params.key_id), (Cipher::Aes256, Some(2)));
        assert_eq!(
            params.to_string(),
            "chip authenticated (CA, AES-256, BrainpoolP256r1)"
        );
        assert_eq!(key_reference(2), [2]);
        assert_eq!(key_reference(0x0102), [1, 2]);
        assert_eq!(key_reference(0), [0]);
    }

    #[test]
    fn unknown_suites_are_not_offers() {
        assert_eq!(
            cipher_of(&ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2.5")),
            None
        );
        assert_eq!(
            cipher_of(&ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2.2.1")),
            None
        );
        assert_eq!(
            cipher_of(&ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.1.2")),
            None
        );
        assert_eq!(
            cipher_of(&ObjectIdentifier::new_unwrap("0.4.0.127.0.7.2.2.3.2.1")),
            Some(Cipher::TripleDes)
        );
    }

    #[test]
    fn mutated_dg14s_never_panic() {
        let genuine = crate::virtual_card::ca::VirtualCa::cccd().dg14().to_vec();
        assert!(CaParams::from_dg14(&dg14::parse(&genuine).unwrap()).is_ok());
        for i in 0..genuine.len() {
            for x in [0x01u8, 0x80, 0xFF] {
                let mut bytes = genuine.clone();
                bytes[i] ^= x;
                if let Ok(parsed) = dg14::parse(&bytes) {
                    let _ = CaParams::from_dg14(&parsed);
                    let _ = CaParams::from_dg14_resolving(&parsed, |_| Some(DomainCurve::NistP256));
                }
            }
        }
    }
}
