//! Symmetric primitives shared by BAC, PACE and secure messaging (ICAO 9303 Part 11, 9.7).
//!
//! Thin, validated wrappers over RustCrypto: the ICAO key derivation function, CBC with a caller-given
//! IV and no padding (the protocols pad explicitly with ISO/IEC 9797-1 method 2), the retail MAC for
//! 3DES and AES-CMAC truncated to 8 bytes. Nothing here is a cipher of its own; every function is
//! checked against ICAO 9303 Part 11 Appendix D (3DES) or NIST SP 800-38B (CMAC) in the tests.
//!
//! The virtual card shares these primitives on purpose (they are validated by published vectors);
//! it does not share the protocol logic built on top of them.

use aes::cipher::{
    Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit,
    KeyIvInit,
};
use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use des::{Des, TdesEde2};
use retail_mac::RetailMac;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use zeroize::Zeroizing;

/// KDF counter for the encryption key (ICAO 9303-11, 9.7.1).
pub const KDF_ENC: u32 = 1;
/// KDF counter for the MAC key.
pub const KDF_MAC: u32 = 2;
/// KDF counter for the PACE password key K_pi.
pub const KDF_PACE: u32 = 3;

/// Length of the MAC carried in DO8E, for every cipher of ICAO 9303 secure messaging.
pub const MAC_LEN: usize = 8;

/// Block cipher of a secure channel: two-key 3DES (BAC, PACE with 3DES) or AES (PACE).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// Two-key triple DES (EDE, K1 = K3), retail MAC.
    TripleDes,
    /// AES with a 128-bit key, AES-CMAC.
    Aes128,
    /// AES with a 192-bit key, AES-CMAC.
    Aes192,
    /// AES with a 256-bit key, AES-CMAC.
    Aes256,
}

impl Cipher {
    /// Block size in bytes: also the padding unit and, for secure messaging, the SSC length.
    pub const fn block_size(self) -> usize {
        match self {
            Cipher::TripleDes => 8,
            Cipher::Aes128 | Cipher::Aes192 | Cipher::Aes256 => 16,
        }
    }

    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Cipher::TripleDes | Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
        }
    }
}

/// Misuse of a primitive, or malformed padding in data received from a card.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key does not have the length the cipher needs.
    #[error("key length does not match the cipher")]
    KeyLength,
    /// The IV is not one block long.
    #[error("IV length does not match the cipher's block size")]
    IvLength,
    /// CBC input must be a whole number of blocks (the protocols pad before encrypting).
    #[error("data is not a whole number of cipher blocks")]
    NotBlockAligned,
    /// ISO/IEC 9797-1 method 2 padding is missing or malformed.
    #[error("malformed ISO/IEC 9797-1 method 2 padding")]
    BadPadding,
}

/// The ICAO 9303 key derivation function: `H(secret || counter)` truncated to the key length,
/// SHA-1 for 3DES and AES-128, SHA-256 for AES-192 and AES-256. 3DES keys get DES parity bits
/// adjusted, as the standard prescribes (the Appendix D keys are the parity-adjusted values).
pub fn kdf(cipher: Cipher, secret: &[u8], counter: u32) -> Zeroizing<Vec<u8>> {
    let counter = counter.to_be_bytes();
    let digest: Zeroizing<Vec<u8>> = match cipher {
        Cipher::TripleDes | Cipher::Aes128 => Zeroizing::new(
            Sha1::new()
                .chain_update(secret)
                .chain_update(counter)
                .finalize()
                .to_vec(),
        ),
        Cipher::Aes192 | Cipher::Aes256 => Zeroizing::new(
            Sha256::new()
                .chain_update(secret)
                .chain_update(counter)
                .finalize()
                .to_vec(),
        ),
    };
    let mut key = Zeroizing::new(digest[..cipher.key_len()].to_vec());
    if cipher == Cipher::TripleDes {
        key.iter_mut().for_each(|b| *b = with_des_parity(*b));
    }
    key
}

/// Sets the least significant bit so that the byte has odd parity (DES key parity).
fn with_des_parity(b: u8) -> u8 {
    let high = b & 0xFE;
    if high.count_ones().is_multiple_of(2) {
        high | 1
    } else {
        high
    }
}

