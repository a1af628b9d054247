//! PACE, the terminal's side (ICAO 9303 Part 11, 4.4): the CCCD's primary access control, with
//! the CAN (the last 6 digits of the ID number) or the MRZ as password.
//!
//! Only ECDH with Generic Mapping is run (what CCCDs declare), with AES or 3DES, on
//! brainpoolP256r1, NIST P-256 or brainpoolP384r1. The exchange:
//!
//! 1. MSE:Set AT names the protocol OID and the password (key reference 1 MRZ, 2 CAN).
//! 2. GENERAL AUTHENTICATE (chained, CLA 10) returns the nonce encrypted under
//!    K_pi = KDF(password, 3).
//! 3. Both sides exchange mapping keys; the shared point H maps the generator:
//!    G~ = s * G + H.
//! 4. Both exchange ephemeral keys on G~; the x-coordinate of the shared point is the secret
//!    from which K_enc and K_mac derive.
//! 5. Both exchange authentication tokens, MACs over the other side's public key: only a side
//!    that knew the password reaches the same keys, so a wrong CAN shows up here.
//!
//! A card that refuses PACE (one CCCD was seen to answer 69 82) yields [`PaceError::Refused`]
//! with the status word, so the caller can fall back to BAC.

mod card_access;
pub(crate) mod ec;

use std::fmt;

use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged, asn1::AnyRef};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::apdu::{ApduError, CommandApdu, ResponseApdu, StatusWord};
use crate::bac::check_digit;
use crate::cccd::id_number::CitizenId;
use crate::crypto::{self, Cipher, KDF_PACE, MAC_LEN, SessionKeys};
use crate::sm::SecureChannel;
use crate::stats::{Phase, ReadStats};
use crate::transport::{Transport, TransportError};
pub use card_access::{CardAccessError, PaceParams};
pub use ec::DomainCurve;
use ec::EcError;

/// Why PACE did not open a channel.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaceError {
    /// The card refused a step with this status word (69 82 on a CCCD that does not do PACE):
    /// the caller may fall back to BAC.
    #[error("card refused PACE ({0})")]
    Refused(StatusWord),
    /// The password is wrong: the card refused the terminal's token (63 00 or 63 Cx), or the
    /// card's token does not verify under the keys this password gives.
    #[error("PACE password (CAN or MRZ) is wrong")]
    WrongPassword,
    /// The card broke the protocol; the reason is named, no card data is shown.
    #[error("PACE protocol error: {0}")]
    Protocol(ProtocolError),
    /// EF.CardAccess is well formed but declares no PACE variant this library runs.
    #[error("EF.CardAccess declares no supported PACE variant")]
    Unsupported,
    /// The password given is not a CAN or MRZ information.
    #[error("invalid PACE password: {0}")]
    InvalidPassword(&'static str),
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Random,
    /// The card or reader failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// How the card broke the protocol.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A GENERAL AUTHENTICATE response is not the expected dynamic authentication data.
    #[error("malformed GENERAL AUTHENTICATE response")]
    MalformedResponse,
    /// The encrypted nonce is empty, not whole cipher blocks, or too long for the curve.
    #[error("encrypted nonce has an invalid length")]
    BadNonce,
    /// A public key from the card is not a point on the curve, or is the identity.
    #[error("card's public key is not a valid curve point")]
    InvalidPoint,
    /// The card sent back the terminal's own public key.
    #[error("card reflected the terminal's public key")]
    ReflectedKey,
    /// The mapping or the key agreement reached the point at infinity.
    #[error("mapping or key agreement gave the point at infinity")]
    Identity,
    /// A command could not be encoded or a response has no status word.
    #[error("APDU encoding: {0}")]
    Apdu(ApduError),
}

impl From<ProtocolError> for PaceError {
    fn from(e: ProtocolError) -> Self {
        PaceError::Protocol(e)
    }
}

impl From<ApduError> for PaceError {
    fn from(e: ApduError) -> Self {
        PaceError::Protocol(ProtocolError::Apdu(e))
    }
}

impl From<EcError> for PaceError {
    fn from(e: EcError) -> Self {
        match e {
            EcError::InvalidPoint => ProtocolError::InvalidPoint.into(),
            EcError::Identity => ProtocolError::Identity.into(),
            // Scalars are the terminal's own or the nonce, whose length is checked first.
            EcError::InvalidScalar => ProtocolError::BadNonce.into(),
            EcError::Random => PaceError::Random,
        }
    }
}

impl From<crypto::CryptoError> for PaceError {
    fn from(_: crypto::CryptoError) -> Self {
        // Key lengths are the KDF's own; only the nonce's length comes from the card.
        ProtocolError::BadNonce.into()
    }
}

impl From<der::Error> for PaceError {
    fn from(_: der::Error) -> Self {
        ProtocolError::MalformedResponse.into()
    }
}

