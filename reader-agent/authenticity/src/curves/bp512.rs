//! brainpoolP512r1 (RFC 5639, 3.7): the curve of Vietnam's CSCA key.
//!
//! No RustCrypto crate ships this curve, so it is assembled here from RustCrypto's own generic
//! parts, the way `bp256`/`bp384` 0.14 assemble theirs with their `bigint` backend: `primefield`'s
//! Montgomery field elements over `U512` for the base field (p) and the scalar field (n), and
//! `primeorder`'s short-Weierstrass point arithmetic with a generic `a`. No arithmetic is written
//! here; only the curve's constants are, and the tests check them against each other and against
//! published vectors (RFC 7027, A.3).
//!
//! The constants are RFC 5639's (3.7); the tests match them against RFC 7027's key-agreement
//! vector, and Vietnam's CSCA key (explicit parameters) matches them field by field.
//!
//! Multiplicative generators (`ff::PrimeField` wants a generator of the multiplicative group
//! that is a quadratic non-residue; square roots depend on the non-residue part only):
//! - scalar field: n - 1 was factored completely (SymPy's `factorint`, the 314-bit cofactor
//!   proven prime); 7 is the smallest g with g^((n-1)/q) != 1 mod n for every prime q | n - 1,
//!   i.e. the smallest primitive root.
//! - base field: p - 1 = 2 * 7 * 61 * c, where c (about 500 bits, no factor below 10^6) could
//!   not be factored here. 2 is the smallest g that is a non-residue (g^((p-1)/2) = -1) and
//!   passes the test for 7 and 61; that it also has full order modulo c's prime factors is
//!   likely but unproven. Since p = 3 mod 4, the 2-adic part ff uses (S = 1, the root of unity
//!   -1) only needs the non-residue property, which is proven.
//!
//! The tests re-check these powers with the fields' own arithmetic.

use elliptic_curve::bigint::{Odd, U512};
use elliptic_curve::consts::U64;
use elliptic_curve::{CurveArithmetic, PrimeCurveArithmetic, hazmat::FieldArithmetic};
use primeorder::{PrimeCurveParams, mul_backend, point_arithmetic};

/// The prime p of the base field.
pub const MODULUS_HEX: &str = "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca703308717d4d9b009bc66842aecda12ae6a380e62881ff2f2d82c68528aa6056583a48f3";
/// The order n of the generator (the cofactor is 1).
pub const ORDER_HEX: &str = "aadd9db8dbe9c48b3fd4e6ae33c9fc07cb308db3b3c9d20ed6639cca70330870553e5c414ca92619418661197fac10471db1d381085ddaddb58796829ca90069";
const ORDER: Odd<U512> = Odd::<U512>::from_be_hex(ORDER_HEX);

/// brainpoolP512r1: the verifiably pseudo-random brainpool curve over a 512-bit prime field.
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq, PartialOrd, Ord)]
pub struct BrainpoolP512r1;

impl elliptic_curve::Curve for BrainpoolP512r1 {
    type FieldBytesSize = U64;
    type Uint = U512;
    const ORDER: Odd<U512> = ORDER;
}

impl elliptic_curve::PrimeCurve for BrainpoolP512r1 {}

impl elliptic_curve::point::PointCompression for BrainpoolP512r1 {
    const COMPRESS_POINTS: bool = false;
}

/// Field elements of the base field, modulo p.
pub mod field {
    use super::{MODULUS_HEX, U512};
    use elliptic_curve::ff::PrimeField;
    use elliptic_curve::ops::BatchInvert;
    use elliptic_curve::subtle::{Choice, ConstantTimeEq, CtOption};

    primefield::monty_field_params! {
        name: FieldParams,
        modulus: MODULUS_HEX,
        uint: U512,
        byte_order: primefield::ByteOrder::BigEndian,
        // Smallest primitive root modulo p (module docs say how it was found).
        multiplicative_generator: 2,
        doc: "Montgomery parameters for brainpoolP512r1's base field"
    }

    primefield::monty_field_element! {
        name: FieldElement,
        params: FieldParams,
        uint: U512,
        doc: "An element of brainpoolP512r1's base field"
    }

