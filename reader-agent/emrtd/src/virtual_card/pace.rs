//! The card's side of PACE with ECDH Generic Mapping (ICAO 9303 Part 11, 4.4), written apart from
//! the terminal's `pace` module: it parses the commands with the card's own TLV helpers, keeps
//! typed curve points of its own, and shares only the validated symmetric primitives of `crypto`
//! and RustCrypto's curve arithmetic. What the terminal and the card agree on, they agree on
//! because both follow the standard, not because they run one piece of code.
//!
//! It answers MSE:Set AT and the four GENERAL AUTHENTICATE steps as a chip does: a random nonce
//! encrypted under K_pi, its own mapping and ephemeral keys, 63 00 when the terminal's token does
//! not verify (a wrong CAN), and the session keys once it does. Any error ends the attempt; the
//! terminal must start again with MSE:Set AT. Plug it in with
//! [`VirtualCard::with_pace`](super::VirtualCard::with_pace).

use std::fmt;

use elliptic_curve::group::{Curve as _, Group as _};
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, Generate, NonZeroScalar,
    ProjectivePoint,
};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::sm::{put, split};
use super::{CardPace, PaceOutcome, PlainCommand};
use crate::crypto::{self, Cipher, KDF_PACE, SessionKeys};
use crate::pace::DomainCurve;

/// Status words the card answers with.
const OK: u16 = 0x9000;
const WRONG_TOKEN: u16 = 0x6300;
const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
const WRONG_DATA: u16 = 0x6A80;
const WRONG_P1P2: u16 = 0x6A86;
const PASSWORD_NOT_FOUND: u16 = 0x6A88;
const CHAINING_EXPECTED: u16 = 0x6883;
const INTERNAL: u16 = 0x6F00;

/// Length of the nonce the card draws (one AES block, two DES blocks).
const NONCE_LEN: usize = 16;

/// Secrets to use instead of random ones, so a worked example can be replayed.
#[derive(Clone)]
struct Fixed {
    nonce: Vec<u8>,
    sk_map: Vec<u8>,
    sk: Vec<u8>,
}

/// The card's configuration: its suite and the passwords printed on it.
struct Config {
    cipher: Cipher,
    curve: DomainCurve,
    /// f(CAN): the CAN's digits.
    can: Option<Zeroizing<Vec<u8>>>,
    /// f(MRZ): SHA-1 of the MRZ information.
    mrz: Option<Zeroizing<Vec<u8>>>,
    fixed: Option<Fixed>,
}

impl Config {
    /// Content of id-PACE-ECDH-GM-<cipher>: 0.4.0.127.0.7.2.2.4.2.x.
    fn oid(&self) -> [u8; 10] {
        let x = match self.cipher {
            Cipher::TripleDes => 1,
            Cipher::Aes128 => 2,
            Cipher::Aes192 => 3,
            Cipher::Aes256 => 4,
        };
        [0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x04, 0x02, x]
    }

    fn token(&self, k_mac: &[u8], point: &[u8]) -> [u8; 8] {
        // 7F49 { 06 OID, 86 point }.
        let mut content = Vec::new();
        put(&mut content, 0x06, &self.oid());
        put(&mut content, 0x86, point);
        let mut input = vec![0x7F];
        put(&mut input, 0x49, &content);
        let mac = match self.cipher {
            Cipher::TripleDes => crypto::retail_mac(k_mac, &crypto::pad(&input, 8)),
            _ => crypto::aes_cmac(k_mac, &input),
        };
        // The card's own keys always have the right length.
        mac.unwrap_or([0; 8])
    }
}

/// The card's side of PACE, plugged into the virtual card through [`CardPace`].
pub struct VirtualPace {
    config: Config,
    engine: Box<dyn Engine>,
}

impl fmt::Debug for VirtualPace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualPace")
            .field("cipher", &self.config.cipher)
            .field("curve", &self.config.curve)
            .finish_non_exhaustive()
    }
}

impl VirtualPace {
    /// A card running id-PACE-ECDH-GM with `cipher` on `curve`, with no password yet.
    pub fn new(cipher: Cipher, curve: DomainCurve) -> Self {
        let engine: Box<dyn Engine> = match curve {
            DomainCurve::NistP256 => Box::new(Chip::<p256::NistP256>::default()),
            DomainCurve::BrainpoolP256r1 => Box::new(Chip::<bp256::BrainpoolP256r1>::default()),
            DomainCurve::BrainpoolP384r1 => Box::new(Chip::<bp384::BrainpoolP384r1>::default()),
        };
        VirtualPace {
            config: Config {
                cipher,
                curve,
                can: None,
                mrz: None,
                fixed: None,
            },
            engine,
        }
    }

