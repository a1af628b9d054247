//! A test PKI built by code with x509-cert's builder, mirroring Vietnam's: a CSCA on
//! brainpoolP512r1 with explicit curve parameters (taken from Vietnam's real CSCA key) signing
//! with ecdsa-with-SHA512, and Document Signers on other curves and on RSA. For tests and demos
//! (feature `test-pki`): its keys come from fixed seeds, so it must never be trusted in
//! production.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::cert::IssuerAndSerialNumber;
use cms::signed_data::SignerIdentifier;
use emrtd::cccd::mrz::BacKeyMaterial;
use emrtd::lds::build;
use emrtd::virtual_card::aa::VirtualAa;
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};

use crate::curves::bp512::BrainpoolP512r1;
use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode};
use elliptic_curve::sec1::ToSec1Point;
use signature::hazmat::PrehashSigner;
use signature::{Keypair, Signer};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef,
};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// The start of today (UTC): certificates and CRLs are built around it, so they are current
/// whenever they are built, and the same all day.
pub fn now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 86_400)
}

pub fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Vietnam's CSCA's explicit brainpoolP512r1 parameters, DER (the SpecifiedECDomain).
pub fn vietnam_explicit_parameters() -> der::asn1::Any {
    let vn = Certificate::from_der(include_bytes!(
        "../testdata/masterlists/VN_CSCA_ePassport_2022.der"
    ))
    .expect("Vietnam's CSCA certificate decodes");
    vn.tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .parameters
        .clone()
        .expect("explicit parameters")
}

/// A key that signs, with its public key info and the signature algorithm it signs with.
#[derive(Clone)]
pub struct Key {
    pub spki: SubjectPublicKeyInfoOwned,
    pub algorithm: AlgorithmIdentifierOwned,
    sign: SignFn,
}

/// Signs a message (hashing it as the algorithm says) and returns the signature bytes.
type SignFn = std::rc::Rc<dyn Fn(&[u8]) -> Vec<u8>>;

fn ec_spki(parameters: der::asn1::Any, point: &[u8]) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ID_EC_PUBLIC_KEY,
            parameters: Some(parameters),
        },
        subject_public_key: BitString::from_bytes(point).unwrap(),
    }
}

fn named(curve: &str) -> der::asn1::Any {
    der::asn1::Any::encode_from(&ObjectIdentifier::new_unwrap(curve)).unwrap()
}

fn ecdsa_algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}

impl Key {
    /// brainpoolP512r1 with Vietnam's explicit parameters, ecdsa-with-SHA512.
    pub fn bp512_explicit(seed: u8) -> Key {
        let key = ecdsa::SigningKey::<BrainpoolP512r1>::from_slice(&[seed; 64]).unwrap();
        let point = key.verifying_key().as_affine().to_sec1_point(false);
        Key {
            spki: ec_spki(vietnam_explicit_parameters(), point.as_bytes()),
            algorithm: ecdsa_algorithm(ECDSA_SHA512),
            sign: std::rc::Rc::new(move |msg| {
                let prehash = <sha2::Sha512 as sha2::Digest>::digest(msg);
                let sig: ecdsa::Signature<BrainpoolP512r1> = key.sign_prehash(&prehash).unwrap();
                sig.to_der().as_bytes().to_vec()
            }),
        }
    }

    /// brainpoolP256r1 (named), ecdsa-with-SHA256: the CCCD chip's own curve.
    pub fn bp256(seed: u8) -> Key {
        let key = ecdsa::SigningKey::<bp256::BrainpoolP256r1>::from_slice(&[seed; 32]).unwrap();
        let point = key.verifying_key().as_affine().to_sec1_point(false);
        Key {
            spki: ec_spki(named("1.3.36.3.3.2.8.1.1.7"), point.as_bytes()),
            algorithm: ecdsa_algorithm(ECDSA_SHA256),
            sign: std::rc::Rc::new(move |msg| {
                let prehash = <sha2::Sha256 as sha2::Digest>::digest(msg);
                let sig: ecdsa::Signature<bp256::BrainpoolP256r1> =
                    key.sign_prehash(&prehash).unwrap();
                sig.to_der().as_bytes().to_vec()
            }),
        }
    }

