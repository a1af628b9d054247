//! Which PACE variant to run: PACEInfo (and PACEDomainParameterInfo) from EF.CardAccess
//! (ICAO 9303 Part 11, 9.2), or the CCCD's known suite when the file cannot be had.
//!
//! EF.CardAccess is `SecurityInfos ::= SET OF SecurityInfo`, each
//! `SEQUENCE { protocol OBJECT IDENTIFIER, requiredData ANY, optionalData ANY OPTIONAL }`. Only
//! PACE entries matter here; others (Terminal or Chip Authentication) are skipped, and so is any
//! PACE entry this library cannot run (Integrated or Chip Authentication Mapping, finite-field
//! groups, curves given by explicit parameters). OIDs are compared by their encoded content, so an
//! unknown protocol of any length costs nothing.

use der::{Decode, Reader, SliceReader, Tag, Tagged, asn1::AnyRef};

use super::ec::DomainCurve;
use crate::crypto::Cipher;

/// id-PACE: 0.4.0.127.0.7.2.2.4 (BSI TR-03110), as encoded OID content.
const ID_PACE: [u8; 8] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04];
/// Arc under id-PACE for ECDH with Generic Mapping.
const ECDH_GM: u8 = 2;
/// standardizedDomainParameters: 0.4.0.127.0.7.1.2.
const STANDARDIZED_DOMAIN_PARAMETERS: [u8; 7] = [0x04, 0x00, 0x7F, 0x00, 0x07, 0x01, 0x02];
/// id-ecPublicKey: 1.2.840.10045.2.1.
const ID_EC_PUBLIC_KEY: [u8; 7] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// Named curves a PACEDomainParameterInfo may give instead of a standardized id.
const NAMED_CURVES: [(&[u8], DomainCurve); 3] = [
    (
        &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
        DomainCurve::NistP256,
    ),
    (
        &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07],
        DomainCurve::BrainpoolP256r1,
    ),
    (
        &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B],
        DomainCurve::BrainpoolP384r1,
    ),
];
/// Parameter ids 0-31 are standardized; 32 and above name a PACEDomainParameterInfo.
const PROPRIETARY_FROM: u32 = 32;

/// EF.CardAccess is not a well-formed SecurityInfos structure.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardAccessError {
    /// Not a DER SET of SEQUENCEs each starting with an OID.
    #[error("EF.CardAccess is not a well-formed SecurityInfos set")]
    Malformed,
}

impl From<der::Error> for CardAccessError {
    fn from(_: der::Error) -> Self {
        CardAccessError::Malformed
    }
}

/// The PACE variant to run: ECDH Generic Mapping with `cipher` on `curve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceParams {
    cipher: Cipher,
    curve: DomainCurve,
    /// Parameter id to name in MSE:Set AT (DO84) when the card offers more than one set.
    domain_reference: Option<u8>,
}

impl PaceParams {
    /// What CCCDs declare and what is assumed when EF.CardAccess cannot be read:
    /// id-PACE-ECDH-GM-AES-CBC-CMAC-128, version 2, standardized domain parameter 13
    /// (brainpoolP256r1).
    pub const CCCD: PaceParams = PaceParams {
        cipher: Cipher::Aes128,
        curve: DomainCurve::BrainpoolP256r1,
        domain_reference: None,
    };

    /// ECDH Generic Mapping with the given cipher and curve.
    pub const fn ecdh_gm(cipher: Cipher, curve: DomainCurve) -> Self {
        PaceParams {
            cipher,
            curve,
            domain_reference: None,
        }
    }

    /// Cipher of the password key, the tokens and the secure channel.
    pub const fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Curve of the mapping and the key agreement.
    pub const fn curve(&self) -> DomainCurve {
        self.curve
    }

    /// Parameter id sent in DO84 of MSE:Set AT, when the card's choice would be ambiguous.
    pub const fn domain_reference(&self) -> Option<u8> {
        self.domain_reference
    }

    /// Content bytes of the protocol OID, id-PACE-ECDH-GM-{3DES-CBC-CBC, AES-CBC-CMAC-128, -192,
    /// -256}: sent in MSE:Set AT and authenticated in both tokens.
    pub fn protocol_oid(&self) -> [u8; 10] {
        let last = match self.cipher {
            Cipher::TripleDes => 1,
            Cipher::Aes128 => 2,
            Cipher::Aes192 => 3,
            Cipher::Aes256 => 4,
        };
        let mut oid = [0; 10];
        oid[..8].copy_from_slice(&ID_PACE);
        oid[8] = ECDH_GM;
        oid[9] = last;
        oid
    }

