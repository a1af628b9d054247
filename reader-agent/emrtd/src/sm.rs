//! Secure messaging (ICAO 9303 Part 11, 9.8): the terminal's side of a channel opened by BAC or
//! PACE.
//!
//! Every command gets its data encrypted (DO87, or DO85 for odd instructions), its Le carried in
//! DO97 and a MAC (DO8E) over the send-sequence counter, the header and those objects. Every
//! response must carry DO99 (status) and a DO8E that verifies before anything is decrypted: a wrong
//! MAC is a typed error and no data comes out. The counter advances once per command and once per
//! response, 8 bytes for 3DES, 16 for AES (where the IV is E(KS_enc, SSC) rather than zero).

use std::fmt;

use crate::apdu::{ApduError, CommandApdu, ResponseApdu, SHORT_LC_MAX, SHORT_LE_MAX, StatusWord};
use crate::crypto::{self, Cipher, CryptoError, MAC_LEN, SessionKeys};

/// A response or command that secure messaging refuses.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmError {
    /// The initial send-sequence counter is not one cipher block long.
    #[error("send sequence counter must be one cipher block long")]
    SscLength,
    /// The response MAC does not verify: the response is dropped whole.
    #[error("response MAC does not verify")]
    BadMac,
    /// A success or warning status came without secure-messaging objects; it cannot be trusted.
    #[error("unprotected response with status {0} on a secure channel")]
    Unprotected(StatusWord),
    /// The response's data objects are malformed, duplicated, out of order or missing.
    #[error("malformed secure messaging response")]
    Malformed,
    /// The plain status word differs from the authenticated one in DO99.
    #[error("status word differs from the authenticated DO99")]
    StatusMismatch,
    /// Decrypted data has no valid padding (despite a good MAC: a faulty card).
    #[error("decrypted response has invalid padding")]
    BadPadding,
    /// The command cannot be encoded or the response is too short.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// A primitive was misused (wrong key length): a bug, not card data.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The terminal's end of a secure channel.
pub struct SecureChannel {
    keys: SessionKeys,
    ssc: Vec<u8>,
}

/// Keys stay out of Debug output.
impl fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureChannel")
            .field("cipher", &self.keys.cipher)
            .finish_non_exhaustive()
    }
}

impl SecureChannel {
    /// Opens a channel with session keys and the initial counter: for BAC the low halves of RND.IC
    /// and RND.IFD (8 bytes), for PACE zeros of the cipher's block size.
    pub fn new(keys: SessionKeys, initial_ssc: &[u8]) -> Result<Self, SmError> {
        if initial_ssc.len() != keys.cipher.block_size() {
            return Err(SmError::SscLength);
        }
        Ok(SecureChannel {
            keys,
            ssc: initial_ssc.to_vec(),
        })
    }

    /// The channel's cipher.
    pub fn cipher(&self) -> Cipher {
        self.keys.cipher
    }

    /// The current send-sequence counter.
    pub fn ssc(&self) -> &[u8] {
        &self.ssc
    }

    /// Largest plain Le whose protected response still fits a short APDU (256 bytes):
    /// 231 for 3DES, 223 (0xDF) for AES.
    pub fn max_short_le(&self) -> usize {
        let bs = self.keys.cipher.block_size();
        // 3 (87 81 L) + 1 (indicator) + padded + 4 (DO99) + 10 (DO8E) <= 256.
        let padded_max = (SHORT_LE_MAX - 3 - 1 - 4 - 2 - MAC_LEN) / bs * bs;
        padded_max - 1
    }

