//! Basic Access Control (ICAO 9303 Part 11, 4.3): the CCCD's fallback when PACE is refused.
//!
//! The document keys come from the MRZ information (document number, date of birth, date of
//! expiry, each with its check digit) through SHA-1 and the ICAO KDF; a challenge-response with
//! GET CHALLENGE and EXTERNAL AUTHENTICATE proves both sides hold them and yields 3DES session keys
//! and the send-sequence counter.

use std::fmt;

use zeroize::Zeroizing;

use crate::apdu::{ApduError, CommandApdu, ResponseApdu, StatusError};
use crate::crypto::{self, Cipher, CryptoError, KDF_ENC, KDF_MAC, SessionKeys};
use crate::sm::{SecureChannel, SmError};
use crate::stats::{Phase, ReadStats};
use crate::transport::{Transport, TransportError};
use sha1::{Digest, Sha1};

/// Why BAC did not open a channel.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacError {
    /// A field of the MRZ information has the wrong length or characters.
    #[error("invalid MRZ information: {0}")]
    InvalidMrz(&'static str),
    /// The card refused a step (6300/6982 on EXTERNAL AUTHENTICATE: wrong MRZ key material).
    #[error("card refused BAC: {0}")]
    Refused(StatusError),
    /// The card's answer does not authenticate under the document keys.
    #[error("card's authentication cryptogram does not verify")]
    CardNotAuthenticated,
    /// The card's answer has the wrong shape.
    #[error("malformed BAC response")]
    Malformed,
    /// No random numbers from the operating system.
    #[error("random number generator unavailable")]
    Random,
    /// The command could not be built.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// A primitive was misused: a bug, not card data.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The secure channel could not be set up.
    #[error(transparent)]
    Sm(#[from] SmError),
    /// The card or reader failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// The document basic access keys' seed, derived from the MRZ information. Debug never shows
/// the MRZ or the seed; both are wiped on drop.
#[derive(Clone)]
pub struct BacKey {
    k_seed: Zeroizing<[u8; 16]>,
}

impl fmt::Debug for BacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BacKey(..)")
    }
}

impl BacKey {
    /// From the three MRZ fields without check digits: document number (the CCCD's is the last 9
    /// digits of the 12-digit ID; shorter numbers are padded with `<`), date of birth YYMMDD and
    /// date of expiry YYMMDD (`<<<<<<` on a card without expiry). Check digits are computed here.
    pub fn new(
        document_number: &str,
        date_of_birth: &str,
        date_of_expiry: &str,
    ) -> Result<Self, BacError> {
        let mut number = document_number.to_owned();
        while number.len() < 9 {
            number.push('<');
        }
        let fields = [
            (number.as_str(), "document number"),
            (date_of_birth, "date of birth"),
            (date_of_expiry, "date of expiry"),
        ];
        let mut information = Zeroizing::new(String::new());
        for (i, (field, name)) in fields.into_iter().enumerate() {
            if i > 0 && field.len() != 6 {
                return Err(BacError::InvalidMrz(name));
            }
            if i > 0 && !field.bytes().all(|b| b.is_ascii_digit() || b == b'<') {
                return Err(BacError::InvalidMrz(name));
            }
            let digit = check_digit(field).ok_or(BacError::InvalidMrz(name))?;
            information.push_str(field);
            information.push(char::from(b'0' + digit));
        }
        Ok(Self::from_mrz_information_unchecked(&information))
    }

    /// From MRZ information already laid out with check digits (as in ICAO's example
    /// `L898902C<369080619406236`); every check digit is verified.
    pub fn from_mrz_information(information: &str) -> Result<Self, BacError> {
        let bytes = information.as_bytes();
        if bytes.len() < 24 || !information.is_ascii() {
            return Err(BacError::InvalidMrz("length"));
        }
        let n = bytes.len() - 14;
        let parts = [
            (&information[..n - 1], bytes[n - 1], "document number"),
            (&information[n..n + 6], bytes[n + 6], "date of birth"),
            (&information[n + 7..n + 13], bytes[n + 13], "date of expiry"),
        ];
        for (field, digit, name) in parts {
            if check_digit(field).map(|d| b'0' + d) != Some(digit) {
                return Err(BacError::InvalidMrz(name));
            }
        }
        Ok(Self::from_mrz_information_unchecked(information))
    }