/// Which password the card checks (MSE:Set AT key reference, ICAO 9303-11, 4.4.4.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// MRZ information, key reference 1.
    Mrz,
    /// Card access number, key reference 2.
    Can,
}

impl PasswordKind {
    /// The key reference sent in DO83.
    pub const fn key_reference(self) -> u8 {
        match self {
            PasswordKind::Mrz => 1,
            PasswordKind::Can => 2,
        }
    }
}

/// A PACE password, already in the form the KDF takes: the CAN's digits, or SHA-1 of the MRZ
/// information. Debug shows the kind only; the secret is wiped on drop.
#[derive(Clone)]
pub struct PacePassword {
    kind: PasswordKind,
    secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PacePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacePassword({:?}, <redacted>)", self.kind)
    }
}

impl PacePassword {
    /// A card access number: decimal digits (6 on CCCDs, whose CAN is the ID's last 6).
    pub fn can(can: &str) -> Result<Self, PaceError> {
        if !(4..=12).contains(&can.len()) || !can.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaceError::InvalidPassword("CAN must be 4 to 12 digits"));
        }
        Ok(PacePassword {
            kind: PasswordKind::Can,
            secret: Zeroizing::new(can.as_bytes().to_vec()),
        })
    }

    /// The CCCD's CAN: the last 6 digits of the 12-digit citizen ID number.
    pub fn from_citizen_id(id: &CitizenId) -> Self {
        PacePassword {
            kind: PasswordKind::Can,
            secret: Zeroizing::new(id.can().as_bytes().to_vec()),
        }
    }

    /// The MRZ password from document number (shorter numbers padded with `<`), date of birth
    /// and date of expiry (YYMMDD, `<<<<<<` for none); check digits are computed here.
    pub fn mrz(
        document_number: &str,
        date_of_birth: &str,
        date_of_expiry: &str,
    ) -> Result<Self, PaceError> {
        let mut information = Zeroizing::new(String::with_capacity(24));
        let mut number = Zeroizing::new(document_number.to_owned());
        while number.len() < 9 {
            number.push('<');
        }
        for (field, fixed_len, name) in [
            (number.as_str(), None, "document number"),
            (date_of_birth, Some(6), "date of birth"),
            (date_of_expiry, Some(6), "date of expiry"),
        ] {
            if fixed_len.is_some_and(|n| field.len() != n) {
                return Err(PaceError::InvalidPassword(name));
            }
            let digit = check_digit(field).ok_or(PaceError::InvalidPassword(name))?;
            information.push_str(field);
            information.push(char::from(b'0' + digit));
        }
        Ok(Self::from_information(&information))
    }

    /// The MRZ password from MRZ information laid out with its check digits (document number,
    /// check digit, date of birth, check digit, date of expiry, check digit); every check digit
    /// is verified.
    pub fn mrz_information(information: &str) -> Result<Self, PaceError> {
        let bytes = information.as_bytes();
        if bytes.len() < 24 || !information.is_ascii() {
            return Err(PaceError::InvalidPassword("MRZ information length"));
        }
        let n = bytes.len() - 14;
        for (field, digit, name) in [
            (&information[..n - 1], bytes[n - 1], "document number"),
            (&information[n..n + 6], bytes[n + 6], "date of birth"),
            (&information[n + 7..n + 13], bytes[n + 13], "date of expiry"),
        ] {
            if check_digit(field).map(|d| b'0' + d) != Some(digit) {
                return Err(PaceError::InvalidPassword(name));
            }
        }
        Ok(Self::from_information(information))
    }

    fn from_information(information: &str) -> Self {
        PacePassword {
            kind: PasswordKind::Mrz,
            secret: Zeroizing::new(Sha1::digest(information.as_bytes()).to_vec()),
        }
    }

    /// Which password this is.
    pub fn kind(&self) -> PasswordKind {
        self.kind
    }

    /// K_pi = KDF(f(password), 3), the key of the nonce's encryption.
    fn key(&self, cipher: Cipher) -> Zeroizing<Vec<u8>> {
        crypto::kdf(cipher, &self.secret, KDF_PACE)
    }
}

/// Runs PACE with the parameters EF.CardAccess declares, and returns the secure channel (send
/// sequence counter zero). `card_access` is the file's content as read in plain; when it is
/// `None` or malformed the CCCD's known suite ([`PaceParams::CCCD`]) is used, since many cards'
/// files are skipped or unreadable in the field and the file is not authenticated anyway. A
/// well-formed file declaring nothing runnable gives [`PaceError::Unsupported`].
/// Exchanges are counted under [`Phase::Pace`].
pub fn establish<T: Transport + ?Sized>(
    transport: &mut T,
    password: &PacePassword,
    card_access: Option<&[u8]>,
    stats: &mut ReadStats,
) -> Result<SecureChannel, PaceError> {
    let params = params_for(card_access)?;
    establish_with_params(transport, password, &params, stats)
}