    /// A CCCD: AES-128 on brainpoolP256r1, with this CAN.
    pub fn cccd(can: &str) -> Self {
        Self::new(Cipher::Aes128, DomainCurve::BrainpoolP256r1).with_can(can)
    }

    /// Accepts PACE with this CAN (key reference 2).
    pub fn with_can(mut self, can: &str) -> Self {
        self.config.can = Some(Zeroizing::new(can.as_bytes().to_vec()));
        self
    }

    /// Accepts PACE with the MRZ (key reference 1): document number, date of birth and date of
    /// expiry, each followed by its check digit, as printed.
    pub fn with_mrz_information(mut self, information: &str) -> Self {
        self.config.mrz = Some(Zeroizing::new(
            Sha1::digest(information.as_bytes()).to_vec(),
        ));
        self
    }

    /// Uses these secrets instead of random ones (nonce, mapping key, ephemeral key; big-endian),
    /// to replay a worked example. Every run then draws the same values: tests only.
    pub fn with_fixed_secrets(mut self, nonce: &[u8], sk_map: &[u8], sk: &[u8]) -> Self {
        self.config.fixed = Some(Fixed {
            nonce: nonce.to_vec(),
            sk_map: sk_map.to_vec(),
            sk: sk.to_vec(),
        });
        self
    }
}

impl CardPace for VirtualPace {
    fn process(&mut self, command: &PlainCommand<'_>) -> PaceOutcome {
        let result = match command.ins {
            0x22 => self.set_at(command),
            0x86 => self.engine.general_authenticate(&self.config, command),
            _ => Err(WRONG_P1P2),
        };
        match result {
            Ok(answer) => answer,
            Err(sw) => {
                self.engine.reset();
                PaceOutcome {
                    data: Vec::new(),
                    sw,
                    session: None,
                }
            }
        }
    }
}

impl VirtualPace {
    /// MSE:Set AT: DO80 must name this card's protocol, DO83 a password the card holds, DO84
    /// (optional) this card's domain parameters.
    fn set_at(&mut self, command: &PlainCommand<'_>) -> Result<PaceOutcome, u16> {
        self.engine.reset();
        if (command.p1, command.p2) != (0xC1, 0xA4) {
            return Err(WRONG_P1P2);
        }
        let (mut protocol, mut reference, mut domain) = (None, None, None);
        let mut rest = command.data;
        while !rest.is_empty() {
            let (tag, value, _, tail) = split(rest).ok_or(WRONG_DATA)?;
            match tag {
                0x80 => protocol = Some(value),
                0x83 => reference = Some(value),
                0x84 => domain = Some(value),
                _ => return Err(WRONG_DATA),
            }
            rest = tail;
        }
        if protocol != Some(&self.config.oid()[..]) {
            return Err(WRONG_DATA);
        }
        if domain.is_some_and(|d| d != [self.config.curve.parameter_id()]) {
            return Err(PASSWORD_NOT_FOUND);
        }
        let password = match reference {
            Some([1]) => self.config.mrz.clone(),
            Some([2]) => self.config.can.clone(),
            _ => return Err(WRONG_DATA),
        }
        .ok_or(PASSWORD_NOT_FOUND)?;
        let k_pi = crypto::kdf(self.config.cipher, &password, KDF_PACE);
        self.engine.start(k_pi);
        Ok(PaceOutcome {
            data: Vec::new(),
            sw: OK,
            session: None,
        })
    }
}

/// The curve-typed half of the card: the GENERAL AUTHENTICATE steps.
trait Engine {
    /// Forgets any attempt in progress.
    fn reset(&mut self);
    /// MSE:Set AT succeeded with this password key.
    fn start(&mut self, k_pi: Zeroizing<Vec<u8>>);
    /// One GENERAL AUTHENTICATE.
    fn general_authenticate(
        &mut self,
        config: &Config,
        command: &PlainCommand<'_>,
    ) -> Result<PaceOutcome, u16>;
}

