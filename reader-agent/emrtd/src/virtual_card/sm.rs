//! The card's side of secure messaging, written apart from the terminal's `sm` module: it parses
//! protected commands itself and builds protected responses from the shared primitives only.

use crate::crypto::{self, Cipher, SessionKeys};

/// A protected command the card could not accept; answered 69 88 and the session ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SmFailure;

/// Plain content recovered from a protected command.
pub(crate) struct Unwrapped {
    pub data: Vec<u8>,
    pub le: Option<usize>,
}

/// The card's session: keys and its own copy of the counter.
pub(crate) struct CardSession {
    keys: SessionKeys,
    ssc: Vec<u8>,
}

impl CardSession {
    pub fn new(keys: SessionKeys, ssc: Vec<u8>) -> Self {
        CardSession { keys, ssc }
    }

    fn bump(&mut self) {
        for b in self.ssc.iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
    }

    fn iv(&self) -> Vec<u8> {
        let bs = self.keys.cipher.block_size();
        match self.keys.cipher {
            Cipher::TripleDes => vec![0; bs],
            _ => {
                let mut iv = self.ssc.clone();
                // Key lengths are the card's own: this cannot fail.
                let _ =
                    crypto::encrypt_cbc(self.keys.cipher, &self.keys.k_enc, &vec![0; bs], &mut iv);
                iv
            }
        }
    }

    fn mac(&self, input: &[u8]) -> [u8; 8] {
        let padded = crypto::pad(input, self.keys.cipher.block_size());
        crypto::mac(self.keys.cipher, &self.keys.k_mac, &padded).unwrap_or([0; 8])
    }

    /// Checks the MAC and decrypts a protected command's body (the header bytes as received).
    pub fn unwrap_command(&mut self, header: [u8; 4], body: &[u8]) -> Result<Unwrapped, SmFailure> {
        self.bump();
        let bs = self.keys.cipher.block_size();
        let mut objects = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (tag, value, whole, after) = split(rest).ok_or(SmFailure)?;
            objects.push((tag, value, whole));
            rest = after;
        }
        let (mac_do, covered) = objects.split_last().ok_or(SmFailure)?;
        if mac_do.0 != 0x8E || mac_do.1.len() != 8 {
            return Err(SmFailure);
        }
        let mut input = self.ssc.clone();
        input.extend_from_slice(&crypto::pad(&header, bs));
        for (tag, _, whole) in covered {
            if !matches!(tag, 0x85 | 0x87 | 0x97) {
                return Err(SmFailure);
            }
            input.extend_from_slice(whole);
        }
        if !crypto::mac_eq(&self.mac(&input), mac_do.1) {
            return Err(SmFailure);
        }
        let mut data = Vec::new();
        let mut le = None;
        for (tag, value, _) in covered {
            match tag {
                0x87 | 0x85 => {
                    let cryptogram = if *tag == 0x87 {
                        match value.split_first() {
                            Some((0x01, c)) => c,
                            _ => return Err(SmFailure),
                        }
                    } else {
                        &value[..]
                    };
                    let mut plain = cryptogram.to_vec();
                    crypto::decrypt_cbc(self.keys.cipher, &self.keys.k_enc, &self.iv(), &mut plain)
                        .map_err(|_| SmFailure)?;
                    let n = crypto::unpad(&plain).map_err(|_| SmFailure)?.len();
                    plain.truncate(n);
                    data = plain;
                }
                _ => {
                    le = Some(match value {
                        [0] => 256,
                        [x] => usize::from(*x),
                        [0, 0] => 65_536,
                        [a, b] => usize::from(u16::from_be_bytes([*a, *b])),
                        _ => return Err(SmFailure),
                    });
                }
            }
        }
        Ok(Unwrapped { data, le })
    }

    /// Length of the protected body for `n` plain bytes.
    pub fn wrapped_len(&self, n: usize, odd: bool) -> usize {
        let bs = self.keys.cipher.block_size();
        let tail = 4 + 2 + 8;
        if n == 0 {
            return tail;
        }
        let value = (n / bs + 1) * bs + usize::from(!odd);
        let len_octets = if value < 0x80 {
            1
        } else if value < 0x100 {
            2
        } else {
            3
        };
        1 + len_octets + value + tail
    }

    /// Builds the protected response body (without the trailer). `odd` selects DO85 over DO87.
    /// `corrupt` flips a MAC bit, for the forged-MAC fault.
    pub fn wrap_response(&mut self, data: &[u8], sw: u16, odd: bool, corrupt: bool) -> Vec<u8> {
        self.bump();
        let bs = self.keys.cipher.block_size();
        let mut body = Vec::new();
        if !data.is_empty() {
            let mut c = crypto::pad(data, bs);
            let _ = crypto::encrypt_cbc(self.keys.cipher, &self.keys.k_enc, &self.iv(), &mut c);
            if odd {
                put(&mut body, 0x85, &c);
            } else {
                let mut v = vec![0x01];
                v.extend_from_slice(&c);
                put(&mut body, 0x87, &v);
            }
        }
        put(&mut body, 0x99, &sw.to_be_bytes());
        let mut input = self.ssc.clone();
        input.extend_from_slice(&body);
        let mut mac = self.mac(&input);
        if corrupt {
            mac[7] ^= 0x01;
        }
        put(&mut body, 0x8E, &mac);
        body
    }
}

pub(crate) fn put(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(value);
}

/// (tag, value, whole object, rest of the buffer).
pub(crate) type Split<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// One object with a single-byte tag: (tag, value, whole object, rest).
pub(crate) fn split(buf: &[u8]) -> Option<Split<'_>> {
    let tag = *buf.first()?;
    let (len, header): (usize, usize) = match *buf.get(1)? {
        n @ 0..=0x7F => (usize::from(n), 2),
        0x81 => (usize::from(*buf.get(2)?), 3),
        0x82 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        _ => return None,
    };
    let end = header.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    Some((tag, &buf[header..end], &buf[..end], &buf[end..]))
}