    fn from_mrz_information_unchecked(information: &str) -> Self {
        let digest = Sha1::digest(information.as_bytes());
        let mut k_seed = Zeroizing::new([0u8; 16]);
        k_seed.copy_from_slice(&digest[..16]);
        BacKey { k_seed }
    }

    fn k_enc(&self) -> Zeroizing<Vec<u8>> {
        crypto::kdf(Cipher::TripleDes, &*self.k_seed, KDF_ENC)
    }

    fn k_mac(&self) -> Zeroizing<Vec<u8>> {
        crypto::kdf(Cipher::TripleDes, &*self.k_seed, KDF_MAC)
    }
}

/// ICAO 9303 Part 3 check digit (weights 7, 3, 1); `None` for a character outside 0-9, A-Z, `<`.
pub fn check_digit(field: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, b) in field.bytes().enumerate() {
        let value = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'<' => 0,
            _ => return None,
        };
        sum += u32::from(value) * [7, 3, 1][i % 3];
    }
    Some((sum % 10) as u8)
}

/// Runs BAC with the document's key and returns the secure channel. The caller has selected the
/// eMRTD application. Exchanges are counted under [`Phase::Bac`].
pub fn establish<T: Transport + ?Sized>(
    transport: &mut T,
    key: &BacKey,
    stats: &mut ReadStats,
) -> Result<SecureChannel, BacError> {
    let mut rnd_ifd = [0u8; 8];
    let mut k_ifd = Zeroizing::new([0u8; 16]);
    getrandom::fill(&mut rnd_ifd).map_err(|_| BacError::Random)?;
    getrandom::fill(&mut *k_ifd).map_err(|_| BacError::Random)?;
    establish_with(transport, key, &rnd_ifd, &k_ifd, stats)
}

/// [`establish`] with the terminal's random values given, so the worked example can be replayed.
fn establish_with<T: Transport + ?Sized>(
    transport: &mut T,
    key: &BacKey,
    rnd_ifd: &[u8; 8],
    k_ifd: &[u8; 16],
    stats: &mut ReadStats,
) -> Result<SecureChannel, BacError> {
    let get_challenge = CommandApdu::new(0x00, 0x84, 0x00, 0x00)
        .with_le(8)
        .to_bytes()?;
    let rnd_ic = send(transport, stats, &get_challenge)?;
    let rnd_ic: [u8; 8] = rnd_ic
        .as_slice()
        .try_into()
        .map_err(|_| BacError::Malformed)?;

    let k_enc = key.k_enc();
    let k_mac = key.k_mac();
    let mut s = Zeroizing::new(Vec::with_capacity(32));
    s.extend_from_slice(rnd_ifd);
    s.extend_from_slice(&rnd_ic);
    s.extend_from_slice(k_ifd);
    crypto::encrypt_cbc(Cipher::TripleDes, &k_enc, &[0; 8], &mut s)?;
    let m_ifd = crypto::retail_mac(&k_mac, &crypto::pad(&s, 8))?;
    let mut data = s.to_vec();
    data.extend_from_slice(&m_ifd);
    let external_authenticate = CommandApdu::new(0x00, 0x82, 0x00, 0x00)
        .with_data(data)
        .with_le(40)
        .to_bytes()?;
    let response = send(transport, stats, &external_authenticate)?;
    if response.len() != 40 {
        return Err(BacError::Malformed);
    }
    let (e_ic, m_ic) = response.split_at(32);
    let expected = crypto::retail_mac(&k_mac, &crypto::pad(e_ic, 8))?;
    if !crypto::mac_eq(&expected, m_ic) {
        return Err(BacError::CardNotAuthenticated);
    }
    let mut r = Zeroizing::new(e_ic.to_vec());
    crypto::decrypt_cbc(Cipher::TripleDes, &k_enc, &[0; 8], &mut r)?;
    if r[..8] != rnd_ic || r[8..16] != rnd_ifd[..] {
        return Err(BacError::CardNotAuthenticated);
    }
    let mut seed = Zeroizing::new([0u8; 16]);
    for (i, s) in seed.iter_mut().enumerate() {
        *s = k_ifd[i] ^ r[16 + i];
    }
    let keys = SessionKeys::derive(Cipher::TripleDes, &*seed);
    let mut ssc = [0u8; 8];
    ssc[..4].copy_from_slice(&rnd_ic[4..]);
    ssc[4..].copy_from_slice(&rnd_ifd[4..]);
    Ok(SecureChannel::new(keys, &ssc)?)
}