    primefield::monty_field_arithmetic! {
        name: FieldElement,
        params: FieldParams,
        uint: U512
    }

    impl BatchInvert for FieldElement {}
}

/// Scalars, modulo the group order n.
pub mod scalar {
    use super::{BrainpoolP512r1, ORDER, ORDER_HEX, U512};
    use elliptic_curve::ff::PrimeField;
    use elliptic_curve::scalar::{FromUintUnchecked, IsHigh};
    use elliptic_curve::subtle::{Choice, ConstantTimeEq, ConstantTimeGreater, CtOption};

    primefield::monty_field_params! {
        name: ScalarParams,
        modulus: ORDER_HEX,
        uint: U512,
        byte_order: primefield::ByteOrder::BigEndian,
        // Smallest primitive root modulo n (module docs say how it was found).
        multiplicative_generator: 7,
        doc: "Montgomery parameters for brainpoolP512r1's scalar field"
    }

    primefield::monty_field_element! {
        name: Scalar,
        params: ScalarParams,
        uint: U512,
        doc: "An element of brainpoolP512r1's scalar field"
    }

    primefield::monty_field_arithmetic! {
        name: Scalar,
        params: ScalarParams,
        uint: U512
    }

    primefield::monty_field_reduce! {
        name: Scalar,
        params: ScalarParams,
        uint: U512,
    }

    elliptic_curve::scalar_impls!(BrainpoolP512r1, Scalar);
    primeorder::wnaf::impl_wnaf_size_for_scalar!(Scalar);

    impl AsRef<Scalar> for Scalar {
        fn as_ref(&self) -> &Scalar {
            self
        }
    }

    impl FromUintUnchecked for Scalar {
        type Uint = U512;

        fn from_uint_unchecked(uint: U512) -> Self {
            Self::from_uint_unchecked(uint)
        }
    }

    impl IsHigh for Scalar {
        fn is_high(&self) -> Choice {
            const HALF: U512 = ORDER.as_ref().shr_vartime(1);
            self.to_canonical().ct_gt(&HALF)
        }
    }
}

pub use field::FieldElement;
pub use scalar::Scalar;

/// A point in affine coordinates.
pub type AffinePoint = primeorder::AffinePoint<BrainpoolP512r1>;
/// A point in projective coordinates.
pub type ProjectivePoint = primeorder::ProjectivePoint<BrainpoolP512r1>;
/// A secret key.
pub type SecretKey = elliptic_curve::SecretKey<BrainpoolP512r1>;
/// A public key.
pub type PublicKey = elliptic_curve::PublicKey<BrainpoolP512r1>;

impl CurveArithmetic for BrainpoolP512r1 {
    type AffinePoint = AffinePoint;
    type ProjectivePoint = ProjectivePoint;
    type Scalar = Scalar;
}

impl FieldArithmetic for BrainpoolP512r1 {
    type FieldElement = FieldElement;
}

impl PrimeCurveArithmetic for BrainpoolP512r1 {
    type CurveGroup = ProjectivePoint;
}

impl PrimeCurveParams for BrainpoolP512r1 {
    type PointArithmetic = point_arithmetic::EquationAIsGeneric;
    type Backend = mul_backend::VariableOnly;

    const EQUATION_A: FieldElement = FieldElement::from_hex_vartime(
        "7830a3318b603b89e2327145ac234cc594cbdd8d3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94ca",
    );
    const EQUATION_B: FieldElement = FieldElement::from_hex_vartime(
        "3df91610a83441caea9863bc2ded5d5aa8253aa10a2ef1c98b9ac8b57f1117a72bf2c7b9e7c1ac4d77fc94cadc083e67984050b75ebae5dd2809bd638016f723",
    );
    const GENERATOR: (FieldElement, FieldElement) = (
        FieldElement::from_hex_vartime(
            "81aee4bdd82ed9645a21322e9c4c6a9385ed9f70b5d916c1b43b62eef4d0098eff3b1f78e2d0d48d50d1687b93b97d5f7c6d5047406a5e688b352209bcb9f822",
        ),
        FieldElement::from_hex_vartime(
            "7dde385d566332ecc0eabfa9cf7822fdf209f70024a57b1aa000c55b881f8111b2dcde494a5f485e5bca4bd88a2763aed1ca2b2fa8f0540678cd1e0f3ad80892",
        ),
    );
}