/// Where the card is in the exchange.
enum Step<C: CurveArithmetic> {
    Idle,
    /// Waiting for the nonce request.
    Selected {
        k_pi: Zeroizing<Vec<u8>>,
    },
    /// Nonce sent; waiting for the terminal's mapping key.
    NonceSent {
        s: NonZeroScalar<C>,
    },
    /// Generator mapped; waiting for the terminal's ephemeral key.
    Mapped {
        generator: ProjectivePoint<C>,
    },
    /// Keys agreed; waiting for the terminal's token.
    Agreed {
        keys: SessionKeys,
        pk_ifd: Vec<u8>,
        pk_ic: Vec<u8>,
    },
}

struct Chip<C: CurveArithmetic> {
    step: Step<C>,
}

impl<C: CurveArithmetic> Default for Chip<C> {
    fn default() -> Self {
        Chip { step: Step::Idle }
    }
}

impl<C> Engine for Chip<C>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    fn reset(&mut self) {
        self.step = Step::Idle;
    }

    fn start(&mut self, k_pi: Zeroizing<Vec<u8>>) {
        self.step = Step::Selected { k_pi };
    }

    fn general_authenticate(
        &mut self,
        config: &Config,
        command: &PlainCommand<'_>,
    ) -> Result<PaceOutcome, u16> {
        if (command.p1, command.p2) != (0, 0) {
            return Err(WRONG_P1P2);
        }
        let chained = command.cla & 0x10 != 0;
        let last_expected = matches!(self.step, Step::Agreed { .. });
        if matches!(self.step, Step::Idle) {
            return Err(CONDITIONS_NOT_SATISFIED);
        }
        if chained == last_expected {
            return Err(CHAINING_EXPECTED);
        }
        let (tag, value) = dynamic_authentication_data(command.data)?;
        let step = std::mem::replace(&mut self.step, Step::Idle);
        let (reply_tag, reply, session) = match (step, tag, value) {
            (Step::Selected { k_pi }, None, _) => {
                let nonce = match &config.fixed {
                    Some(fixed) => fixed.nonce.clone(),
                    None => {
                        let mut n = vec![0u8; NONCE_LEN];
                        getrandom::fill(&mut n).map_err(|_| INTERNAL)?;
                        n
                    }
                };
                let nonce = Zeroizing::new(nonce);
                let s = scalar::<C>(&nonce).ok_or(INTERNAL)?;
                let mut z = nonce.to_vec();
                let iv = vec![0; config.cipher.block_size()];
                crypto::encrypt_cbc(config.cipher, &k_pi, &iv, &mut z).map_err(|_| INTERNAL)?;
                self.step = Step::NonceSent { s };
                (0x80, z, None)
            }
            (Step::NonceSent { s }, Some(0x81), value) => {
                let pk_map_ifd = point::<C>(value).ok_or(WRONG_DATA)?;
                let sk_map = secret::<C>(config.fixed.as_ref().map(|f| f.sk_map.as_slice()))?;
                let pk_map_ic = ProjectivePoint::<C>::generator() * *sk_map;
                if pk_map_ic == pk_map_ifd {
                    return Err(WRONG_DATA);
                }
                let h = pk_map_ifd * *sk_map;
                let generator = ProjectivePoint::<C>::generator() * *s + h;
                if bool::from(generator.is_identity()) {
                    return Err(WRONG_DATA);
                }
                self.step = Step::Mapped { generator };
                (0x82, encode::<C>(&pk_map_ic), None)
            }
            (Step::Mapped { generator }, Some(0x83), value) => {
                let pk_ifd = point::<C>(value).ok_or(WRONG_DATA)?;
                let sk = secret::<C>(config.fixed.as_ref().map(|f| f.sk.as_slice()))?;
                let pk_ic = generator * *sk;
                if pk_ic == pk_ifd {
                    return Err(WRONG_DATA);
                }
                let shared = (pk_ifd * *sk).to_affine();
                if bool::from(ProjectivePoint::<C>::from(shared).is_identity()) {
                    return Err(WRONG_DATA);
                }
                let x = Zeroizing::new(
                    shared.to_sec1_point(false).as_bytes()[1..=config.curve.field_len()].to_vec(),
                );
                let keys = SessionKeys::derive(config.cipher, &x);
                let pk_ic = encode::<C>(&pk_ic);
                self.step = Step::Agreed {
                    keys,
                    pk_ifd: value.to_vec(),
                    pk_ic: pk_ic.clone(),
                };
                (0x84, pk_ic, None)
            }
            (
                Step::Agreed {
                    keys,
                    pk_ifd,
                    pk_ic,
                },
                Some(0x85),
                t_ifd,
            ) => {
                let expected = config.token(&keys.k_mac, &pk_ic);
                if !crypto::mac_eq(t_ifd, &expected) {
                    return Err(WRONG_TOKEN);
                }
                let t_ic = config.token(&keys.k_mac, &pk_ifd);
                (0x86, t_ic.to_vec(), Some(keys))
            }
            _ => return Err(WRONG_DATA),
        };
        let mut inner = Vec::new();
        put(&mut inner, reply_tag, &reply);
        let mut data = Vec::new();
        put(&mut data, 0x7C, &inner);
        Ok(PaceOutcome {
            data,
            sw: OK,
            session,
        })
    }
}