    /// The preferred PACE variant EF.CardAccess declares and this library runs: AES-128 first
    /// (the CCCD's), then AES-256, AES-192, 3DES. `Ok(None)` when the file is well formed but
    /// declares nothing runnable (only PACEInfo version 2 counts). Trailing bytes after the SET
    /// (file padding) are ignored.
    pub fn from_card_access(bytes: &[u8]) -> Result<Option<Self>, CardAccessError> {
        let mut reader = SliceReader::new(bytes)?;
        let set: AnyRef<'_> = reader.decode()?;
        if set.tag() != Tag::Set {
            return Err(CardAccessError::Malformed);
        }
        let mut infos = Vec::new();
        let mut domains = Vec::new();
        let mut entries = SliceReader::new(set.value())?;
        while !entries.is_finished() {
            let entry: AnyRef<'_> = entries.decode()?;
            match security_info(entry)? {
                Some(Entry::Pace(info)) => infos.push(info),
                Some(Entry::Domain(domain)) => domains.push(domain),
                None => {}
            }
        }
        // Several parameter sets make the card's choice ambiguous: then DO84 names ours.
        let mut ids: Vec<Option<u32>> = infos.iter().map(|i| i.parameter_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let ambiguous = ids.len() > 1;

        let mut best: Option<PaceParams> = None;
        for info in &infos {
            let Some(curve) = resolve_curve(info.parameter_id, &domains) else {
                continue;
            };
            let proprietary = info.parameter_id.is_none_or(|id| id >= PROPRIETARY_FROM);
            let domain_reference = if ambiguous || proprietary {
                match info.parameter_id.map(u8::try_from) {
                    Some(Ok(id)) => Some(id),
                    // No id to name the set with, or one too large for DO84's one byte.
                    Some(Err(_)) => continue,
                    None if ambiguous => continue,
                    None => None,
                }
            } else {
                None
            };
            let candidate = PaceParams {
                cipher: info.cipher,
                curve,
                domain_reference,
            };
            if best.is_none_or(|b| rank(&candidate) < rank(&b)) {
                best = Some(candidate);
            }
        }
        Ok(best)
    }
}

/// Lower is preferred.
fn rank(p: &PaceParams) -> (u8, u8) {
    let cipher = match p.cipher {
        Cipher::Aes128 => 0,
        Cipher::Aes256 => 1,
        Cipher::Aes192 => 2,
        Cipher::TripleDes => 3,
    };
    let curve = match p.curve {
        DomainCurve::BrainpoolP256r1 => 0,
        DomainCurve::NistP256 => 1,
        DomainCurve::BrainpoolP384r1 => 2,
    };
    (cipher, curve)
}

/// A PACEInfo this library can run (ECDH-GM, version 2).
struct PaceInfo {
    cipher: Cipher,
    parameter_id: Option<u32>,
}

/// A PACEDomainParameterInfo for ECDH-GM whose curve is known.
struct DomainInfo {
    curve: DomainCurve,
    parameter_id: Option<u32>,
}

enum Entry {
    Pace(PaceInfo),
    Domain(DomainInfo),
}

fn security_info(entry: AnyRef<'_>) -> Result<Option<Entry>, CardAccessError> {
    if entry.tag() != Tag::Sequence {
        return Err(CardAccessError::Malformed);
    }
    let mut fields = SliceReader::new(entry.value())?;
    let protocol: AnyRef<'_> = fields.decode()?;
    if protocol.tag() != Tag::ObjectIdentifier {
        return Err(CardAccessError::Malformed);
    }
    let required: AnyRef<'_> = fields.decode()?;
    let optional: Option<AnyRef<'_>> = if fields.is_finished() {
        None
    } else {
        Some(fields.decode()?)
    };
    let oid = protocol.value();
    let Some(under_pace) = oid.strip_prefix(&ID_PACE[..]) else {
        return Ok(None);
    };
    Ok(match under_pace {
        // PACEInfo: protocol, version, parameterId OPTIONAL.
        [ECDH_GM, suite] => {
            let cipher = match suite {
                1 => Cipher::TripleDes,
                2 => Cipher::Aes128,
                3 => Cipher::Aes192,
                4 => Cipher::Aes256,
                _ => return Ok(None),
            };
            if integer(required) != Some(2) {
                return Ok(None);
            }
            let parameter_id = match optional {
                Some(any) => Some(integer(any).ok_or(CardAccessError::Malformed)?),
                None => None,
            };
            Some(Entry::Pace(PaceInfo {
                cipher,
                parameter_id,
            }))
        }
        // PACEDomainParameterInfo: protocol, AlgorithmIdentifier, parameterId OPTIONAL.
        [ECDH_GM] => {
            let parameter_id = match optional {
                Some(any) => Some(integer(any).ok_or(CardAccessError::Malformed)?),
                None => None,
            };
            domain_curve(required)?.map(|curve| {
                Entry::Domain(DomainInfo {
                    curve,
                    parameter_id,
                })
            })
        }
        _ => None,
    })
}