/// The parameters [`establish`] runs with, given EF.CardAccess (or its absence).
fn params_for(card_access: Option<&[u8]>) -> Result<PaceParams, PaceError> {
    match card_access.map(PaceParams::from_card_access) {
        None | Some(Err(_)) => Ok(PaceParams::CCCD),
        Some(Ok(Some(params))) => Ok(params),
        Some(Ok(None)) => Err(PaceError::Unsupported),
    }
}

/// Runs PACE with the given parameters.
pub fn establish_with_params<T: Transport + ?Sized>(
    transport: &mut T,
    password: &PacePassword,
    params: &PaceParams,
    stats: &mut ReadStats,
) -> Result<SecureChannel, PaceError> {
    let curve = params.curve();
    let keys = run(transport, password, params, stats, &mut || {
        ec::random_scalar(curve).map_err(PaceError::from)
    })?;
    let ssc = vec![0; keys.cipher.block_size()];
    // The counter has the cipher's block size by construction.
    SecureChannel::new(keys, &ssc)
        .map_err(|_| PaceError::Protocol(ProtocolError::MalformedResponse))
}

/// The source of the terminal's two secret scalars (mapping, then key agreement): random in
/// use, fixed when a worked example is replayed.
type ScalarSource<'a> = dyn FnMut() -> Result<Zeroizing<Vec<u8>>, PaceError> + 'a;

/// The protocol proper; returns the session keys.
fn run<T: Transport + ?Sized>(
    transport: &mut T,
    password: &PacePassword,
    params: &PaceParams,
    stats: &mut ReadStats,
    scalars: &mut ScalarSource<'_>,
) -> Result<SessionKeys, PaceError> {
    let cipher = params.cipher();
    let curve = params.curve();
    let oid = params.protocol_oid();

    // MSE:Set AT: protocol (DO80), password (DO83), domain parameters when ambiguous (DO84).
    let mut data = Vec::new();
    data.extend(object(context(0), &oid)?);
    data.extend(object(context(3), &[password.kind().key_reference()])?);
    if let Some(id) = params.domain_reference() {
        data.extend(object(context(4), &[id])?);
    }
    let mse = CommandApdu::new(0x00, 0x22, 0xC1, 0xA4).with_data(data);
    let response = exchange(transport, stats, &mse)?;
    if !response.sw.is_success() {
        return Err(PaceError::Refused(response.sw));
    }

    // Step 1: the encrypted nonce.
    let encrypted = general_authenticate(transport, stats, false, 0x00, None, 0x00)?;
    let nonce = decrypt_nonce(cipher, curve, &password.key(cipher), &encrypted)?;

    // Step 2: Generic Mapping.
    let sk_map = scalars()?;
    let pk_map = ec::multiply(curve, &sk_map, None)?;
    let pk_map_ic = general_authenticate(transport, stats, false, 0x01, Some(&pk_map), 0x02)?;
    ec::validate(curve, &pk_map_ic)?;
    if pk_map_ic == *pk_map {
        return Err(ProtocolError::ReflectedKey.into());
    }
    let h = ec::multiply(curve, &sk_map, Some(&pk_map_ic))?;
    let mapped = Zeroizing::new(ec::map_generator(curve, &nonce, &h)?);

    // Step 3: ephemeral key agreement on the mapped generator.
    let sk = scalars()?;
    let pk_ifd = ec::multiply(curve, &sk, Some(&mapped))?;
    let pk_ic = general_authenticate(transport, stats, false, 0x03, Some(&pk_ifd), 0x04)?;
    ec::validate(curve, &pk_ic)?;
    if pk_ic == *pk_ifd {
        return Err(ProtocolError::ReflectedKey.into());
    }
    let shared = ec::multiply(curve, &sk, Some(&pk_ic))?;
    let keys = SessionKeys::derive(cipher, ec::x_coordinate(curve, &shared)?);

    // Step 4: mutual authentication tokens over the other side's ephemeral key.
    let t_ifd = token(cipher, &keys.k_mac, &oid, &pk_ic)?;
    let t_ic = general_authenticate(transport, stats, true, 0x05, Some(&t_ifd), 0x06)?;
    let expected = token(cipher, &keys.k_mac, &oid, &pk_ifd)?;
    if !crypto::mac_eq(&t_ic, &expected) {
        return Err(PaceError::WrongPassword);
    }
    Ok(keys)
}