/// `7C { tag value }` with one object, or `7C 00`: (tag, value).
fn dynamic_authentication_data(data: &[u8]) -> Result<(Option<u8>, &[u8]), u16> {
    let (tag, inner, _, rest) = split(data).ok_or(WRONG_DATA)?;
    if tag != 0x7C || !rest.is_empty() {
        return Err(WRONG_DATA);
    }
    if inner.is_empty() {
        return Ok((None, inner));
    }
    let (tag, value, _, rest) = split(inner).ok_or(WRONG_DATA)?;
    if !rest.is_empty() {
        return Err(WRONG_DATA);
    }
    Ok((Some(tag), value))
}

/// A big-endian integer as a non-zero scalar below the order.
fn scalar<C: CurveArithmetic>(bytes: &[u8]) -> Option<NonZeroScalar<C>> {
    let mut repr = FieldBytes::<C>::default();
    let offset = repr.len().checked_sub(bytes.len())?;
    repr[offset..].copy_from_slice(bytes);
    NonZeroScalar::<C>::from_repr(repr).into()
}

/// The fixed secret if one is configured, a random one otherwise.
fn secret<C: CurveArithmetic>(fixed: Option<&[u8]>) -> Result<NonZeroScalar<C>, u16> {
    match fixed {
        Some(bytes) => scalar::<C>(bytes).ok_or(INTERNAL),
        None => NonZeroScalar::<C>::try_generate().map_err(|_| INTERNAL),
    }
}

/// A terminal's public key: uncompressed, on the curve, not the identity.
fn point<C>(bytes: &[u8]) -> Option<ProjectivePoint<C>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C>,
{
    if bytes.first() != Some(&0x04) {
        return None;
    }
    let affine = AffinePoint::<C>::from_sec1_bytes(bytes).ok()?;
    let p = ProjectivePoint::<C>::from(affine);
    (!bool::from(p.is_identity())).then_some(p)
}