    /// Protects a plain command; the counter advances.
    pub fn protect(&mut self, cmd: &CommandApdu) -> Result<CommandApdu, SmError> {
        let cipher = self.keys.cipher;
        let bs = cipher.block_size();
        increment(&mut self.ssc);
        let cla = cmd.cla | 0x0C;
        let mut objects = Vec::new();
        if !cmd.data.is_empty() {
            let mut cryptogram = crypto::pad(&cmd.data, bs);
            crypto::encrypt_cbc(cipher, &self.keys.k_enc, &self.iv()?, &mut cryptogram)?;
            if cmd.ins & 1 == 0 {
                let mut value = Vec::with_capacity(1 + cryptogram.len());
                value.push(0x01);
                value.extend_from_slice(&cryptogram);
                push_do(&mut objects, 0x87, &value);
            } else {
                // Odd instructions carry BER-TLV data: DO85, no padding-content indicator.
                push_do(&mut objects, 0x85, &cryptogram);
            }
        }
        if let Some(le) = cmd.le {
            let le_bytes: Vec<u8> = if le <= SHORT_LE_MAX {
                vec![(le % SHORT_LE_MAX) as u8]
            } else {
                ((le % 65_536) as u16).to_be_bytes().to_vec()
            };
            push_do(&mut objects, 0x97, &le_bytes);
        }
        let mut n = self.ssc.clone();
        n.extend_from_slice(&crypto::pad(&[cla, cmd.ins, cmd.p1, cmd.p2], bs));
        n.extend_from_slice(&objects);
        let cc = crypto::mac(cipher, &self.keys.k_mac, &crypto::pad(&n, bs))?;
        push_do(&mut objects, 0x8E, &cc);

        let expected_response = cmd.le.map_or(0, |le| protected_response_len(le, bs));
        let extended = cmd.le.is_some_and(|le| le > SHORT_LE_MAX)
            || objects.len() > SHORT_LC_MAX
            || expected_response > SHORT_LE_MAX;
        Ok(CommandApdu {
            cla,
            ins: cmd.ins,
            p1: cmd.p1,
            p2: cmd.p2,
            data: objects,
            // Le 00 (or 00 00): the response holds objects whose length the terminal cannot
            // predict exactly.
            le: Some(if extended { 65_536 } else { SHORT_LE_MAX }),
        })
    }

    /// Steps the counter back for a protected command that never reached the card (the reader
    /// refused it), so terminal and card stay in step.
    pub fn unsent(&mut self) {
        decrement(&mut self.ssc);
    }

    /// Verifies and unwraps a protected response (data and status word as received); the counter
    /// advances. Only a verified response yields data.
    pub fn unprotect(&mut self, raw: &[u8]) -> Result<ResponseApdu, SmError> {
        let response = ResponseApdu::parse(raw)?;
        increment(&mut self.ssc);
        if response.data.is_empty() {
            // An error status without objects carries no data and may stand (cards answer SM
            // errors such as 6988 in plain); success or a warning must be authenticated.
            let sw = response.sw;
            return if sw.is_success() || matches!(sw.sw1(), 0x61..=0x63) {
                Err(SmError::Unprotected(sw))
            } else {
                Ok(response)
            };
        }

        let mut rest = response.data.as_slice();
        let mut cryptogram = None;
        let mut mac_input = self.ssc.clone();
        let (mut tag, mut value, mut raw_do, mut after) = next_do(rest)?;
        if tag == 0x87 || tag == 0x85 {
            cryptogram = Some((tag, value));
            mac_input.extend_from_slice(raw_do);
            rest = after;
            (tag, value, raw_do, after) = next_do(rest)?;
        }
        if tag != 0x99 || value.len() != 2 {
            return Err(SmError::Malformed);
        }
        let status = StatusWord(u16::from_be_bytes([value[0], value[1]]));
        mac_input.extend_from_slice(raw_do);
        rest = after;
        let (tag, received_mac, _, after) = next_do(rest)?;
        if tag != 0x8E || received_mac.len() != MAC_LEN || !after.is_empty() {
            return Err(SmError::Malformed);
        }

        let bs = self.keys.cipher.block_size();
        let expected = crypto::mac(
            self.keys.cipher,
            &self.keys.k_mac,
            &crypto::pad(&mac_input, bs),
        )?;
        if !crypto::mac_eq(&expected, received_mac) {
            return Err(SmError::BadMac);
        }
        if status != response.sw {
            return Err(SmError::StatusMismatch);
        }

        let data = match cryptogram {
            None => Vec::new(),
            Some((tag, value)) => {
                let encrypted = if tag == 0x87 {
                    match value.split_first() {
                        Some((0x01, encrypted)) => encrypted,
                        _ => return Err(SmError::Malformed),
                    }
                } else {
                    value
                };
                if encrypted.is_empty() || encrypted.len() % bs != 0 {
                    return Err(SmError::Malformed);
                }
                let mut plain = encrypted.to_vec();
                crypto::decrypt_cbc(self.keys.cipher, &self.keys.k_enc, &self.iv()?, &mut plain)?;
                let len = crypto::unpad(&plain)
                    .map_err(|_| SmError::BadPadding)?
                    .len();
                plain.truncate(len);
                plain
            }
        };
        Ok(ResponseApdu { data, sw: status })
    }