/// The curve an AlgorithmIdentifier names, when it names one this library knows: the
/// standardizedDomainParameters OID with an id, or id-ecPublicKey with a named-curve OID.
/// Explicit parameters are not matched (no CCCD uses them for PACE).
fn domain_curve(algorithm: AnyRef<'_>) -> Result<Option<DomainCurve>, CardAccessError> {
    if algorithm.tag() != Tag::Sequence {
        return Err(CardAccessError::Malformed);
    }
    let mut fields = SliceReader::new(algorithm.value())?;
    let oid: AnyRef<'_> = fields.decode()?;
    if oid.tag() != Tag::ObjectIdentifier || fields.is_finished() {
        return Err(CardAccessError::Malformed);
    }
    let parameters: AnyRef<'_> = fields.decode()?;
    Ok(match oid.value() {
        v if v == STANDARDIZED_DOMAIN_PARAMETERS => {
            integer(parameters).and_then(DomainCurve::from_parameter_id)
        }
        v if v == ID_EC_PUBLIC_KEY && parameters.tag() == Tag::ObjectIdentifier => NAMED_CURVES
            .iter()
            .find(|(named, _)| *named == parameters.value())
            .map(|(_, curve)| *curve),
        _ => None,
    })
}

/// Where the curve of a PACEInfo comes from: a standardized id, or the PACEDomainParameterInfo
/// with the same (proprietary) id, or the only one when the PACEInfo names none.
fn resolve_curve(parameter_id: Option<u32>, domains: &[DomainInfo]) -> Option<DomainCurve> {
    match parameter_id {
        Some(id) if id < PROPRIETARY_FROM => DomainCurve::from_parameter_id(id),
        Some(id) => domains
            .iter()
            .find(|d| d.parameter_id == Some(id))
            .map(|d| d.curve),
        None => match domains {
            [only] => Some(only.curve),
            _ => None,
        },
    }
}

