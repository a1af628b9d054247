//! PACE with the CAN and AES secure messaging checked against an independent implementation:
//! OpenPACE (libeac), the reference implementation of BSI TR-03110 used by OpenSC.
//!
//! `tests/openpace/picc.c` is a card built on libeac: OpenPACE encrypts the nonce, maps the
//! generator, agrees the keys, derives K_enc/K_mac, checks our token and makes its own, then
//! verifies and decrypts one protected command and protects its answer. The test compiles it
//! (with `cc` and `pkg-config libeac`), runs it as a child process and talks to it over
//! stdin/stdout, one hex APDU per line, through the ordinary `Transport` trait. If the two sides
//! derived different keys, OpenPACE refuses our token (63 00, `WrongPassword` here), or our
//! token check fails, or the protected exchange fails its MAC on one side or the other: every
//! assertion below then fails.
//!
//! Needs the Debian packages `libeac-dev` (pulls `libeac3`), `libssl-dev`, `pkg-config` and a C
//! compiler. Without them the test is skipped with a notice, except under CI (`CI` set) or with
//! `EMRTD_REQUIRE_OPENPACE=1`, where their absence fails it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use emrtd::apdu::{CommandApdu, StatusWord};
use emrtd::crypto::Cipher;
use emrtd::pace::{self, DomainCurve, PaceError, PacePassword};
use emrtd::stats::{Phase, ReadStats};
use emrtd::transport::{Transport, TransportError};

const CAN: &str = "123456";

/// The OpenPACE card, compiled once per test process; `None` when libeac or a compiler is
/// missing (and allowed to be).
fn picc() -> Option<PathBuf> {
    static PICC: OnceLock<Option<PathBuf>> = OnceLock::new();
    PICC.get_or_init(compile_picc).clone()
}

fn compile_picc() -> Option<PathBuf> {
    let required = std::env::var_os("CI").is_some()
        || std::env::var("EMRTD_REQUIRE_OPENPACE").is_ok_and(|v| v == "1");
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libeac"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(flags) = flags else {
        assert!(
            !required,
            "OpenPACE is required here (CI or EMRTD_REQUIRE_OPENPACE=1) but `pkg-config libeac` \
             fails: install libeac-dev libssl-dev pkg-config"
        );
        eprintln!("SKIPPED: OpenPACE cross-check needs libeac-dev and pkg-config");
        return None;
    };
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openpace/picc.c");
    let binary = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openpace-picc");
    let flags = String::from_utf8(flags.stdout).unwrap();
    let status = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .args(flags.split_whitespace())
        .status();
    match status {
        Ok(s) if s.success() => Some(binary),
        other => {
            assert!(
                !required,
                "compiling the OpenPACE card failed ({other:?}): libssl-dev and a C compiler \
                 (build-essential) are needed besides libeac-dev"
            );
            eprintln!("SKIPPED: could not compile the OpenPACE card: {other:?}");
            None
        }
    }
}

/// The OpenPACE card as a transport.
struct OpenPaceCard {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl OpenPaceCard {
    fn start(binary: &PathBuf, card_access: &[u8], can: &str) -> Self {
        let mut child = Command::new(binary)
            .arg(hex(card_access))
            .arg(can)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OpenPACE card");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        OpenPaceCard {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for OpenPaceCard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Transport for OpenPaceCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        writeln!(self.stdin, "{}", hex(command))
            .and_then(|()| self.stdin.flush())
            .map_err(|_| TransportError::CardRemoved)?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => Err(TransportError::CardRemoved),
            Ok(_) => Ok(unhex(line.trim())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex from the card"))
        .collect()
}

/// EF.CardAccess with one PACEInfo: ECDH-GM with `cipher`, standardized parameters of `curve`.
fn card_access(cipher: Cipher, curve: DomainCurve) -> Vec<u8> {
    let suite = match cipher {
        Cipher::TripleDes => 1,
        Cipher::Aes128 => 2,
        Cipher::Aes192 => 3,
        Cipher::Aes256 => 4,
        _ => unreachable!(),
    };
    let info = [
        &[
            0x30, 0x12, 0x06, 0x0A, 0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02,
        ][..],
        &[suite, 0x02, 0x01, 0x02, 0x02, 0x01, curve.parameter_id()],
    ]
    .concat();
    [&[0x31, 0x14][..], &info].concat()
}

#[test]
fn pace_can_and_secure_messaging_agree_with_openpace() {
    let Some(binary) = picc() else { return };
    let suites = [
        // The CCCD's suite first.
        (Cipher::Aes128, DomainCurve::BrainpoolP256r1),
        (Cipher::Aes256, DomainCurve::NistP256),
        (Cipher::Aes192, DomainCurve::BrainpoolP384r1),
        (Cipher::TripleDes, DomainCurve::BrainpoolP256r1),
    ];
    for (cipher, curve) in suites {
        let file = card_access(cipher, curve);
        let mut card = OpenPaceCard::start(&binary, &file, CAN);
        let mut stats = ReadStats::new();
        let mut channel = pace::establish(
            &mut card,
            &PacePassword::can(CAN).unwrap(),
            Some(&file),
            &mut stats,
        )
        .unwrap_or_else(|e| panic!("{cipher:?} {curve:?}: PACE with OpenPACE failed: {e}"));
        assert_eq!(stats.phase(Phase::Pace).apdus, 5);
        assert_eq!(channel.cipher(), cipher);

        // One protected command with data and Le, answered by OpenPACE under its own keys.
        let challenge = b"challenge from the terminal".to_vec();
        let command = CommandApdu::new(0x00, 0x88, 0x00, 0x00)
            .with_data(challenge.clone())
            .with_le(256);
        let protected = channel.protect(&command).unwrap();
        let raw = card.transmit(&protected.to_bytes().unwrap()).unwrap();
        let response = channel
            .unprotect(&raw)
            .unwrap_or_else(|e| panic!("{cipher:?} {curve:?}: OpenPACE's answer: {e}"));
        assert_eq!(response.sw, StatusWord::SUCCESS, "{cipher:?} {curve:?}");
        let mut expected: Vec<u8> = challenge.iter().rev().copied().collect();
        expected.extend_from_slice(b"OpenPACE");
        assert_eq!(response.data, expected, "{cipher:?} {curve:?}");
    }
}

#[test]
fn a_wrong_can_is_refused_by_openpace() {
    let Some(binary) = picc() else { return };
    let file = card_access(Cipher::Aes128, DomainCurve::BrainpoolP256r1);
    let mut card = OpenPaceCard::start(&binary, &file, CAN);
    let result = pace::establish(
        &mut card,
        &PacePassword::can("123457").unwrap(),
        Some(&file),
        &mut ReadStats::new(),
    );
    assert_eq!(result.err(), Some(PaceError::WrongPassword));
}