    /// IV for the current counter: zero for 3DES, E(KS_enc, SSC) for AES.
    fn iv(&self) -> Result<Vec<u8>, CryptoError> {
        let cipher = self.keys.cipher;
        let bs = cipher.block_size();
        if cipher == Cipher::TripleDes {
            return Ok(vec![0; bs]);
        }
        let mut iv = self.ssc.clone();
        crypto::encrypt_cbc(cipher, &self.keys.k_enc, &vec![0; bs], &mut iv)?;
        Ok(iv)
    }
}

/// Length of the protected response to a plain Le, for the short/extended decision.
fn protected_response_len(le: usize, bs: usize) -> usize {
    let padded = (le / bs + 1) * bs;
    let do87_value = 1 + padded;
    1 + length_octets(do87_value) + do87_value + 4 + 2 + MAC_LEN
}

fn length_octets(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        _ => 3,
    }
}

fn push_do(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    match value.len() {
        len @ 0..=0x7F => out.push(len as u8),
        len @ 0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        len => {
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// A data object split from a buffer: (tag, value, whole object, rest of the buffer).
type DataObject<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// One secure-messaging data object: (tag, value, whole object, rest). Tags are single bytes;
/// lengths up to 82 xx xx; every length is checked against the bytes present.
fn next_do(buf: &[u8]) -> Result<DataObject<'_>, SmError> {
    let (&tag, after_tag) = buf.split_first().ok_or(SmError::Malformed)?;
    let (&first, after_first) = after_tag.split_first().ok_or(SmError::Malformed)?;
    let (len, body) = match first {
        0..=0x7F => (first as usize, after_first),
        0x81 => match after_first {
            [l, body @ ..] => (*l as usize, body),
            _ => return Err(SmError::Malformed),
        },
        0x82 => match after_first {
            [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]) as usize, body),
            _ => return Err(SmError::Malformed),
        },
        _ => return Err(SmError::Malformed),
    };
    if body.len() < len {
        return Err(SmError::Malformed);
    }
    let header = buf.len() - body.len();
    Ok((tag, &body[..len], &buf[..header + len], &body[len..]))
}

fn increment(ssc: &mut [u8]) {
    for b in ssc.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
}