impl ecdsa::EcdsaCurve for BrainpoolP512r1 {
    // Signatures with a high s are valid ECDSA; real CSCAs do not normalise them.
    const NORMALIZE_S: bool = false;
}

/// SHA-512 is the hash RFC 6979 derives nonces with (and what Vietnam's CSCA signs with).
impl ecdsa::DigestAlgorithm for BrainpoolP512r1 {
    type Digest = sha2::Sha512;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecdsa::signature::{Signer, Verifier};
    use elliptic_curve::bigint::NonZero;
    use elliptic_curve::group::Group;
    use elliptic_curve::sec1::ToSec1Point;
    use elliptic_curve::{Field, PrimeField};

    mod base_field {
        use super::super::{FieldElement, U512};
        // Checks the constants ff derives from the generator (a quadratic non-residue, the 2^S
        // root of unity, 1/2) and sqrt/invert; a wrong generator fails these.
        primefield::test_primefield!(FieldElement, U512);
    }

    mod scalar_field {
        use super::super::{Scalar, U512};
        primefield::test_primefield!(Scalar, U512);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn u512(small: u64) -> U512 {
        U512::from_u64(small)
    }

    /// g^((m-1)/q) for a field F with modulus m, computed with F's own arithmetic.
    fn power_is_one<F: Field>(g: F, m_minus_1: &U512, q: &U512) -> bool {
        let (e, rem) = m_minus_1.div_rem(&NonZero::new(*q).unwrap());
        assert_eq!(rem, U512::ZERO, "{q} does not divide m - 1");
        g.pow_vartime(e.as_words()) == F::ONE
    }

    #[test]
    fn multiplicative_generators_have_no_small_order() {
        // p - 1 = 2 * 7 * 61 * c, c a 500-bit composite with no factor below 10^6 (not factored:
        // 2 passes every test below; it is a quadratic non-residue, which is what sqrt needs).
        let p1 = U512::from_be_hex(MODULUS_HEX).wrapping_sub(&U512::ONE);
        let g = FieldElement::MULTIPLICATIVE_GENERATOR;
        assert_eq!(g, FieldElement::from(2u64));
        for q in [2, 7, 61] {
            assert!(!power_is_one(g, &p1, &u512(q)), "p: {q}");
        }
        // 3 is a quadratic residue mod p: the test is not vacuous.
        assert!(power_is_one(FieldElement::from(3u64), &p1, &u512(2)));

        // n - 1 factored completely: 2^3 * 3 * 41 * ... * (a 314-bit prime).
        let n1 = U512::from_be_hex(ORDER_HEX).wrapping_sub(&U512::ONE);
        let big = U512::from_be_hex(
            "00000000000000000000000000000000000000000000000002cc0ce4317d34382ceb69ac9a59da805ebfee7cd3b7a4b7ec695df3e047532eda96bb1c592a6a7f",
        );
        let small = [
            2u64,
            3,
            41,
            1559,
            4391,
            14557,
            33_278_821,
            56_951_731,
            82_441_673,
            447_825_179,
            55_886_090_402_833,
        ];
        let mut product = big.wrapping_mul(&u512(8));
        for q in &small[1..] {
            product = product.wrapping_mul(&u512(*q));
        }
        assert_eq!(product, n1, "the factorisation of n - 1");
        let g = Scalar::MULTIPLICATIVE_GENERATOR;
        assert_eq!(g, Scalar::from(7u64));
        for q in small.iter().map(|&q| u512(q)).chain([big]) {
            assert!(!power_is_one(g, &n1, &q), "n: {q}");
        }
        // 2 is not a generator mod n (its order misses a factor): the check can fail.
        let two = Scalar::from(2u64);
        assert!(
            small
                .iter()
                .map(|&q| u512(q))
                .chain([big])
                .any(|q| power_is_one(two, &n1, &q))
        );
    }