/// Decrypts the nonce: CBC with a zero IV under K_pi. Its length must be whole blocks and fit
/// the curve's scalar.
fn decrypt_nonce(
    cipher: Cipher,
    curve: DomainCurve,
    k_pi: &[u8],
    encrypted: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PaceError> {
    let bs = cipher.block_size();
    if encrypted.is_empty()
        || !encrypted.len().is_multiple_of(bs)
        || encrypted.len() > curve.field_len()
    {
        return Err(ProtocolError::BadNonce.into());
    }
    let mut nonce = Zeroizing::new(encrypted.to_vec());
    crypto::decrypt_cbc(cipher, k_pi, &vec![0; bs], &mut nonce)?;
    Ok(nonce)
}

/// The authentication token: a MAC under K_mac over the public-key data object
/// `7F49 { 06 protocol OID, 86 point }` (ICAO 9303-11, 4.4.3.4): AES-CMAC truncated to 8 bytes
/// for AES, the retail MAC over method-2 padded input for 3DES.
fn token(
    cipher: Cipher,
    k_mac: &[u8],
    oid: &[u8],
    point: &[u8],
) -> Result<[u8; MAC_LEN], PaceError> {
    let input = public_key_object(oid, point)?;
    Ok(match cipher {
        Cipher::TripleDes => crypto::retail_mac(k_mac, &crypto::pad(&input, 8))?,
        _ => crypto::aes_cmac(k_mac, &input)?,
    })
}

/// `7F49 { 06 oid, 86 point }`.
fn public_key_object(oid: &[u8], point: &[u8]) -> Result<Vec<u8>, PaceError> {
    let mut content = object(Tag::ObjectIdentifier, oid)?;
    content.extend(object(context(6), point)?);
    object(application(73), &content)
}

/// Sends one GENERAL AUTHENTICATE with `7C { tag value }` (or `7C 00` when `value` is `None`)
/// and returns the value of the response object `expect`. `last` ends the command chain.
fn general_authenticate<T: Transport + ?Sized>(
    transport: &mut T,
    stats: &mut ReadStats,
    last: bool,
    tag: u32,
    value: Option<&[u8]>,
    expect: u32,
) -> Result<Vec<u8>, PaceError> {
    let inner = match value {
        Some(v) => object(context(tag), v)?,
        None => Vec::new(),
    };
    let cla = if last { 0x00 } else { 0x10 };
    let command = CommandApdu::new(cla, 0x86, 0x00, 0x00)
        .with_data(object(application(28), &inner)?)
        .with_le(256);
    let response = exchange(transport, stats, &command)?;
    match response.sw.0 {
        0x9000 => {}
        // The card's check of the terminal's token failed: a wrong password.
        0x6300 | 0x63C0..=0x63CF if last => return Err(PaceError::WrongPassword),
        _ => return Err(PaceError::Refused(response.sw)),
    }
    response_object(&response.data, expect)
}

/// The value of the single context-specific object `expect` inside the response's `7C`.
/// Other objects (certificate authority references after the last step) are ignored.
fn response_object(data: &[u8], expect: u32) -> Result<Vec<u8>, PaceError> {
    let outer = AnyRef::from_der(data)?;
    if outer.tag() != application(28) {
        return Err(ProtocolError::MalformedResponse.into());
    }
    let mut reader = SliceReader::new(outer.value())?;
    let mut found = None;
    while !reader.is_finished() {
        let object: AnyRef<'_> = reader.decode()?;
        if object.tag() == context(expect) {
            if found.is_some() {
                return Err(ProtocolError::MalformedResponse.into());
            }
            found = Some(object.value().to_vec());
        }
    }
    found.ok_or_else(|| ProtocolError::MalformedResponse.into())
}

fn exchange<T: Transport + ?Sized>(
    transport: &mut T,
    stats: &mut ReadStats,
    command: &CommandApdu,
) -> Result<ResponseApdu, PaceError> {
    let raw = stats.transmit(transport, Phase::Pace, &command.to_bytes()?)?;
    Ok(ResponseApdu::parse(&raw)?)
}

/// A DER TLV with the given tag.
fn object(tag: Tag, value: &[u8]) -> Result<Vec<u8>, PaceError> {
    AnyRef::new(tag, value)?
        .to_der()
        .map_err(|_| ProtocolError::MalformedResponse.into())
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
    use crate::crypto::hex;
    use std::collections::VecDeque;

    /// ICAO 9303-11 Appendix G.1: PACE ECDH-GM, AES-128, brainpoolP256r1, MRZ password
    /// (document number T22000129, born 640812, expires 101031).
    mod g1 {
        pub const K_PI: &str = "89DED1B26624EC1E634C1989302849DD";
        pub const ENCRYPTED_NONCE: &str = "95A3A016522EE98D01E76CB6B98B42C3";
        pub const NONCE: &str = "3F00C4D39D153F2B2A214A078D899B22";
        pub const SK_MAP_IFD: &str =
            "7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99";
        pub const PK_MAP_IFD: &str = "04\
            7ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E\
            544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D";
        pub const PK_MAP_IC: &str = "04\
            824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57\
            30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54";
        pub const H: &str = "04\
            60332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD5\
            0840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181";
        pub const MAPPED_G: &str = "04\
            8CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2\
            8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522";
        pub const SK_IFD: &str = "A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595";
        pub const PK_IFD: &str = "04\
            2DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C\
            3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462";
        pub const PK_IC: &str = "04\
            9E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB\
            7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094";
        pub const SHARED: &str = "28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925";
        pub const K_ENC: &str = "F5F0E35C0D7161EE6724EE513A0D9A7F";
        pub const K_MAC: &str = "FE251C7858B356B24514B3BD5F4297D1";
        pub const T_IFD: &str = "C2B0BD78D94BA866";
        pub const T_IC: &str = "3ABB9674BCE93C08";
    }

    fn g1_password() -> PacePassword {
        PacePassword::mrz("T22000129", "640812", "101031").unwrap()
    }

    /// A card that answers from a script and checks each command byte for byte.
    struct Scripted(VecDeque<(Vec<u8>, Vec<u8>)>);

    impl Scripted {
        fn new(pairs: &[(&str, &str)]) -> Self {
            Scripted(pairs.iter().map(|(c, r)| (hex(c), hex(r))).collect())
        }
    }

    impl Transport for Scripted {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            let (expected, response) = self.0.pop_front().expect("unexpected extra command");
            assert_eq!(upper_hex(command), upper_hex(&expected));
            Ok(response)
        }
    }

    /// A card that plays back answers whatever it is sent, then answers 6F00.
    struct Lenient(VecDeque<Vec<u8>>);

    impl Transport for Lenient {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransportError> {
            Ok(self.0.pop_front().unwrap_or_else(|| vec![0x6F, 0x00]))
        }
    }

    fn upper_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    fn fixed_scalars(list: &[&str]) -> impl FnMut() -> Result<Zeroizing<Vec<u8>>, PaceError> {
        let mut list: VecDeque<Vec<u8>> = list.iter().map(|s| hex(s)).collect();
        move || Ok(Zeroizing::new(list.pop_front().expect("no scalar left")))
    }

    #[test]
    fn appendix_g1_password_key_and_nonce() {
        let password = g1_password();
        assert_eq!(password.kind().key_reference(), 1);
        let k_pi = password.key(Cipher::Aes128);
        assert_eq!(*k_pi, hex(g1::K_PI));
        // The same password given as MRZ information with check digits.
        let same = PacePassword::mrz_information("T22000129364081251010318").unwrap();
        assert_eq!(*same.key(Cipher::Aes128), hex(g1::K_PI));
        let nonce = decrypt_nonce(
            Cipher::Aes128,
            DomainCurve::BrainpoolP256r1,
            &k_pi,
            &hex(g1::ENCRYPTED_NONCE),
        )
        .unwrap();
        assert_eq!(*nonce, hex(g1::NONCE));
    }

    #[test]
    fn appendix_g1_mapping_agreement_keys_and_tokens() {
        let curve = DomainCurve::BrainpoolP256r1;
        let pk_map = ec::multiply(curve, &hex(g1::SK_MAP_IFD), None).unwrap();
        assert_eq!(*pk_map, hex(g1::PK_MAP_IFD));
        let h = ec::multiply(curve, &hex(g1::SK_MAP_IFD), Some(&hex(g1::PK_MAP_IC))).unwrap();
        assert_eq!(*h, hex(g1::H));
        let mapped = ec::map_generator(curve, &hex(g1::NONCE), &h).unwrap();
        assert_eq!(mapped, hex(g1::MAPPED_G));
        let pk_ifd = ec::multiply(curve, &hex(g1::SK_IFD), Some(&mapped)).unwrap();
        assert_eq!(*pk_ifd, hex(g1::PK_IFD));
        let shared = ec::multiply(curve, &hex(g1::SK_IFD), Some(&hex(g1::PK_IC))).unwrap();
        assert_eq!(ec::x_coordinate(curve, &shared).unwrap(), hex(g1::SHARED));
        let keys = SessionKeys::derive(Cipher::Aes128, &hex(g1::SHARED));
        assert_eq!(*keys.k_enc, hex(g1::K_ENC));
        assert_eq!(*keys.k_mac, hex(g1::K_MAC));
        let oid = PaceParams::CCCD.protocol_oid();
        assert_eq!(
            public_key_object(&oid, &hex(g1::PK_IC)).unwrap(),
            hex(&format!("7F494F060A04007F00070202040202 8641{}", g1::PK_IC))
        );
        let t_ifd = token(Cipher::Aes128, &keys.k_mac, &oid, &hex(g1::PK_IC)).unwrap();
        assert_eq!(t_ifd.to_vec(), hex(g1::T_IFD));
        let t_ic = token(Cipher::Aes128, &keys.k_mac, &oid, &hex(g1::PK_IFD)).unwrap();
        assert_eq!(t_ic.to_vec(), hex(g1::T_IC));
    }

    /// The whole G.1 exchange as APDUs: every command the terminal builds must equal the
    /// example's, and the card's answers are the example's.
    fn g1_script() -> Vec<(String, String)> {
        vec![
            (
                "0022C1A40F800A04007F00070202040202830101".into(),
                "9000".into(),
            ),
            (
                "10860000027C0000".into(),
                format!("7C128010{}9000", g1::ENCRYPTED_NONCE),
            ),
            (
                format!("10860000457C438141{}00", g1::PK_MAP_IFD),
                format!("7C438241{}9000", g1::PK_MAP_IC),
            ),
            (
                format!("10860000457C438341{}00", g1::PK_IFD),
                format!("7C438441{}9000", g1::PK_IC),
            ),
            (
                format!("008600000C7C0A8508{}00", g1::T_IFD),
                format!("7C0A8608{}9000", g1::T_IC),
            ),
        ]
    }

    fn run_script(
        script: &[(String, String)],
        card_access: &str,
    ) -> Result<SessionKeys, PaceError> {
        let pairs: Vec<(&str, &str)> = script
            .iter()
            .map(|(c, r)| (c.as_str(), r.as_str()))
            .collect();
        let mut card = Scripted::new(&pairs);
        let params = PaceParams::from_card_access(&hex(card_access))
            .unwrap()
            .unwrap();
        let mut stats = ReadStats::new();
        let keys = run(
            &mut card,
            &g1_password(),
            &params,
            &mut stats,
            &mut fixed_scalars(&[g1::SK_MAP_IFD, g1::SK_IFD]),
        );
        if keys.is_ok() {
            assert!(card.0.is_empty(), "script not finished");
            assert_eq!(stats.phase(Phase::Pace).apdus, 5);
        }
        keys
    }

    #[test]
    fn appendix_g1_exchange_byte_for_byte() {
        let keys =
            run_script(&g1_script(), "31143012060A04007F0007020204020202010202010D").unwrap();
        assert_eq!(keys.cipher, Cipher::Aes128);
        assert_eq!(*keys.k_enc, hex(g1::K_ENC));
        assert_eq!(*keys.k_mac, hex(g1::K_MAC));
    }

    /// PACE ECDH-GM with 3DES on brainpoolP256r1 against a real passport (New Zealand), MRZ
    /// password, as recorded in the public test suite of another eMRTD reader (gmrtd): the
    /// 3DES nonce (two blocks), retail-MAC tokens and parity-adjusted 3DES session keys.
    #[test]
    fn recorded_3des_exchange_byte_for_byte() {
        let script = [
            ("0022C1A40F800A04007F00070202040201830101", "9000"),
            (
                "10860000027C0000",
                "7C128010B88382812290017AF1CC906FF00E7F4D9000",
            ),
            (
                "10860000457C438141047706B2B6246AB4612229B8A11212DDBA7FEA0568C9C0975DEE22C0E3DD3A3F03\
                 21E8AFEE836E373B570D24000D56FB195104D486E63321FF8C819DD5EE018DCB00",
                "7C43824104780B4EDEC9B926F9F964FAD826D9990A667608D96BA7B397AE8609B6533E0D036D148365\
                 DDF4E5FF6611C2B62AA17FC9899F327BC929DB543E7ABD0EE724E4BE9000",
            ),
            (
                "10860000457C43834104507A0156EFAE8FB8ACC519036C0B2FE0393C878744C7F91878EE4E07A41412BA\
                 5C0753D68A44A91E9F57F3F992AB689E6C2065D3B2A27C3658A4FD632931EE3800",
                "7C438441042DBAF62E6FDFB31EB66F206493B9E7721586F0E5C93754D7BD5A884CA251EE4D720AB539\
                 A60561BC46812FA289B58AC69F0C6E32ADBAF7241049A31211F80F5B9000",
            ),
            (
                "008600000C7C0A85088D7C617D43EFE09E00",
                "7C0A8608CB57047C809079F69000",
            ),
        ];
        let mut card = Scripted::new(&script);
        let params =
            PaceParams::from_card_access(&hex("31143012060A04007F0007020204020102010202010D"))
                .unwrap()
                .unwrap();
        assert_eq!(params.cipher(), Cipher::TripleDes);
        let password = PacePassword::mrz("LM277954", "781214", "271115").unwrap();
        let keys = run(
            &mut card,
            &password,
            &params,
            &mut ReadStats::new(),
            &mut fixed_scalars(&[
                "2808272C0EC20E01A3450030EF32855E9FEB5CB17719E985389B1CF47609E69F",
                "8F89449052DF6C7983750C7B042C3CEA12B36819174424C7CD28153F7B70B402",
            ]),
        )
        .unwrap();
        assert!(card.0.is_empty());
        assert_eq!(*keys.k_enc, hex("430E4C8C38DFEFAED92067B919A897F8"));
        assert_eq!(*keys.k_mac, hex("C1BC1F075797B970B5A45E64A764B0CB"));
    }

    /// G.1 end to end between the two implementations: the terminal with the example's keys
    /// against the virtual card with the example's nonce and chip keys reaches the example's
    /// session keys, and the card opens secure messaging with the same ones.
    #[test]
    fn appendix_g1_against_the_deterministic_virtual_card() {
        use crate::virtual_card::pace::VirtualPace;
        use crate::virtual_card::{FileSystem, VirtualCard};
        let mut card = VirtualCard::new(FileSystem::new()).with_pace(Box::new(
            VirtualPace::new(Cipher::Aes128, DomainCurve::BrainpoolP256r1)
                .with_mrz_information("T22000129364081251010318")
                .with_fixed_secrets(
                    &hex(g1::NONCE),
                    &hex("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560"),
                    &hex("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A"),
                ),
        ));
        let keys = run(
            &mut card,
            &g1_password(),
            &PaceParams::CCCD,
            &mut ReadStats::new(),
            &mut fixed_scalars(&[g1::SK_MAP_IFD, g1::SK_IFD]),
        )
        .unwrap();
        assert_eq!(*keys.k_enc, hex(g1::K_ENC));
        assert_eq!(*keys.k_mac, hex(g1::K_MAC));
        assert!(card.secure_session());
    }

    #[test]
    fn a_wrong_card_token_is_a_wrong_password() {
        let mut script = g1_script();
        script[4].1 = format!("7C0A8608{}9000", "3ABB9674BCE93C09");
        assert_eq!(
            run_script(&script, "31143012060A04007F0007020204020202010202010D").err(),
            Some(PaceError::WrongPassword)
        );
    }

    #[test]
    fn card_refusals_and_wrong_password_status() {
        let mut script = g1_script();
        script.truncate(1);
        script[0].1 = "6982".into();
        assert_eq!(
            run_script(&script, "31143012060A04007F0007020204020202010202010D").err(),
            Some(PaceError::Refused(StatusWord(0x6982)))
        );
        let mut script = g1_script();
        script[4].1 = "63C2".into();
        assert_eq!(
            run_script(&script, "31143012060A04007F0007020204020202010202010D").err(),
            Some(PaceError::WrongPassword)
        );
        let mut script = g1_script();
        script[4].1 = "6300".into();
        assert_eq!(
            run_script(&script, "31143012060A04007F0007020204020202010202010D").err(),
            Some(PaceError::WrongPassword)
        );
        let mut script = g1_script();
        script.truncate(2);
        script[1].1 = "6A80".into();
        assert_eq!(
            run_script(&script, "31143012060A04007F0007020204020202010202010D").err(),
            Some(PaceError::Refused(StatusWord(0x6A80)))
        );
    }

    #[test]
    fn hostile_card_answers_are_protocol_errors() {
        let access = "31143012060A04007F0007020204020202010202010D";
        let cases: Vec<(usize, String, ProtocolError)> = vec![
            // Nonce: not whole blocks, empty, missing, wrong outer tag, trailing garbage.
            (
                1,
                "7C0F800D95A3A016522EE98D01E76CB6B99000".into(),
                ProtocolError::BadNonce,
            ),
            (1, "7C0280009000".into(), ProtocolError::BadNonce),
            (1, "7C009000".into(), ProtocolError::MalformedResponse),
            (
                1,
                format!("7D128010{}9000", g1::ENCRYPTED_NONCE),
                ProtocolError::MalformedResponse,
            ),
            (
                1,
                format!("7C128010{}009000", g1::ENCRYPTED_NONCE),
                ProtocolError::MalformedResponse,
            ),
            (
                1,
                format!("7C138010{}9000", g1::ENCRYPTED_NONCE),
                ProtocolError::MalformedResponse,
            ),
            (1, "9000".into(), ProtocolError::MalformedResponse),
            // Two nonces.
            (
                1,
                format!("7C248010{0}8010{0}9000", g1::ENCRYPTED_NONCE),
                ProtocolError::MalformedResponse,
            ),
            // Mapping key off the curve, the identity, reflected.
            (
                2,
                format!("7C438241{}9000", &g1::PK_MAP_IC.replace("3C54", "3C55")),
                ProtocolError::InvalidPoint,
            ),
            (2, "7C038201009000".into(), ProtocolError::InvalidPoint),
            (
                2,
                format!("7C438241{}9000", g1::PK_MAP_IFD),
                ProtocolError::ReflectedKey,
            ),
            // Ephemeral key off the curve, reflected.
            (
                3,
                format!("7C438441{}9000", &g1::PK_IC.replace("F094", "F095")),
                ProtocolError::InvalidPoint,
            ),
            (
                3,
                format!("7C438441{}9000", g1::PK_IFD),
                ProtocolError::ReflectedKey,
            ),
            // Token object missing.
            (4, "7C009000".into(), ProtocolError::MalformedResponse),
        ];
        for (step, answer, expected) in cases {
            let mut script = g1_script();
            script.truncate(step + 1);
            script[step].1 = answer.clone();
            assert_eq!(
                run_script(&script, access).err(),
                Some(PaceError::Protocol(expected)),
                "step {step}: {answer}"
            );
        }
        // A token response may carry further objects (CARs for Terminal Authentication).
        let mut script = g1_script();
        script[4].1 = format!("7C128608{}87064445544553549000", g1::T_IC);
        assert!(run_script(&script, access).is_ok());
    }

    /// Garbage, truncations and bit flips of the genuine answers at every step give typed errors,
    /// never a panic (a pseudo-random sweep; the parsers' bounds are what is exercised).
    #[test]
    fn garbage_answers_never_panic() {
        let access = "31143012060A04007F0007020204020202010202010D";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let genuine = g1_script();
        for step in 1..5 {
            let answer = hex(&genuine[step].1);
            for round in 0..45 {
                let mut bytes = match round % 3 {
                    // Random bytes ending in 9000.
                    0 => {
                        let n = (next() % 120) as usize;
                        let mut v: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                        v.extend([0x90, 0x00]);
                        v
                    }
                    // A truncation of the genuine answer, status word kept.
                    1 => {
                        let cut = (next() as usize) % (answer.len() - 2);
                        [&answer[..cut], &[0x90, 0x00][..]].concat()
                    }
                    // One bit flipped in the genuine answer's data.
                    _ => {
                        let mut v = answer.clone();
                        let i = (next() as usize) % (v.len() - 2);
                        v[i] ^= 1 << (next() % 8);
                        v
                    }
                };
                // The genuine answers up to the step, the mutated one, then 6F00 for anything.
                let mut answers: VecDeque<Vec<u8>> =
                    genuine[..step].iter().map(|(_, r)| hex(r)).collect();
                answers.push_back(std::mem::take(&mut bytes));
                let mut card = Lenient(answers);
                let params = PaceParams::from_card_access(&hex(access)).unwrap().unwrap();
                let result = run(
                    &mut card,
                    &g1_password(),
                    &params,
                    &mut ReadStats::new(),
                    &mut fixed_scalars(&[g1::SK_MAP_IFD, g1::SK_IFD]),
                );
                assert!(result.is_err(), "step {step} round {round}");
            }
        }
    }

    #[test]
    fn parameters_from_card_access_or_the_cccd_default() {
        assert_eq!(params_for(None), Ok(PaceParams::CCCD));
        // Unreadable (malformed) file: the CCCD suite is assumed.
        assert_eq!(params_for(Some(&[0x31, 0x05, 0x30])), Ok(PaceParams::CCCD));
        // A file naming another suite wins over the default.
        let p = params_for(Some(&hex("31143012060A04007F0007020204020402010202010C"))).unwrap();
        assert_eq!(
            (p.cipher(), p.curve()),
            (Cipher::Aes256, DomainCurve::NistP256)
        );
        // Well formed, nothing runnable.
        assert_eq!(
            params_for(Some(&hex("31143012060A04007F0007020204040202010202010D"))),
            Err(PaceError::Unsupported)
        );
    }

    #[test]
    fn passwords() {
        assert_eq!(
            PacePassword::can("123456").unwrap().kind(),
            PasswordKind::Can
        );
        assert_eq!(PasswordKind::Can.key_reference(), 2);
        assert!(PacePassword::can("12a456").is_err());
        assert!(PacePassword::can("123").is_err());
        let id = CitizenId::parse("001099012345").unwrap();
        let can = PacePassword::from_citizen_id(&id);
        assert_eq!(*can.secret, b"012345".to_vec());
        // K_pi of a CAN is the KDF over its ASCII digits.
        let mut input = b"012345".to_vec();
        input.extend([0, 0, 0, 3]);
        assert_eq!(
            *can.key(Cipher::Aes128),
            Sha1::digest(&input)[..16].to_vec()
        );
        // Debug shows neither the CAN nor the digest.
        let shown = format!("{can:?}");
        assert!(
            !shown.contains("012345") && shown.contains("Can"),
            "{shown}"
        );
        assert!(PacePassword::mrz("T22000129", "6408", "101031").is_err());
        assert!(PacePassword::mrz("T2200012!", "640812", "101031").is_err());
        assert!(PacePassword::mrz_information("T22000129464081251010318").is_err());
    }
}