    /// NIST P-384 (named), ecdsa-with-SHA384.
    pub fn p384(seed: u8) -> Key {
        let key = p384::ecdsa::SigningKey::from_slice(&[seed; 48]).unwrap();
        let point = key.verifying_key().as_affine().to_sec1_point(false);
        Key {
            spki: ec_spki(named("1.3.132.0.34"), point.as_bytes()),
            algorithm: ecdsa_algorithm(ECDSA_SHA384),
            sign: std::rc::Rc::new(move |msg| {
                let sig: p384::ecdsa::DerSignature = key.sign(msg);
                sig.as_bytes().to_vec()
            }),
        }
    }

    /// RSA 2048, sha256WithRSAEncryption (PKCS#1 v1.5).
    pub fn rsa() -> Key {
        let key = rsa::RsaPrivateKey::new(&mut rand::rng(), 2048).unwrap();
        let der = key.to_public_key().to_public_key_der().unwrap();
        Key {
            spki: SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap(),
            algorithm: AlgorithmIdentifierOwned {
                oid: RSA_SHA256,
                parameters: Some(der::asn1::Any::from(der::asn1::Null)),
            },
            sign: std::rc::Rc::new(move |msg| {
                let hash = <sha2::Sha256 as sha2::Digest>::digest(msg);
                key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &hash)
                    .unwrap()
            }),
        }
    }

    /// RSA 2048, sha1WithRSAEncryption: what older CSCAs still sign with.
    pub fn rsa_sha1() -> Key {
        let key = rsa::RsaPrivateKey::new(&mut rand::rng(), 2048).unwrap();
        let der = key.to_public_key().to_public_key_der().unwrap();
        Key {
            spki: SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap(),
            algorithm: AlgorithmIdentifierOwned {
                oid: RSA_SHA1,
                parameters: Some(der::asn1::Any::from(der::asn1::Null)),
            },
            sign: std::rc::Rc::new(move |msg| {
                let hash = <sha1::Sha1 as sha1::Digest>::digest(msg);
                key.sign(rsa::Pkcs1v15Sign::new::<sha1::Sha1>(), &hash)
                    .unwrap()
            }),
        }
    }

    /// Signs `message` (the algorithm's hash is applied here).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        (self.sign)(message)
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.spki.to_der().unwrap()
    }

    pub fn key_id(&self) -> Vec<u8> {
        let der = self.spki_der();
        let spki = SubjectPublicKeyInfoRef::from_der(&der).unwrap();
        SubjectKeyIdentifier::try_from(spki)
            .unwrap()
            .0
            .as_bytes()
            .to_vec()
    }
}

/// The x509-cert builder's view of a [`Key`].
struct BuilderSigner<'k>(&'k Key);

#[derive(Clone)]
struct PublicKeyInfo(SubjectPublicKeyInfoOwned);

impl EncodePublicKey for PublicKeyInfo {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::encode_msg(&self.0)?)
    }
}

impl Keypair for BuilderSigner<'_> {
    type VerifyingKey = PublicKeyInfo;
    fn verifying_key(&self) -> PublicKeyInfo {
        PublicKeyInfo(self.0.spki.clone())
    }
}

impl DynSignatureAlgorithmIdentifier for BuilderSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.0.algorithm.clone())
    }
}

struct RawSignature(Vec<u8>);

impl SignatureBitStringEncoding for RawSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl Signer<RawSignature> for BuilderSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<RawSignature, signature::Error> {
        Ok(RawSignature(self.0.sign(msg)))
    }
}

/// CSCA or Document Signer extensions: key identifiers, basic constraints, key usage.
struct Profile {
    subject: Name,
    issuer: Name,
    ca: bool,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = Vec::new();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let issuer_ski = SubjectKeyIdentifier::try_from(issuer_spk)?;
        extensions.push(
            AuthorityKeyIdentifier {
                key_identifier: Some(issuer_ski.0),
                ..Default::default()
            }
            .to_extension(tbs.subject(), &extensions)?,
        );
        extensions.push(ski.to_extension(tbs.subject(), &extensions)?);
        if self.ca {
            extensions.push(
                BasicConstraints {
                    ca: true,
                    path_len_constraint: Some(0),
                }
                .to_extension(tbs.subject(), &extensions)?,
            );
        }
        let usage = if self.ca {
            KeyUsages::KeyCertSign | KeyUsages::CRLSign
        } else {
            KeyUsages::DigitalSignature.into()
        };
        extensions.push(KeyUsage(usage).to_extension(tbs.subject(), &extensions)?);
        Ok(extensions)
    }
}

