//! The chip's side of Chip Authentication with ECDH (ICAO 9303-11, 6.2), written apart from the
//! terminal's `ca` module: it parses the commands with the card's own TLV helpers and computes
//! the shared point with RustCrypto's curve arithmetic directly; it shares only the validated
//! key derivation of `crypto`.
//!
//! The card holds a static key pair whose public half it serves in DG14. On MSE:Set AT and
//! GENERAL AUTHENTICATE (AES suites) or MSE:Set KAT (3DES) it derives new session keys; the
//! virtual card switches to them after protecting this answer under the old ones.
//!
//! [`VirtualCa::clone_of`] makes a clone: the genuine card's DG14, a key of its own. It answers
//! every step with 90 00, but its keys differ from the terminal's.

use der::Encode;
use der::asn1::ObjectIdentifier;
use elliptic_curve::group::Curve as _;
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytesSize, Generate, NonZeroScalar, PublicKey,
};
use zeroize::Zeroizing;

use super::PlainCommand;
use super::sm::{put, split};
use crate::crypto::{Cipher, SessionKeys};
use crate::lds::build;
use crate::lds::dg14::{DG14_TAG, ID_PK_ECDH};
use crate::pace::DomainCurve;
use crate::tlv::{self, Tag};

const OK: u16 = 0x9000;
const WRONG_DATA: u16 = 0x6A80;
const WRONG_P1P2: u16 = 0x6A86;
const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;

/// The static key on one concrete curve.
trait StaticKey: Send {
    /// The public point, uncompressed.
    fn public(&self) -> Vec<u8>;
    /// The x-coordinate of the shared point with a terminal's key; `None` for an invalid point.
    fn agree(&self, peer: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
    /// A fresh key on the same curve.
    fn fresh(&self) -> Box<dyn StaticKey>;
}

struct Key<C: CurveArithmetic>(NonZeroScalar<C>);

impl<C> StaticKey for Key<C>
where
    C: CurveArithmetic + 'static,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    NonZeroScalar<C>: Send,
{
    fn public(&self) -> Vec<u8> {
        PublicKey::from_secret_scalar(&self.0)
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }

    fn agree(&self, peer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if peer.first() != Some(&0x04) {
            return None;
        }
        let peer = PublicKey::<C>::from_sec1_bytes(peer).ok()?;
        let shared = (peer.to_projective() * *self.0).to_affine();
        let encoded = shared.to_sec1_point(false);
        let bytes = encoded.as_bytes();
        let field = (bytes.len().checked_sub(1)?) / 2;
        (bytes.first() == Some(&0x04)).then(|| Zeroizing::new(bytes[1..1 + field].to_vec()))
    }

    fn fresh(&self) -> Box<dyn StaticKey> {
        Box::new(Key::<C>(
            NonZeroScalar::<C>::try_generate().expect("system RNG"),
        ))
    }
}

fn generate(curve: DomainCurve) -> Box<dyn StaticKey> {
    match curve {
        DomainCurve::NistP256 => Box::new(Key::<p256::NistP256>(
            NonZeroScalar::try_generate().expect("system RNG"),
        )),
        DomainCurve::BrainpoolP256r1 => Box::new(Key::<bp256::BrainpoolP256r1>(
            NonZeroScalar::try_generate().expect("system RNG"),
        )),
        DomainCurve::BrainpoolP384r1 => Box::new(Key::<bp384::BrainpoolP384r1>(
            NonZeroScalar::try_generate().expect("system RNG"),
        )),
    }
}

/// Named-curve OID of a domain curve.
fn curve_oid(curve: DomainCurve) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(match curve {
        DomainCurve::NistP256 => "1.2.840.10045.3.1.7",
        DomainCurve::BrainpoolP256r1 => "1.3.36.3.3.2.8.1.1.7",
        DomainCurve::BrainpoolP384r1 => "1.3.36.3.3.2.8.1.1.11",
    })
}

/// The card's Chip Authentication: its static key, its suite, and the DG14 it serves.
pub struct VirtualCa {
    cipher: Cipher,
    key: Box<dyn StaticKey>,
    dg14: Vec<u8>,
    /// MSE:Set AT accepted, GENERAL AUTHENTICATE expected.
    armed: bool,
}

impl std::fmt::Debug for VirtualCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualCa({:?}, <private key>)", self.cipher)
    }
}

impl VirtualCa {
    /// A fresh static key on `curve` for id-CA-ECDH with `cipher`, version 1.
    ///
    /// # Panics
    /// When the operating system's generator fails (test fixture).
    pub fn new(cipher: Cipher, curve: DomainCurve) -> Self {
        let curve_der = curve_oid(curve).to_der().unwrap_or_default();
        Self::with_parameters(cipher, curve, &curve_der)
    }

    /// As [`VirtualCa::new`], DG14 giving the key's EC parameters as `parameters` (DER), e.g.
    /// `curve`'s explicit form, as some issuers write them.
    ///
    /// # Panics
    /// When the operating system's generator fails, or `parameters` is not one DER element.
    pub fn with_parameters(cipher: Cipher, curve: DomainCurve, parameters: &[u8]) -> Self {
        let key = generate(curve);
        let spki = build::public_key_info(
            crate::lds::dg15::EC_PUBLIC_KEY,
            Some(parameters),
            &key.public(),
        )
        .expect("EC key info encodes");
        let dg14 = dg14_ca(&spki, &protocol(cipher));
        VirtualCa {
            cipher,
            key,
            dg14,
            armed: false,
        }
    }