/// Encrypts `data` in place in CBC mode with the given IV. `data` must already be padded.
pub fn encrypt_cbc(
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    match cipher {
        Cipher::TripleDes => cbc_encrypt::<TdesEde2>(key, iv, data),
        Cipher::Aes128 => cbc_encrypt::<Aes128>(key, iv, data),
        Cipher::Aes192 => cbc_encrypt::<Aes192>(key, iv, data),
        Cipher::Aes256 => cbc_encrypt::<Aes256>(key, iv, data),
    }
}

/// Decrypts `data` in place in CBC mode with the given IV. Padding is left for [`unpad`].
pub fn decrypt_cbc(
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
    data: &mut [u8],
) -> Result<(), CryptoError> {
    match cipher {
        Cipher::TripleDes => cbc_decrypt::<TdesEde2>(key, iv, data),
        Cipher::Aes128 => cbc_decrypt::<Aes128>(key, iv, data),
        Cipher::Aes192 => cbc_decrypt::<Aes192>(key, iv, data),
        Cipher::Aes256 => cbc_decrypt::<Aes256>(key, iv, data),
    }
}

fn check_lengths(
    cipher_key_len: usize,
    block: usize,
    key: &[u8],
    iv: &[u8],
    data: &[u8],
) -> Result<(), CryptoError> {
    if key.len() != cipher_key_len {
        return Err(CryptoError::KeyLength);
    }
    if iv.len() != block {
        return Err(CryptoError::IvLength);
    }
    if !data.len().is_multiple_of(block) {
        return Err(CryptoError::NotBlockAligned);
    }
    Ok(())
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockCipherEncrypt + KeyInit,
{
    check_lengths(C::key_size(), C::block_size(), key, iv, data)?;
    let mut mode =
        cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::KeyLength)?;
    let (blocks, _) = Array::slice_as_chunks_mut(data);
    mode.encrypt_blocks(blocks);
    Ok(())
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    C: BlockCipherDecrypt + KeyInit,
{
    check_lengths(C::key_size(), C::block_size(), key, iv, data)?;
    let mut mode =
        cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::KeyLength)?;
    let (blocks, _) = Array::slice_as_chunks_mut(data);
    mode.decrypt_blocks(blocks);
    Ok(())
}

/// ISO/IEC 9797-1 padding method 2: append 0x80, then zeros up to a multiple of `block`.
/// Always adds at least one byte, so aligned input gains a whole block.
pub fn pad(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + block);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % block != 0 {
        out.push(0);
    }
    out
}

/// Strict removal of ISO/IEC 9797-1 method 2 padding: trailing zeros preceded by 0x80. Input that
/// ends in anything else (for example a wrong key's garbage) is refused, never guessed at.
pub fn unpad(data: &[u8]) -> Result<&[u8], CryptoError> {
    let end = data
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(CryptoError::BadPadding)?;
    if data[end] != 0x80 {
        return Err(CryptoError::BadPadding);
    }
    Ok(&data[..end])
}

/// ISO/IEC 9797-1 MAC algorithm 3 with DES (the "retail MAC") over `data`, which the caller has
/// padded with method 2. `key` is K || K' (16 bytes).
pub fn retail_mac(key: &[u8], data: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
    if key.len() != 16 {
        return Err(CryptoError::KeyLength);
    }
    if !data.len().is_multiple_of(8) {
        return Err(CryptoError::NotBlockAligned);
    }
    let mut mac =
        <RetailMac<Des> as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// AES-CMAC over `data`, truncated to 8 bytes as ICAO 9303 uses it (secure messaging and the
/// PACE authentication tokens). Secure messaging pads before calling; PACE tokens do not.
pub fn aes_cmac(key: &[u8], data: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
    let full = match key.len() {
        16 => cmac_full::<Aes128>(key, data)?,
        24 => cmac_full::<Aes192>(key, data)?,
        32 => cmac_full::<Aes256>(key, data)?,
        _ => return Err(CryptoError::KeyLength),
    };
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    Ok(out)
}

fn cmac_full<C>(key: &[u8], data: &[u8]) -> Result<[u8; 16], CryptoError>
where
    Cmac<C>: KeyInit + Mac,
    C: cmac::block_api::CmacCipher,
{
    let mut mac = <Cmac<C> as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::KeyLength)?;
    Mac::update(&mut mac, data);
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&tag[..16]);
    Ok(out)
}