/// A certificate with its DER and the key it certifies.
pub struct Issued {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub key: Key,
}

fn validity(from: SystemTime, to: SystemTime) -> Validity {
    Validity::new(Time::try_from(from).unwrap(), Time::try_from(to).unwrap())
}

fn build(
    subject: &str,
    issuer: &str,
    ca: bool,
    serial: u8,
    key: Key,
    signer: &Key,
    (from, to): (SystemTime, SystemTime),
) -> Issued {
    let profile = Profile {
        subject: Name::from_str(subject).unwrap(),
        issuer: Name::from_str(issuer).unwrap(),
        ca,
    };
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[serial]).unwrap(),
        validity(from, to),
        key.spki.clone(),
    )
    .unwrap();
    let cert = builder
        .build::<_, RawSignature>(&BuilderSigner(signer))
        .unwrap();
    Issued {
        der: cert.to_der().unwrap(),
        cert,
        key,
    }
}

/// A self-signed CSCA on brainpoolP512r1 with explicit parameters (like Vietnam's), valid
/// from a year before [`now`] for ten years.
pub fn csca(subject: &str, seed: u8) -> Issued {
    let signer = Key::bp512_explicit(seed);
    build(
        subject,
        subject,
        true,
        1,
        Key::bp512_explicit(seed),
        &signer,
        (now() - days(365), now() + days(3650)),
    )
}

/// A self-signed CSCA on any key.
pub fn csca_with(subject: &str, key: Key) -> Issued {
    let signer = key.clone();
    build(
        subject,
        subject,
        true,
        1,
        key,
        &signer,
        (now() - days(365), now() + days(3650)),
    )
}

/// A Document Signer certificate for `key`, issued by `csca`, valid `from`..`to`.
pub fn document_signer(
    csca: &Issued,
    subject: &str,
    serial: u8,
    key: Key,
    from: SystemTime,
    to: SystemTime,
) -> Issued {
    build(
        subject,
        &csca.cert.tbs_certificate().subject().to_string(),
        false,
        serial,
        key,
        &csca.key,
        (from, to),
    )
}

/// A CRL of `csca` revoking the given serials, current around [`now`].
pub fn crl(csca: &Issued, revoked: &[u8]) -> Vec<u8> {
    let revoked: Vec<RevokedCert> = revoked
        .iter()
        .map(|s| RevokedCert {
            serial_number: SerialNumber::new(&[*s]).unwrap(),
            revocation_date: Time::try_from(now() - days(10)).unwrap(),
            crl_entry_extensions: None,
        })
        .collect();
    let builder = CrlBuilder::new_with_this_update(
        &csca.cert,
        CrlNumber(der::asn1::Uint::new(&[1]).unwrap()),
        Time::try_from(now() - days(1)).unwrap(),
    )
    .unwrap()
    .with_next_update(Some(Time::try_from(now() + days(30)).unwrap()))
    .with_certificates(revoked.into_iter());
    builder
        .build::<_, RawSignature>(&BuilderSigner(&csca.key))
        .unwrap()
        .to_der()
        .unwrap()
}

impl Issued {
    /// EF.SOD over `data_groups` (number, bytes), carrying this Document Signer's certificate
    /// and signed with its key (SignerInfo naming it by issuer and serial number).
    pub fn sign_sod(&self, data_groups: &[(u8, &[u8])]) -> Vec<u8> {
        let tbs = self.cert.tbs_certificate();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
        let sign = |attrs: &[u8]| self.key.sign(attrs);
        build::signed_sod(
            data_groups,
            &[&self.der],
            &build::SodSigner {
                sid,
                signature_algorithm: self.key.algorithm.clone(),
                sign: &sign,
            },
        )
        .expect("EF.SOD encodes")
    }
}