    /// The CCCD's suite: AES-128 on brainpoolP256r1.
    pub fn cccd() -> Self {
        Self::new(Cipher::Aes128, DomainCurve::BrainpoolP256r1)
    }

    /// A clone of `genuine`: its DG14, a fresh key.
    pub fn clone_of(genuine: &VirtualCa) -> Self {
        VirtualCa {
            cipher: genuine.cipher,
            key: genuine.key.fresh(),
            dg14: genuine.dg14.clone(),
            armed: false,
        }
    }

    /// DG14 with the ChipAuthenticationInfo and the public key (for a clone: the genuine one's).
    pub fn dg14(&self) -> &[u8] {
        &self.dg14
    }

    /// Processes MSE:Set AT / Set KAT or GENERAL AUTHENTICATE received under secure messaging.
    /// Returns the answer and, when keys were agreed, the new session keys.
    pub(crate) fn process(
        &mut self,
        cmd: &PlainCommand<'_>,
    ) -> (Vec<u8>, u16, Option<SessionKeys>) {
        match self.step(cmd) {
            Ok(answer) => answer,
            Err(sw) => {
                self.armed = false;
                (Vec::new(), sw, None)
            }
        }
    }

    fn step(&mut self, cmd: &PlainCommand<'_>) -> Result<(Vec<u8>, u16, Option<SessionKeys>), u16> {
        match (cmd.ins, cmd.p1, cmd.p2) {
            (0x22, 0x41, 0xA4) => {
                let objects = objects(cmd.data)?;
                let named = objects.iter().find(|(t, _)| *t == 0x80).map(|(_, v)| *v);
                if named != Some(protocol(self.cipher).as_bytes())
                    || self.cipher == Cipher::TripleDes
                {
                    return Err(WRONG_DATA);
                }
                self.armed = true;
                Ok((Vec::new(), OK, None))
            }
            (0x22, 0x41, 0xA6) => {
                if self.cipher != Cipher::TripleDes {
                    return Err(WRONG_DATA);
                }
                let objects = objects(cmd.data)?;
                let peer = objects
                    .iter()
                    .find(|(t, _)| *t == 0x91)
                    .map(|(_, v)| *v)
                    .ok_or(WRONG_DATA)?;
                let keys = self.agree(peer)?;
                Ok((Vec::new(), OK, Some(keys)))
            }
            (0x86, 0x00, 0x00) => {
                if !std::mem::take(&mut self.armed) {
                    return Err(CONDITIONS_NOT_SATISFIED);
                }
                let (tag, inner, _, rest) = split(cmd.data).ok_or(WRONG_DATA)?;
                if tag != 0x7C || !rest.is_empty() {
                    return Err(WRONG_DATA);
                }
                let objects = objects(inner)?;
                let peer = match objects.as_slice() {
                    [(0x80, peer)] => *peer,
                    _ => return Err(WRONG_DATA),
                };
                let keys = self.agree(peer)?;
                Ok((vec![0x7C, 0x00], OK, Some(keys)))
            }
            _ => Err(WRONG_P1P2),
        }
    }

    fn agree(&self, peer: &[u8]) -> Result<SessionKeys, u16> {
        let x = self.key.agree(peer).ok_or(WRONG_DATA)?;
        Ok(SessionKeys::derive(self.cipher, &x))
    }
}

fn objects(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, u16> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tag, value, _, rest) = split(data).ok_or(WRONG_DATA)?;
        out.push((tag, value));
        data = rest;
    }
    Ok(out)
}

/// id-CA-ECDH-3DES-CBC-CBC (…3.2.1) or id-CA-ECDH-AES-CBC-CMAC-128/192/256 (…3.2.2..4).
fn protocol(cipher: Cipher) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(match cipher {
        Cipher::TripleDes => "0.4.0.127.0.7.2.2.3.2.1",
        Cipher::Aes128 => "0.4.0.127.0.7.2.2.3.2.2",
        Cipher::Aes192 => "0.4.0.127.0.7.2.2.3.2.3",
        Cipher::Aes256 => "0.4.0.127.0.7.2.2.3.2.4",
    })
}

/// DG14 with ChipAuthenticationInfo { protocol, version 1 } and the id-PK-ECDH key.
fn dg14_ca(spki: &[u8], protocol: &ObjectIdentifier) -> Vec<u8> {
    let mut info = protocol.to_der().unwrap_or_default();
    info.extend(1u8.to_der().unwrap_or_default());
    let mut key = ID_PK_ECDH.to_der().unwrap_or_default();
    key.extend_from_slice(spki);
    let mut set = Vec::new();
    put(&mut set, 0x30, &info);
    put(&mut set, 0x30, &key);
    tlv::encoded(DG14_TAG, &tlv::encoded(Tag::new(0x31), &set))
}