/// The MAC of a secure channel for `cipher` over already padded `data`: retail MAC for 3DES,
/// AES-CMAC truncated to 8 bytes for AES.
pub fn mac(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<[u8; MAC_LEN], CryptoError> {
    match cipher {
        Cipher::TripleDes => retail_mac(key, data),
        Cipher::Aes128 | Cipher::Aes192 | Cipher::Aes256 => {
            if key.len() != cipher.key_len() {
                return Err(CryptoError::KeyLength);
            }
            aes_cmac(key, data)
        }
    }
}

/// Compares two MACs in time independent of where they differ.
pub fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Session keys of a secure channel (from BAC or PACE). Both keys are wiped when dropped.
#[derive(Clone)]
pub struct SessionKeys {
    /// Cipher both keys belong to.
    pub cipher: Cipher,
    /// Encryption key KS_enc.
    pub k_enc: Zeroizing<Vec<u8>>,
    /// MAC key KS_mac.
    pub k_mac: Zeroizing<Vec<u8>>,
}

impl SessionKeys {
    /// Derives KS_enc and KS_mac from a shared secret with the ICAO KDF (counters 1 and 2).
    pub fn derive(cipher: Cipher, shared_secret: &[u8]) -> Self {
        SessionKeys {
            cipher,
            k_enc: kdf(cipher, shared_secret, KDF_ENC),
            k_mac: kdf(cipher, shared_secret, KDF_MAC),
        }
    }
}

/// Keys never appear in Debug output.
impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // ICAO 9303 Part 11 Appendix D.2: K_seed of MRZ information "L898902C<369080619406236".
    const K_SEED: &str = "239AB9CB282DAF66231DC5A4DF6BFBAE";

    #[test]
    fn kdf_reproduces_appendix_d_document_keys() {
        assert_eq!(
            *kdf(Cipher::TripleDes, &hex(K_SEED), KDF_ENC),
            hex("AB94FDECF2674FDFB9B391F85D7F76F2")
        );
        assert_eq!(
            *kdf(Cipher::TripleDes, &hex(K_SEED), KDF_MAC),
            hex("7962D9ECE03D1ACD4C76089DCE131543")
        );
    }

    #[test]
    fn kdf_reproduces_appendix_d_session_keys() {
        // D.3: K_seed = K.IFD xor K.IC.
        let keys = SessionKeys::derive(Cipher::TripleDes, &hex("0036D272F5C350ACAC50C3F572D23600"));
        assert_eq!(*keys.k_enc, hex("979EC13B1CBFE9DCD01AB0FED307EAE5"));
        assert_eq!(*keys.k_mac, hex("F1CB1F1FB5ADF208806B89DC579DC1F8"));
    }

    #[test]
    fn kdf_hash_and_length_per_cipher() {
        let secret = b"shared secret";
        let mut c = secret.to_vec();
        c.extend_from_slice(&[0, 0, 0, 1]);
        let sha1 = Sha1::digest(&c);
        let sha256 = Sha256::digest(&c);
        assert_eq!(*kdf(Cipher::Aes128, secret, 1), sha1[..16].to_vec());
        assert_eq!(*kdf(Cipher::Aes192, secret, 1), sha256[..24].to_vec());
        assert_eq!(*kdf(Cipher::Aes256, secret, 1), sha256[..32].to_vec());
    }

    #[test]
    fn tdes_cbc_reproduces_appendix_d_mutual_authentication() {
        // D.3: E_IFD = E(K_enc, RND.IFD || RND.IC || K.IFD), zero IV.
        let k_enc = hex("AB94FDECF2674FDFB9B391F85D7F76F2");
        let mut s = hex("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B");
        encrypt_cbc(Cipher::TripleDes, &k_enc, &[0; 8], &mut s).unwrap();
        assert_eq!(
            s,
            hex("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
        );
        let mut e_ic = hex("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F");
        decrypt_cbc(Cipher::TripleDes, &k_enc, &[0; 8], &mut e_ic).unwrap();
        assert_eq!(
            e_ic,
            hex("4608F91988702212781723860C06C2260B4F80323EB3191CB04970CB4052790B")
        );
    }

    #[test]
    fn retail_mac_reproduces_appendix_d() {
        let k_mac = hex("7962D9ECE03D1ACD4C76089DCE131543");
        let e_ifd = hex("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2");
        assert_eq!(
            retail_mac(&k_mac, &pad(&e_ifd, 8)).unwrap().to_vec(),
            hex("5F1448EEA8AD90A7")
        );
        // D.4: MAC of the protected SELECT EF.COM.
        let n = hex("887022120C06C2270CA4020C800000008709016375432908C044F68000000000");
        let ks_mac = hex("F1CB1F1FB5ADF208806B89DC579DC1F8");
        assert_eq!(
            retail_mac(&ks_mac, &n).unwrap().to_vec(),
            hex("BF8B92D635FF24F8")
        );
    }

    #[test]
    fn aes_cmac_matches_nist_sp800_38b_truncated() {
        // SP 800-38B D.1 (AES-128), example 2: 16-byte message.
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let msg = hex("6bc1bee22e409f96e93d7e117393172a");
        assert_eq!(
            aes_cmac(&key, &msg).unwrap().to_vec(),
            hex("070a16b46b4d4144")
        );
        assert_eq!(
            aes_cmac(&key, &[]).unwrap().to_vec(),
            hex("bb1d6929e9593728")
        );
    }

    #[test]
    fn aes_cbc_matches_nist_sp800_38a() {
        // SP 800-38A F.2.1 CBC-AES128.Encrypt, first block.
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let mut block = hex("6bc1bee22e409f96e93d7e117393172a");
        encrypt_cbc(Cipher::Aes128, &key, &iv, &mut block).unwrap();
        assert_eq!(block, hex("7649abac8119b246cee98e9b12e9197d"));
        decrypt_cbc(Cipher::Aes128, &key, &iv, &mut block).unwrap();
        assert_eq!(block, hex("6bc1bee22e409f96e93d7e117393172a"));
    }

    #[test]
    fn padding_method_2_round_trip_and_strictness() {
        assert_eq!(pad(&[1, 2, 3], 8), vec![1, 2, 3, 0x80, 0, 0, 0, 0]);
        assert_eq!(pad(&[0; 8], 8).len(), 16);
        assert_eq!(pad(&[], 16), {
            let mut v = vec![0x80];
            v.resize(16, 0);
            v
        });
        assert_eq!(unpad(&pad(&[1, 2, 0x80, 0], 8)).unwrap(), &[1, 2, 0x80, 0]);
        assert_eq!(unpad(&[1, 2, 0, 0]), Err(CryptoError::BadPadding));
        assert_eq!(unpad(&[0, 0, 0]), Err(CryptoError::BadPadding));
        assert_eq!(unpad(&[]), Err(CryptoError::BadPadding));
    }

    #[test]
    fn misuse_is_a_typed_error() {
        let mut odd = [0u8; 9];
        assert_eq!(
            encrypt_cbc(Cipher::TripleDes, &[0; 16], &[0; 8], &mut odd),
            Err(CryptoError::NotBlockAligned)
        );
        assert_eq!(
            encrypt_cbc(Cipher::Aes128, &[0; 15], &[0; 16], &mut [0; 16]),
            Err(CryptoError::KeyLength)
        );
        assert_eq!(
            decrypt_cbc(Cipher::Aes256, &[0; 32], &[0; 8], &mut [0; 16]),
            Err(CryptoError::IvLength)
        );
        assert_eq!(retail_mac(&[0; 8], &[0; 8]), Err(CryptoError::KeyLength));
        assert_eq!(aes_cmac(&[0; 17], &[]), Err(CryptoError::KeyLength));
        assert_eq!(
            mac(Cipher::Aes256, &[0; 16], &[]),
            Err(CryptoError::KeyLength)
        );
    }

    #[test]
    fn session_keys_debug_hides_keys() {
        let keys = SessionKeys::derive(Cipher::Aes128, b"secret");
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains("k_enc") && !shown.contains("k_mac"),
            "{shown}"
        );
        assert!(shown.contains("Aes128"));
    }

    #[test]
    fn mac_eq_is_exact() {
        assert!(mac_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!mac_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!mac_eq(&[1, 2], &[1, 2, 3]));
    }
}