fn encode<C>(p: &ProjectivePoint<C>) -> Vec<u8>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: ToSec1Point<C>,
{
    p.to_affine().to_sec1_point(false).as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    fn plain(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> PlainCommand<'_> {
        PlainCommand {
            cla,
            ins,
            p1,
            p2,
            data,
            le: Some(256),
        }
    }

    /// The chip's side of ICAO 9303-11 Appendix G.1: given the example's nonce and chip keys,
    /// the card answers the example's terminal commands with the example's responses.
    #[test]
    fn appendix_g1_chip_side_byte_for_byte() {
        let mut card = VirtualPace::new(Cipher::Aes128, DomainCurve::BrainpoolP256r1)
            .with_mrz_information("T22000129364081251010318")
            .with_fixed_secrets(
                &hex("3F00C4D39D153F2B2A214A078D899B22"),
                &hex("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560"),
                &hex("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A"),
            );
        let mse = hex("800A04007F00070202040202830101");
        let out = card.process(&plain(0, 0x22, 0xC1, 0xA4, &mse));
        assert_eq!(out.sw, 0x9000);
        let steps = [
            (0x10, "7C00", "7C12801095A3A016522EE98D01E76CB6B98B42C3"),
            (
                0x10,
                "7C438141047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E\
                 544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D",
                "7C43824104824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57\
                 30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54",
            ),
            (
                0x10,
                "7C438341042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C\
                 3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462",
                "7C438441049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB\
                 7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094",
            ),
            (0x00, "7C0A8508C2B0BD78D94BA866", "7C0A86083ABB9674BCE93C08"),
        ];
        for (i, (cla, command, response)) in steps.into_iter().enumerate() {
            let data = hex(command);
            let out = card.process(&plain(cla, 0x86, 0, 0, &data));
            assert_eq!(out.sw, 0x9000, "step {i}");
            assert_eq!(out.data, hex(response), "step {i}");
            if i == 3 {
                let keys = out.session.expect("session keys after the last step");
                assert_eq!(*keys.k_enc, hex("F5F0E35C0D7161EE6724EE513A0D9A7F"));
                assert_eq!(*keys.k_mac, hex("FE251C7858B356B24514B3BD5F4297D1"));
            } else {
                assert!(out.session.is_none());
            }
        }
    }

    fn selected(card: &mut VirtualPace) {
        let mse = hex("800A04007F00070202040202830102");
        assert_eq!(card.process(&plain(0, 0x22, 0xC1, 0xA4, &mse)).sw, 0x9000);
    }

    #[test]
    fn set_at_checks_protocol_password_and_parameters() {
        let mut card = VirtualPace::cccd("123456");
        let cases = [
            ("800A04007F00070202040201830102", WRONG_DATA), // 3DES OID on an AES card
            ("800A04007F00070202040202830101", PASSWORD_NOT_FOUND), // MRZ not configured
            ("800A04007F00070202040202830103", WRONG_DATA), // unknown key reference
            ("800A04007F0007020204020283010284010C", PASSWORD_NOT_FOUND), // P-256 asked
            ("800A04007F00070202040202", WRONG_DATA),       // no key reference
            ("800A04007F0007020204020283", WRONG_DATA),     // truncated object
        ];
        for (data, sw) in cases {
            let data = hex(data);
            assert_eq!(
                card.process(&plain(0, 0x22, 0xC1, 0xA4, &data)).sw,
                sw,
                "{data:02X?}"
            );
        }
        let ok = hex("800A04007F0007020204020283010284010D");
        assert_eq!(card.process(&plain(0, 0x22, 0xC1, 0xA4, &ok)).sw, 0x9000);
        assert_eq!(
            card.process(&plain(0, 0x22, 0x81, 0xB6, &ok)).sw,
            WRONG_P1P2
        );
    }

    #[test]
    fn general_authenticate_needs_set_at_chaining_and_well_formed_data() {
        let mut card = VirtualPace::cccd("123456");
        let nonce_request = hex("7C00");
        // No MSE:Set AT yet.
        assert_eq!(
            card.process(&plain(0x10, 0x86, 0, 0, &nonce_request)).sw,
            CONDITIONS_NOT_SATISFIED
        );
        // Unchained first step.
        selected(&mut card);
        assert_eq!(
            card.process(&plain(0x00, 0x86, 0, 0, &nonce_request)).sw,
            CHAINING_EXPECTED
        );
        // The error ended the attempt.
        assert_eq!(
            card.process(&plain(0x10, 0x86, 0, 0, &nonce_request)).sw,
            CONDITIONS_NOT_SATISFIED
        );
        // Malformed dynamic authentication data.
        for bad in ["7D00", "7C", "7C0281", "7C00 00", "7C03810100 00"] {
            selected(&mut card);
            let data = hex(bad);
            assert_eq!(
                card.process(&plain(0x10, 0x86, 0, 0, &data)).sw,
                WRONG_DATA,
                "{bad}"
            );
        }
        // A mapping key that is not a point.
        selected(&mut card);
        let out = card.process(&plain(0x10, 0x86, 0, 0, &nonce_request));
        assert_eq!(out.sw, 0x9000);
        assert_eq!(out.data.len(), 2 + 2 + NONCE_LEN);
        let mut not_a_point = hex("7C438141");
        not_a_point.extend([4; 65]);
        assert_eq!(
            card.process(&plain(0x10, 0x86, 0, 0, &not_a_point)).sw,
            WRONG_DATA
        );
    }

    #[test]
    fn random_nonces_differ() {
        let mut card = VirtualPace::cccd("123456");
        let mut seen = Vec::new();
        for _ in 0..2 {
            selected(&mut card);
            let out = card.process(&plain(0x10, 0x86, 0, 0, &hex("7C00")));
            seen.push(out.data);
        }
        assert_ne!(seen[0], seen[1]);
    }
}