fn integer(any: AnyRef<'_>) -> Option<u32> {
    if any.tag() != Tag::Integer {
        return None;
    }
    // Re-read as a complete TLV so der applies its own INTEGER rules (minimal, non-negative).
    let mut encoded = Vec::with_capacity(any.value().len() + 2);
    encoded.push(0x02);
    encoded.push(u8::try_from(any.value().len()).ok().filter(|n| *n < 0x80)?);
    encoded.extend_from_slice(any.value());
    u32::from_der(&encoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    #[test]
    fn appendix_g1_card_access() {
        // PACEInfo of ICAO 9303-11 Appendix G.1 inside its SET.
        let p = PaceParams::from_card_access(&hex("31143012060A04007F0007020204020202010202010D"))
            .unwrap()
            .unwrap();
        assert_eq!(p, PaceParams::CCCD);
        assert_eq!(p.protocol_oid().to_vec(), hex("04007F00070202040202"));
    }

    /// A DER TLV with a short-form length, to build fixtures.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        assert!(content.len() < 0x80);
        let mut out = vec![tag, content.len() as u8];
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn cccd_card_access_with_ta_and_ca() {
        // The shape CCCDs declare: TA v1, CA ECDH AES-128 (with its key reference), PACE GM
        // AES-128 on brainpoolP256r1.
        let file = hex(concat!(
            "3137",
            "300D060804007F00070202020201 01",
            "3012060A04007F0007020203020202010102 0101",
            "3012060A04007F0007020204020202010202010D"
        ));
        assert_eq!(
            PaceParams::from_card_access(&file).unwrap(),
            Some(PaceParams::CCCD)
        );
    }

    #[test]
    fn preference_and_ambiguity() {
        // 3DES on bp256 and AES-128 on P-256: AES wins, and two parameter sets need DO84.
        let file = hex(concat!(
            "3128",
            "3012060A04007F0007020204020102010202010D",
            "3012060A04007F0007020204020202010202010C"
        ));
        let p = PaceParams::from_card_access(&file).unwrap().unwrap();
        assert_eq!(p.cipher(), Cipher::Aes128);
        assert_eq!(p.curve(), DomainCurve::NistP256);
        assert_eq!(p.domain_reference(), Some(12));
    }

    #[test]
    fn proprietary_parameters_through_domain_parameter_info() {
        // PACEInfo AES-256 with parameter id 33, and a PACEDomainParameterInfo giving
        // id-ecPublicKey with the named curve brainpoolP384r1 under id 33.
        let pace_info = hex("3012060A04007F00070202040204020102020121");
        let algorithm = tlv(
            0x30,
            &[hex("06072A8648CE3D0201"), hex("06092B240303020801010B")].concat(),
        );
        let domain_info = tlv(
            0x30,
            &[hex("060904007F000702020402"), algorithm, hex("020121")].concat(),
        );
        let file = tlv(0x31, &[pace_info, domain_info].concat());
        let p = PaceParams::from_card_access(&file).unwrap().unwrap();
        assert_eq!(p.cipher(), Cipher::Aes256);
        assert_eq!(p.curve(), DomainCurve::BrainpoolP384r1);
        assert_eq!(p.domain_reference(), Some(33));
        // Standardized parameters named inside a PACEDomainParameterInfo (id 13 under id 40).
        let algorithm = tlv(0x30, &hex("060704007F00070102 02010D"));
        let domain_info = tlv(
            0x30,
            &[hex("060904007F000702020402"), algorithm, hex("020128")].concat(),
        );
        let file = tlv(
            0x31,
            &[hex("3012060A04007F00070202040202020102020128"), domain_info].concat(),
        );
        let p = PaceParams::from_card_access(&file).unwrap().unwrap();
        assert_eq!(p.curve(), DomainCurve::BrainpoolP256r1);
        assert_eq!(p.domain_reference(), Some(40));
        // The id names no domain parameter info: nothing runnable.
        let file = tlv(0x31, &hex("3012060A04007F00070202040202020102020128"));
        assert_eq!(PaceParams::from_card_access(&file), Ok(None));
    }

    #[test]
    fn nothing_runnable() {
        // Integrated Mapping only, a version-1 PACEInfo, an unsupported curve (id 14).
        for file in [
            "3114 3012060A04007F0007020204040202010202010D",
            "3114 3012060A04007F0007020204020202010102010D",
            "3114 3012060A04007F0007020204020202010202010E",
            "3114 3012060A04007F0007020204020202010402010D", // version not an INTEGER
            "3100",
        ] {
            assert_eq!(PaceParams::from_card_access(&hex(file)), Ok(None), "{file}");
        }
    }

    #[test]
    fn random_and_mutated_files_never_panic() {
        let good = hex(concat!(
            "3137",
            "300D060804007F0007020202020101",
            "3012060A04007F00070202030202020101",
            "3012060A04007F0007020204020202010202010D"
        ));
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5000 {
            let file = if round % 2 == 0 {
                let mut v = good.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % v.len();
                    v[i] = next() as u8;
                }
                v
            } else {
                let n = (next() % 64) as usize;
                let mut v: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                if let Some(first) = v.first_mut() {
                    *first = 0x31;
                }
                v
            };
            // Any outcome but a panic.
            let _ = PaceParams::from_card_access(&file);
        }
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = hex("31143012060A04007F0007020204020202010202010D");
        for cut in 0..good.len() {
            assert!(
                PaceParams::from_card_access(&good[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
        for bad in [
            "30143012060A04007F0007020204020202010202010D", // SEQUENCE, not SET
            "3114 0412060A04007F0007020204020202010202010D", // entry not a SEQUENCE
            "3114 3012040A04007F0007020204020202010202010D", // protocol not an OID
            "3114 3012060A04007F0007020204020202010202810D", // parameterId not an INTEGER
            "3184FFFFFFFF",                                 // length beyond the data
        ] {
            assert!(PaceParams::from_card_access(&hex(bad)).is_err(), "{bad}");
        }
        // Trailing padding after the SET is tolerated.
        let mut padded = good.clone();
        padded.extend([0; 8]);
        assert_eq!(
            PaceParams::from_card_access(&padded),
            Ok(Some(PaceParams::CCCD))
        );
    }
}
