//! Active Authentication, the terminal's side (ICAO 9303-11, 6.1): the terminal sends a fresh
//! 8-byte challenge in INTERNAL AUTHENTICATE and the chip signs it with the private key whose
//! public half is in DG15.
//!
//! This module only runs the exchange and hands back the signature bytes as received. Checking
//! them is the verifier's job (`cccd-authenticity`), so the agent and the backend check a
//! signature with the same code, and the backend can do it later from the bytes alone. A clone
//! that copied DG15 but not the private key still answers 90 00: only the verifier can tell.

use crate::apdu::{CommandApdu, StatusWord};
use crate::reader::{ReadError, Reader};
use crate::stats::Phase;
use crate::transport::{Transport, TransportError};

/// Length of the challenge (RND.IFD).
pub const CHALLENGE_LEN: usize = 8;

/// Le for a reader without extended APDUs: the most a short protected answer can carry under
/// AES secure messaging (3DES allows a little more). Enough for ECDSA up to P-521 and RSA-1024.
const SHORT_LE: usize = 223;

/// Why no signature came back.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AaError {
    /// The exchange failed: transport, a secure-messaging check, or no channel open.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The card answered with an error status (6D00: it has no Active Authentication).
    #[error("card refused INTERNAL AUTHENTICATE ({0})")]
    Refused(StatusWord),
    /// The card answered 90 00 without a signature.
    #[error("card returned no signature")]
    EmptySignature,
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    Random,
}

/// A fresh challenge from the operating system's generator. The backend issues its own
/// challenges for presence proofs; this one is for checks the agent makes for itself.
pub fn fresh_challenge() -> Result<[u8; CHALLENGE_LEN], AaError> {
    let mut challenge = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut challenge).map_err(|_| AaError::Random)?;
    Ok(challenge)
}

/// Sends INTERNAL AUTHENTICATE (00 88 00 00, the challenge, Le 00) over the open secure channel
/// and returns the signature bytes. The secure channel is required: without it a relay could
/// swap the answer unnoticed on the way, and CCCDs answer only after access control anyway.
/// Counted under [`Phase::Authentication`].
pub fn internal_authenticate<T: Transport>(
    reader: &mut Reader<T>,
    challenge: &[u8; CHALLENGE_LEN],
) -> Result<Vec<u8>, AaError> {
    if !reader.is_secure() {
        return Err(ReadError::NoSecureChannel.into());
    }
    // Le 256 first: the channel goes extended by itself since a protected answer of up to 256
    // bytes cannot fit a short APDU. A reader that refuses extended APDUs gets the command again
    // with a Le whose protected answer fits (the refused one never reached the card); one already
    // known to refuse them (the file reads found out) gets that Le at once.
    let command = |le| {
        CommandApdu::new(0x00, 0x88, 0x00, 0x00)
            .with_data(challenge.to_vec())
            .with_le(le)
    };
    let (_, extended) = reader.chunk_size();
    let first_le = if extended { 256 } else { SHORT_LE };
    let response = match reader.exchange(&command(first_le), Phase::Authentication) {
        Err(ReadError::Transport(TransportError::Rejected)) if extended => {
            reader.exchange(&command(SHORT_LE), Phase::Authentication)?
        }
        other => other?,
    };
    if !response.sw.is_success() {
        return Err(AaError::Refused(response.sw));
    }
    if response.data.is_empty() {
        return Err(AaError::EmptySignature);
    }
    Ok(response.data)
}