    #[test]
    fn generator_has_the_curve_order() {
        let g = ProjectivePoint::generator();
        assert!(!bool::from(g.is_identity()));
        // n = 0 in the scalar field, so multiply in two steps: (n - 1) * G + G.
        let n_minus_1 = -Scalar::ONE;
        assert!(bool::from((g * n_minus_1 + g).is_identity()));
        assert!(!bool::from((g * n_minus_1).is_identity()));
        // The generator decodes as a point on the curve from its SEC1 bytes.
        let encoded = g.to_affine().to_sec1_point(false);
        assert!(PublicKey::from_sec1_bytes(encoded.as_bytes()).is_ok());
        // A point off the curve (y + 1) is refused.
        let mut bad = encoded.as_bytes().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(PublicKey::from_sec1_bytes(&bad).is_err());
    }

    #[test]
    fn rfc7027_key_agreement_vector() {
        // RFC 7027, A.3 (brainpoolP512r1): both public keys and the shared point's x.
        let d_a = SecretKey::from_slice(&hex("16302FF0DBBB5A8D733DAB7141C1B45ACBC8715939677F6A56850A38BD87BD59B09E80279609FF333EB9D4C061231FB26F92EEB04982A5F1D1764CAD57665422")).unwrap();
        let d_b = SecretKey::from_slice(&hex("230E18E1BCC88A362FA54E4EA3902009292F7F8033624FD471B5D8ACE49D12CFABBC19963DAB8E2F1EBA00BFFB29E4D72D13F2224562F405CB80503666B25429")).unwrap();
        let q_a = d_a.public_key().to_sec1_point(false);
        let q_b = d_b.public_key().to_sec1_point(false);
        assert_eq!(
            q_a.as_bytes()[1..],
            hex(
                "0A420517E406AAC0ACDCE90FCD71487718D3B953EFD7FBEC5F7F27E28C6149999397E91E029E06457DB2D3E640668B392C2A7E737A7F0BF04436D11640FD09FD72E6882E8DB28AAD36237CD25D580DB23783961C8DC52DFA2EC138AD472A0FCEF3887CF62B623B2A87DE5C588301EA3E5FC269B373B60724F5E82A6AD147FDE7"
            )[..]
        );
        assert_eq!(
            q_b.as_bytes()[1..],
            hex(
                "9D45F66DE5D67E2E6DB6E93A59CE0BB48106097FF78A081DE781CDB31FCE8CCBAAEA8DD4320C4119F1E9CD437A2EAB3731FA9668AB268D871DEDA55A5473199F2FDC313095BCDD5FB3A91636F07A959C8E86B5636A1E930E8396049CB481961D365CC11453A06C719835475B12CB52FC3C383BCE35E27EF194512B71876285FA"
            )[..]
        );
        let z_ab = (d_b.public_key().to_projective() * *d_a.to_nonzero_scalar()).to_affine();
        let z_ba = (d_a.public_key().to_projective() * *d_b.to_nonzero_scalar()).to_affine();
        assert_eq!(z_ab, z_ba);
        let z = z_ab.to_sec1_point(false);
        assert_eq!(
            z.as_bytes()[1..65],
            hex(
                "A7927098655F1F9976FA50A9D566865DC530331846381C87256BAF3226244B76D36403C024D7BBF0AA0803EAFF405D3D24F11A9B5C0BEF679FE1454B21C4CD1F"
            )[..]
        );
    }

    #[test]
    fn ecdsa_sign_verify_round_trip() {
        let key = ecdsa::SigningKey::<BrainpoolP512r1>::from_slice(&[0x42; 64]).unwrap();
        let message = b"LDSSecurityObject signed attributes";
        let signature: ecdsa::Signature<BrainpoolP512r1> = key.sign(message);
        let public = key.verifying_key();
        assert!(public.verify(message, &signature).is_ok());
        // Another message, or another key, does not verify.
        assert!(public.verify(b"another message", &signature).is_err());
        let other = ecdsa::SigningKey::<BrainpoolP512r1>::from_slice(&[0x43; 64]).unwrap();
        assert!(other.verifying_key().verify(message, &signature).is_err());
        // DER round trip, as signatures travel in certificates.
        let der = signature.to_der();
        let back = ecdsa::der::Signature::<BrainpoolP512r1>::from_bytes(der.as_bytes()).unwrap();
        assert!(public.verify(message, &back).is_ok());
    }
}