fn send<T: Transport + ?Sized>(
    transport: &mut T,
    stats: &mut ReadStats,
    command: &[u8],
) -> Result<Vec<u8>, BacError> {
    let raw = stats.transmit(transport, Phase::Bac, command)?;
    ResponseApdu::parse(&raw)?
        .into_success()
        .map_err(BacError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    /// Replays Appendix D.3: answers GET CHALLENGE and EXTERNAL AUTHENTICATE with the published
    /// bytes, and checks the command the terminal sent.
    struct AppendixD {
        step: usize,
    }

    impl Transport for AppendixD {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.step += 1;
            match self.step {
                1 => {
                    assert_eq!(command, hex("0084000008"));
                    Ok(hex("4608F91988702212 9000"))
                }
                2 => {
                    assert_eq!(
                        command,
                        hex(
                            "0082000028 72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2 5F1448EEA8AD90A7 28"
                        )
                    );
                    Ok(hex(
                        "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F 2F2D235D074D7449 9000",
                    ))
                }
                _ => panic!("unexpected command"),
            }
        }
    }

    #[test]
    fn appendix_d_key_seed() {
        let key = BacKey::from_mrz_information("L898902C<369080619406236").unwrap();
        assert_eq!(key.k_seed.to_vec(), hex("239AB9CB282DAF66231DC5A4DF6BFBAE"));
        assert_eq!(*key.k_enc(), hex("AB94FDECF2674FDFB9B391F85D7F76F2"));
        assert_eq!(*key.k_mac(), hex("7962D9ECE03D1ACD4C76089DCE131543"));
        // The same from the separate fields, check digits computed.
        let same = BacKey::new("L898902C", "690806", "940623").unwrap();
        assert_eq!(same.k_seed, key.k_seed);
    }

    #[test]
    fn appendix_d_mutual_authentication_and_protected_exchanges() {
        let key = BacKey::from_mrz_information("L898902C<369080619406236").unwrap();
        let mut stats = ReadStats::new();
        let mut card = AppendixD { step: 0 };
        let rnd_ifd = hex("781723860C06C226").try_into().unwrap();
        let k_ifd = hex("0B795240CB7049B01C19B33E32804F0B").try_into().unwrap();
        let mut ch = establish_with(&mut card, &key, &rnd_ifd, &k_ifd, &mut stats).unwrap();
        assert_eq!(ch.ssc(), hex("887022120C06C226"));
        assert_eq!(stats.phase(Phase::Bac).apdus, 2);

        // D.4 with the channel BAC produced (session keys checked by the MACs themselves).
        let p = ch
            .protect(&CommandApdu::new(0, 0xA4, 2, 0x0C).with_data(hex("011E")))
            .unwrap();
        assert_eq!(
            p.to_bytes().unwrap(),
            hex("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
        );
        ch.unprotect(&hex("990290008E08FA855A5D4C50A8ED9000"))
            .unwrap();
        let p = ch
            .protect(&CommandApdu::new(0, 0xB0, 0, 0).with_le(4))
            .unwrap();
        assert_eq!(
            p.to_bytes().unwrap(),
            hex("0CB000000D9701048E08ED6705417E96BA5500")
        );
        let r = ch
            .unprotect(&hex(
                "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000",
            ))
            .unwrap();
        assert_eq!(r.data, hex("60145F01"));
        let p = ch
            .protect(&CommandApdu::new(0, 0xB0, 0, 4).with_le(0x12))
            .unwrap();
        assert_eq!(
            p.to_bytes().unwrap(),
            hex("0CB000040D9701128E082EA28A70F3C7B53500")
        );
        let r = ch
            .unprotect(&hex("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000"))
            .unwrap();
        assert_eq!(r.data, hex("04303130365F36063034303030305C026175"));
    }

    #[test]
    fn wrong_key_fails_to_authenticate_the_card() {
        // The card answers with the real keys; a terminal with another MRZ cannot verify it.
        let key = BacKey::new("L898902C", "690806", "940624").unwrap();
        let mut card = Replay(vec![
            hex("4608F91988702212 9000"),
            hex(
                "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F 2F2D235D074D7449 9000",
            ),
        ]);
        let err = establish(&mut card, &key, &mut ReadStats::new()).unwrap_err();
        assert_eq!(err, BacError::CardNotAuthenticated);
    }

    #[test]
    fn refusal_and_short_answers_are_typed() {
        let key = BacKey::new("L898902C", "690806", "940623").unwrap();
        let mut card = Replay(vec![hex("4608F91988702212 9000"), hex("6300")]);
        assert_eq!(
            establish(&mut card, &key, &mut ReadStats::new()).unwrap_err(),
            BacError::Refused(StatusError::AuthenticationFailed)
        );
        let mut card = Replay(vec![hex("4608F919 9000")]);
        assert_eq!(
            establish(&mut card, &key, &mut ReadStats::new()).unwrap_err(),
            BacError::Malformed
        );
        let mut card = Replay(vec![hex("4608F91988702212 9000"), hex("0102 9000")]);
        assert_eq!(
            establish(&mut card, &key, &mut ReadStats::new()).unwrap_err(),
            BacError::Malformed
        );
    }

    #[test]
    fn mrz_fields_are_validated() {
        assert!(BacKey::from_mrz_information("L898902C<469080619406236").is_err());
        assert!(BacKey::from_mrz_information("L898902C<369080629406236").is_err());
        assert!(BacKey::from_mrz_information("L898902C<369080619406237").is_err());
        assert!(BacKey::from_mrz_information("short").is_err());
        assert!(BacKey::from_mrz_information("L898902C<36908061940623ẞ").is_err());
        assert!(BacKey::new("L898902c", "690806", "940623").is_err());
        assert!(BacKey::new("L898902C", "69080", "940623").is_err());
        assert!(BacKey::new("L898902C", "690806", "94062A").is_err());
        // No-expiry card: filler in the expiry field.
        assert!(BacKey::new("123456789", "900101", "<<<<<<").is_ok());
        assert_eq!(
            format!(
                "{:?}",
                BacKey::new("123456789", "900101", "300101").unwrap()
            ),
            "BacKey(..)"
        );
    }

    #[test]
    fn check_digits() {
        assert_eq!(check_digit("L898902C<"), Some(3));
        assert_eq!(check_digit("690806"), Some(1));
        assert_eq!(check_digit("940623"), Some(6));
        assert_eq!(check_digit("<<<<<<"), Some(0));
        assert_eq!(check_digit("a"), None);
    }

    struct Replay(Vec<Vec<u8>>);

    impl Transport for Replay {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, TransportError> {
            if self.0.is_empty() {
                return Err(TransportError::CardRemoved);
            }
            Ok(self.0.remove(0))
        }
    }
}
