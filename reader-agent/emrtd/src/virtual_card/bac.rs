//! The card's side of BAC: it holds the MRZ information printed on it, answers GET CHALLENGE and
//! verifies the terminal's EXTERNAL AUTHENTICATE, written apart from the terminal's `bac` module.

use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::crypto::{self, Cipher, KDF_ENC, KDF_MAC, SessionKeys};

/// What EXTERNAL AUTHENTICATE produced.
pub(crate) enum BacAnswer {
    /// E.IC || M.IC, keys and counter for the card's session.
    Authenticated {
        response: Vec<u8>,
        keys: SessionKeys,
        ssc: Vec<u8>,
    },
    /// The terminal's cryptogram does not verify: 63 00.
    Refused,
    /// Malformed command or no challenge issued: status word to answer.
    Error(u16),
}

/// The card's BAC state.
pub(crate) struct CardBac {
    k_enc: Zeroizing<Vec<u8>>,
    k_mac: Zeroizing<Vec<u8>>,
    rnd_ic: Option<[u8; 8]>,
}

impl CardBac {
    /// `mrz_information`: document number, date of birth and expiry, each followed by its check
    /// digit, as printed in the card's MRZ.
    pub fn new(mrz_information: &str) -> Self {
        let seed = Zeroizing::new(Sha1::digest(mrz_information.as_bytes())[..16].to_vec());
        CardBac {
            k_enc: crypto::kdf(Cipher::TripleDes, &seed, KDF_ENC),
            k_mac: crypto::kdf(Cipher::TripleDes, &seed, KDF_MAC),
            rnd_ic: None,
        }
    }

    pub fn challenge(&mut self) -> [u8; 8] {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap_or(());
        self.rnd_ic = Some(rnd);
        rnd
    }

    pub fn external_authenticate(&mut self, data: &[u8]) -> BacAnswer {
        let Some(rnd_ic) = self.rnd_ic.take() else {
            return BacAnswer::Error(0x6985);
        };
        if data.len() != 40 {
            return BacAnswer::Error(0x6700);
        }
        let (e_ifd, m_ifd) = data.split_at(32);
        let Ok(mac) = crypto::retail_mac(&self.k_mac, &crypto::pad(e_ifd, 8)) else {
            return BacAnswer::Error(0x6F00);
        };
        if !crypto::mac_eq(&mac, m_ifd) {
            return BacAnswer::Refused;
        }
        let mut s = Zeroizing::new(e_ifd.to_vec());
        if crypto::decrypt_cbc(Cipher::TripleDes, &self.k_enc, &[0; 8], &mut s).is_err()
            || s[8..16] != rnd_ic
        {
            return BacAnswer::Refused;
        }
        let mut k_ic = Zeroizing::new([0u8; 16]);
        getrandom::fill(&mut *k_ic).unwrap_or(());
        let mut r = Zeroizing::new(Vec::with_capacity(32));
        r.extend_from_slice(&rnd_ic);
        r.extend_from_slice(&s[..8]);
        r.extend_from_slice(&*k_ic);
        let _ = crypto::encrypt_cbc(Cipher::TripleDes, &self.k_enc, &[0; 8], &mut r);
        let m_ic = crypto::retail_mac(&self.k_mac, &crypto::pad(&r, 8)).unwrap_or([0; 8]);
        let mut response = r.to_vec();
        response.extend_from_slice(&m_ic);
        let seed: Vec<u8> = s[16..32]
            .iter()
            .zip(k_ic.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let keys = SessionKeys::derive(Cipher::TripleDes, &seed);
        let mut ssc = rnd_ic[4..].to_vec();
        ssc.extend_from_slice(&s[4..8]);
        BacAnswer::Authenticated {
            response,
            keys,
            ssc,
        }
    }
}