fn decrement(ssc: &mut [u8]) {
    for b in ssc.iter_mut().rev() {
        let (v, borrow) = b.overflowing_sub(1);
        *b = v;
        if !borrow {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;
    use zeroize::Zeroizing;

    /// ICAO 9303-11 Appendix D.3 session keys and counter.
    fn appendix_d_channel() -> SecureChannel {
        let keys = SessionKeys {
            cipher: Cipher::TripleDes,
            k_enc: Zeroizing::new(hex("979EC13B1CBFE9DCD01AB0FED307EAE5")),
            k_mac: Zeroizing::new(hex("F1CB1F1FB5ADF208806B89DC579DC1F8")),
        };
        SecureChannel::new(keys, &hex("887022120C06C226")).unwrap()
    }

    fn protect(ch: &mut SecureChannel, cmd: CommandApdu) -> Vec<u8> {
        ch.protect(&cmd).unwrap().to_bytes().unwrap()
    }

    #[test]
    fn appendix_d4_three_exchanges_byte_for_byte() {
        let mut ch = appendix_d_channel();
        // SELECT EF.COM.
        let cmd = CommandApdu::new(0x00, 0xA4, 0x02, 0x0C).with_data(hex("011E"));
        assert_eq!(
            protect(&mut ch, cmd),
            hex("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
        );
        let r = ch
            .unprotect(&hex("990290008E08FA855A5D4C50A8ED9000"))
            .unwrap();
        assert_eq!((r.data.len(), r.sw), (0, StatusWord::SUCCESS));
        // READ BINARY of the first four bytes.
        let cmd = CommandApdu::new(0x00, 0xB0, 0x00, 0x00).with_le(4);
        assert_eq!(
            protect(&mut ch, cmd),
            hex("0CB000000D9701048E08ED6705417E96BA5500")
        );
        let r = ch
            .unprotect(&hex(
                "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000",
            ))
            .unwrap();
        assert_eq!(r.data, hex("60145F01"));
        // READ BINARY of the remaining 18 bytes from offset 4.
        let cmd = CommandApdu::new(0x00, 0xB0, 0x00, 0x04).with_le(0x12);
        assert_eq!(
            protect(&mut ch, cmd),
            hex("0CB000040D9701128E082EA28A70F3C7B53500")
        );
        let r = ch
            .unprotect(&hex(
                "871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000",
            ))
            .unwrap();
        assert_eq!(r.data, hex("04303130365F36063034303030305C026175"));
        assert_eq!(ch.ssc(), hex("887022120C06C22C"));
    }

    #[test]
    fn forged_mac_yields_no_data_and_a_typed_error() {
        let mut ch = appendix_d_channel();
        protect(
            &mut ch,
            CommandApdu::new(0x00, 0xA4, 0x02, 0x0C).with_data(hex("011E")),
        );
        ch.unprotect(&hex("990290008E08FA855A5D4C50A8ED9000"))
            .unwrap();
        protect(&mut ch, CommandApdu::new(0x00, 0xB0, 0x00, 0x00).with_le(4));
        // Last MAC byte flipped (ED -> EE).
        let forged = hex("8709019FF0EC34F9922651990290008E08AD55CC17140B2DEE9000");
        assert_eq!(ch.unprotect(&forged), Err(SmError::BadMac));
    }

    #[test]
    fn altered_cryptogram_or_status_is_refused() {
        for (i, flip) in [(4usize, 0x01u8), (13, 0x01), (12, 0x10)] {
            let mut ch = appendix_d_channel();
            protect(
                &mut ch,
                CommandApdu::new(0x00, 0xA4, 0x02, 0x0C).with_data(hex("011E")),
            );
            ch.unprotect(&hex("990290008E08FA855A5D4C50A8ED9000"))
                .unwrap();
            protect(&mut ch, CommandApdu::new(0x00, 0xB0, 0x00, 0x00).with_le(4));
            let mut r = hex("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000");
            r[i] ^= flip;
            assert!(ch.unprotect(&r).is_err(), "byte {i}");
        }
    }

    #[test]
    fn unprotected_success_is_refused_and_plain_errors_pass() {
        let mut ch = appendix_d_channel();
        assert_eq!(
            ch.unprotect(&[0x90, 0x00]),
            Err(SmError::Unprotected(StatusWord::SUCCESS))
        );
        assert_eq!(
            ch.unprotect(&[0x62, 0x82]),
            Err(SmError::Unprotected(StatusWord(0x6282)))
        );
        assert_eq!(ch.unprotect(&[0x69, 0x88]).unwrap().sw, StatusWord(0x6988));
    }

    #[test]
    fn hostile_responses_are_malformed_not_panics() {
        let cases: &[&[u8]] = &[
            &[0x87, 0x90, 0x00],
            &[0x87, 0x82, 0xFF, 0xFF, 0x01, 0x90, 0x00],
            &[0x87, 0x81, 0x90, 0x00],
            &[0x99, 0x02, 0x90, 0x00, 0x90, 0x00],
            &[
                0x99, 0x01, 0x90, 0x8E, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x90, 0x00,
            ],
            &[0x8E, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x90, 0x00],
            &[
                0x99, 0x02, 0x90, 0x00, 0x8E, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x90, 0x00,
            ],
            &[0x99, 0x02, 0x90, 0x00, 0x8E, 0x84, 0, 0, 0, 0, 0x90, 0x00],
            &[0x01],
        ];
        for case in cases {
            let mut ch = appendix_d_channel();
            assert!(ch.unprotect(case).is_err(), "{case:02X?}");
        }
    }

    #[test]
    fn extended_le_goes_into_a_two_byte_do97_and_an_extended_apdu() {
        let mut ch = appendix_d_channel();
        let p = ch
            .protect(&CommandApdu::new(0, 0xB0, 0, 0).with_le(0x1000))
            .unwrap();
        assert_eq!(&p.data[..4], &[0x97, 0x02, 0x10, 0x00]);
        let bytes = p.to_bytes().unwrap();
        assert_eq!(&bytes[..7], &[0x0C, 0xB0, 0, 0, 0, 0, 14]);
        assert_eq!(&bytes[bytes.len() - 2..], &[0, 0]);
        // A short Le whose protected answer cannot fit 256 bytes also goes extended.
        assert!(
            ch.protect(&CommandApdu::new(0, 0xB0, 0, 0).with_le(0xFF))
                .unwrap()
                .is_extended()
        );
        assert!(
            !ch.protect(&CommandApdu::new(0, 0xB0, 0, 0).with_le(231))
                .unwrap()
                .is_extended()
        );
        assert_eq!(ch.max_short_le(), 231);
    }

    #[test]
    fn aes_channel_round_trip_through_an_independent_wrapper() {
        // Card-side construction from the primitives alone, to check IV = E(K, SSC) and CMAC.
        let k_enc = hex("000102030405060708090A0B0C0D0E0F");
        let k_mac = hex("F0E0D0C0B0A090807060504030201000");
        let keys = SessionKeys {
            cipher: Cipher::Aes128,
            k_enc: Zeroizing::new(k_enc.clone()),
            k_mac: Zeroizing::new(k_mac.clone()),
        };
        let mut ch = SecureChannel::new(keys, &[0; 16]).unwrap();
        assert_eq!(ch.max_short_le(), 223);
        let p = ch
            .protect(&CommandApdu::new(0, 0xB0, 0x81, 0).with_le(5))
            .unwrap();
        assert_eq!(p.data[..3], [0x97, 0x01, 0x05]);
        let mut ssc = [0u8; 16];
        ssc[15] = 1;
        let mut mac_in = ssc.to_vec();
        mac_in.extend_from_slice(&crypto::pad(&[0x0C, 0xB0, 0x81, 0], 16));
        mac_in.extend_from_slice(&[0x97, 0x01, 0x05]);
        let mac = crypto::aes_cmac(&k_mac, &crypto::pad(&mac_in, 16)).unwrap();
        assert_eq!(p.data[3..], [&[0x8E, 0x08][..], &mac].concat());

        ssc[15] = 2;
        let mut iv = ssc.to_vec();
        crypto::encrypt_cbc(Cipher::Aes128, &k_enc, &[0; 16], &mut iv).unwrap();
        let mut ct = crypto::pad(b"hello", 16);
        crypto::encrypt_cbc(Cipher::Aes128, &k_enc, &iv, &mut ct).unwrap();
        let mut resp = vec![0x87, 17, 0x01];
        resp.extend_from_slice(&ct);
        resp.extend_from_slice(&[0x99, 0x02, 0x90, 0x00]);
        let mut k = ssc.to_vec();
        k.extend_from_slice(&resp);
        let mac = crypto::aes_cmac(&k_mac, &crypto::pad(&k, 16)).unwrap();
        resp.extend_from_slice(&[0x8E, 0x08]);
        resp.extend_from_slice(&mac);
        resp.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(ch.unprotect(&resp).unwrap().data, b"hello");
    }

    #[test]
    fn counter_wraps_and_unsent_steps_back() {
        let mut ssc = vec![0x00, 0xFF, 0xFF];
        increment(&mut ssc);
        assert_eq!(ssc, [0x01, 0, 0]);
        decrement(&mut ssc);
        assert_eq!(ssc, [0x00, 0xFF, 0xFF]);
        let mut ch = appendix_d_channel();
        ch.protect(&CommandApdu::new(0, 0xB0, 0, 0).with_le(4))
            .unwrap();
        ch.unsent();
        assert_eq!(ch.ssc(), hex("887022120C06C226"));
    }

    #[test]
    fn wrong_ssc_length_is_refused() {
        let keys = SessionKeys::derive(Cipher::Aes128, b"k");
        assert_eq!(
            SecureChannel::new(keys, &[0; 8]).unwrap_err(),
            SmError::SscLength
        );
    }
}