/// A card issuer shaped like Vietnam's: a CSCA on brainpoolP512r1 with explicit parameters
/// signing with SHA-512, a Document Signer on brainpoolP256r1 valid around [`now`], and a
/// current CRL that revokes nothing. Trust it by loading `csca.der` and `crl`.
pub struct TestIssuer {
    pub csca: Issued,
    pub document_signer: Issued,
    pub crl: Vec<u8>,
}

impl TestIssuer {
    pub fn vietnam_like() -> Self {
        Self::with_keys(0x51, 0x52)
    }

    /// The same names as [`TestIssuer::vietnam_like`] with other keys: a forger's issuer, whose
    /// cards must not chain to the real one.
    pub fn look_alike() -> Self {
        Self::with_keys(0x61, 0x62)
    }

    fn with_keys(csca_seed: u8, document_signer_seed: u8) -> Self {
        let csca = csca("CN=CSCA Test Vietnam,O=Test Government,C=VN", csca_seed);
        let document_signer = document_signer(
            &csca,
            "CN=Document Signer Test,O=Test Government,C=VN",
            2,
            Key::bp256(document_signer_seed),
            now() - days(30),
            now() + days(365),
        );
        let crl = crl(&csca, &[]);
        Self {
            csca,
            document_signer,
            crl,
        }
    }

    /// The files of a genuine CCCD: EF.COM, DG1 (`mrz`), DG13 (`person`), DG14 and DG15 for
    /// `aa`'s Active Authentication key, and EF.SOD over the data groups, signed.
    pub fn card_files(
        &self,
        mrz: &build::Td1Fields<'_>,
        person: &build::Dg13Person<'_>,
        aa: &VirtualAa,
    ) -> FileSystem {
        self.card_files_with_face(mrz, person, aa, None)
    }

    /// [`Self::card_files`] with DG2 (the face) when given, listed in EF.COM and hashed in
    /// EF.SOD like every other data group.
    pub fn card_files_with_face(
        &self,
        mrz: &build::Td1Fields<'_>,
        person: &build::Dg13Person<'_>,
        aa: &VirtualAa,
        dg2: Option<&[u8]>,
    ) -> FileSystem {
        let dg1 = build::dg1(&build::td1_mrz(mrz));
        let dg13 = build::dg13(person);
        let dg15 = aa.dg15().to_vec();
        let mut groups: Vec<(u8, &[u8])> = vec![(1, &dg1), (13, &dg13), (15, &dg15)];
        if let Some(dg2) = dg2 {
            groups.push((2, dg2));
        }
        if let Some(dg14) = aa.dg14() {
            groups.push((14, dg14));
        }
        groups.sort_by_key(|(n, _)| *n);
        let numbers: Vec<u8> = groups.iter().map(|(n, _)| *n).collect();
        let sod = self.document_signer.sign_sod(&groups);
        groups
            .iter()
            .fold(FileSystem::new(), |files, (n, bytes)| {
                files.with_data_group(*n, bytes.to_vec())
            })
            .with_file(0x011E, build::com(&numbers))
            .with_file(0x011D, sod)
    }

    /// A genuine CCCD answering PACE with the CAN (the ID's last six digits), BAC with its MRZ,
    /// and Active Authentication with `aa`.
    pub fn card(
        &self,
        mrz: &build::Td1Fields<'_>,
        person: &build::Dg13Person<'_>,
        aa: VirtualAa,
    ) -> VirtualCard {
        let files = self.card_files(mrz, person, &aa);
        let dg1 = build::dg1(&build::td1_mrz(mrz));
        let bac = emrtd::lds::dg1::parse(&dg1)
            .map(|td1| BacKeyMaterial::from_mrz(&td1).mrz_information())
            .expect("the MRZ built parses");
        let can = &person.id[person.id.len().saturating_sub(6)..];
        VirtualCard::new(files)
            .with_bac(&bac)
            .with_pace(Box::new(VirtualPace::cccd(can)))
            .with_active_authentication(aa)
    }
}
