//! The elliptic-curve operations PACE Generic Mapping needs, over RustCrypto's curve arithmetic,
//! at byte level: scalars are big-endian field-length integers, points SEC1 uncompressed
//! `04 || X || Y` as they travel in the GENERAL AUTHENTICATE data objects.
//!
//! Every point that comes from outside is checked to lie on the curve and not to be the identity;
//! all three curves have cofactor 1, so that also places it in the prime-order group. Every
//! result that would be the identity is refused: a shared point at infinity would make the
//! session keys independent of the password.

use elliptic_curve::ff::PrimeField as _;
use elliptic_curve::group::{Curve as _, Group as _};
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytes, FieldBytesSize, Generate, NonZeroScalar,
    ProjectivePoint,
};
use zeroize::{Zeroize, Zeroizing};

/// An elliptic curve of the ICAO 9303 standardized domain parameters that PACE here supports.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainCurve {
    /// NIST P-256 (secp256r1), standardized domain parameter 12.
    NistP256,
    /// brainpoolP256r1, standardized domain parameter 13: the CCCD's curve.
    BrainpoolP256r1,
    /// brainpoolP384r1, standardized domain parameter 16.
    BrainpoolP384r1,
}

impl DomainCurve {
    /// The curve of a standardized domain parameter id (ICAO 9303-11, 9.5.1), if supported.
    pub const fn from_parameter_id(id: u32) -> Option<Self> {
        match id {
            12 => Some(DomainCurve::NistP256),
            13 => Some(DomainCurve::BrainpoolP256r1),
            16 => Some(DomainCurve::BrainpoolP384r1),
            _ => None,
        }
    }

    /// The standardized domain parameter id.
    pub const fn parameter_id(self) -> u8 {
        match self {
            DomainCurve::NistP256 => 12,
            DomainCurve::BrainpoolP256r1 => 13,
            DomainCurve::BrainpoolP384r1 => 16,
        }
    }

    /// Length in bytes of a field element (and of the shared secret, the x-coordinate).
    pub const fn field_len(self) -> usize {
        match self {
            DomainCurve::NistP256 | DomainCurve::BrainpoolP256r1 => 32,
            DomainCurve::BrainpoolP384r1 => 48,
        }
    }

    /// Length of an uncompressed point.
    pub const fn point_len(self) -> usize {
        1 + 2 * self.field_len()
    }
}

/// Why a curve operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EcError {
    /// Not an uncompressed encoding of a point on the curve, or the identity.
    InvalidPoint,
    /// A scalar of the wrong length, zero, or not below the group order.
    InvalidScalar,
    /// The result is the point at infinity.
    Identity,
    /// The operating system's random number generator failed.
    Random,
}

/// Dispatches a generic function over the concrete curve types.
macro_rules! on_curve {
    ($curve:expr, $f:ident ( $($arg:expr),* )) => {
        match $curve {
            DomainCurve::NistP256 => $f::<p256::NistP256>($($arg),*),
            DomainCurve::BrainpoolP256r1 => $f::<bp256::BrainpoolP256r1>($($arg),*),
            DomainCurve::BrainpoolP384r1 => $f::<bp384::BrainpoolP384r1>($($arg),*),
        }
    };
}

/// A fresh secret scalar in [1, n-1] from the operating system's generator.
pub(crate) fn random_scalar(curve: DomainCurve) -> Result<Zeroizing<Vec<u8>>, EcError> {
    on_curve!(curve, random_scalar_on())
}

/// `scalar * base`, where `base` is the curve's generator when `None`. A given base is validated.
pub(crate) fn multiply(
    curve: DomainCurve,
    scalar: &[u8],
    base: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, EcError> {
    on_curve!(curve, multiply_on(scalar, base))
}

/// The Generic Mapping: `s * G + H` (ICAO 9303-11, 4.4.3.3.1), with `s` the decrypted nonce
/// read as a big-endian integer.
pub(crate) fn map_generator(
    curve: DomainCurve,
    nonce: &[u8],
    h: &[u8],
) -> Result<Vec<u8>, EcError> {
    on_curve!(curve, map_generator_on(nonce, h))
}

/// Checks that `point` is an uncompressed, non-identity point on the curve.
pub(crate) fn validate(curve: DomainCurve, point: &[u8]) -> Result<(), EcError> {
    on_curve!(curve, validate_on(point))
}

/// The x-coordinate of a point already produced or validated here.
pub(crate) fn x_coordinate(curve: DomainCurve, point: &[u8]) -> Result<&[u8], EcError> {
    if point.len() != curve.point_len() {
        return Err(EcError::InvalidPoint);
    }
    Ok(&point[1..1 + curve.field_len()])
}

fn random_scalar_on<C>() -> Result<Zeroizing<Vec<u8>>, EcError>
where
    C: CurveArithmetic,
{
    let scalar = NonZeroScalar::<C>::try_generate().map_err(|_| EcError::Random)?;
    Ok(Zeroizing::new((*scalar).to_repr().to_vec()))
}

/// A non-zero scalar below the group order from a big-endian integer of at most field length
/// (shorter values, such as a 16-byte nonce, are left-padded).
fn decode_scalar<C>(bytes: &[u8]) -> Result<NonZeroScalar<C>, EcError>
where
    C: CurveArithmetic,
{
    let mut repr = Zeroizing::new(FieldBytes::<C>::default());
    let len = repr.len();
    if bytes.len() > len {
        return Err(EcError::InvalidScalar);
    }
    repr[len - bytes.len()..].copy_from_slice(bytes);
    Option::from(NonZeroScalar::<C>::from_repr(*repr)).ok_or(EcError::InvalidScalar)
}

fn decode_point<C>(bytes: &[u8]) -> Result<ProjectivePoint<C>, EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C>,
{
    // Only the uncompressed form is used by PACE; refusing the rest keeps one code path.
    let field = <FieldBytesSize<C> as elliptic_curve::array::typenum::Unsigned>::USIZE;
    if bytes.len() != 1 + 2 * field || bytes[0] != 0x04 {
        return Err(EcError::InvalidPoint);
    }
    let affine = AffinePoint::<C>::from_sec1_bytes(bytes).map_err(|_| EcError::InvalidPoint)?;
    let point = ProjectivePoint::<C>::from(affine);
    if bool::from(point.is_identity()) {
        return Err(EcError::InvalidPoint);
    }
    Ok(point)
}

fn validate_on<C>(bytes: &[u8]) -> Result<(), EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C>,
{
    decode_point::<C>(bytes).map(|_| ())
}

fn encode_point<C>(point: &ProjectivePoint<C>) -> Result<Vec<u8>, EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: ToSec1Point<C>,
{
    if bool::from(point.is_identity()) {
        return Err(EcError::Identity);
    }
    Ok(point.to_affine().to_sec1_point(false).as_bytes().to_vec())
}

fn multiply_on<C>(scalar: &[u8], base: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let mut k = decode_scalar::<C>(scalar)?;
    let base = match base {
        Some(bytes) => decode_point::<C>(bytes),
        None => Ok(ProjectivePoint::<C>::generator()),
    };
    let product = base.and_then(|base| encode_point::<C>(&(base * *k)));
    k.zeroize();
    product.map(Zeroizing::new)
}

fn map_generator_on<C>(nonce: &[u8], h: &[u8]) -> Result<Vec<u8>, EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
{
    let mut s = decode_scalar::<C>(nonce)?;
    let mapped = decode_point::<C>(h)
        .and_then(|h| encode_point::<C>(&(ProjectivePoint::<C>::generator() * *s + h)));
    s.zeroize();
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hex;

    const BP256: DomainCurve = DomainCurve::BrainpoolP256r1;

    fn point(x: &str, y: &str) -> Vec<u8> {
        let mut p = vec![4];
        p.extend(hex(x));
        p.extend(hex(y));
        p
    }

    #[test]
    fn parameter_ids_round_trip() {
        for id in [12, 13, 16] {
            assert_eq!(
                DomainCurve::from_parameter_id(id).unwrap().parameter_id(),
                id as u8
            );
        }
        assert_eq!(DomainCurve::from_parameter_id(14), None);
    }

    #[test]
    fn invalid_points_are_refused() {
        let g = multiply(BP256, &[1], None).unwrap();
        assert!(validate(BP256, &g).is_ok());
        // Off the curve: last byte of y changed.
        let mut off = g.to_vec();
        off[64] ^= 1;
        assert_eq!(validate(BP256, &off), Err(EcError::InvalidPoint));
        // Identity, compressed form, wrong length, empty, coordinates above p.
        assert_eq!(validate(BP256, &[0]), Err(EcError::InvalidPoint));
        assert_eq!(validate(BP256, &g[..33]), Err(EcError::InvalidPoint));
        let mut compressed = vec![2 + (g[64] & 1)];
        compressed.extend_from_slice(&g[1..33]);
        assert_eq!(validate(BP256, &compressed), Err(EcError::InvalidPoint));
        assert_eq!(validate(BP256, &[]), Err(EcError::InvalidPoint));
        assert_eq!(validate(BP256, &[0xFF; 65]), Err(EcError::InvalidPoint));
        let mut ff = vec![4];
        ff.extend([0xFF; 64]);
        assert_eq!(validate(BP256, &ff), Err(EcError::InvalidPoint));
        // A bp256 point is not a P-256 point (different field length for bp384).
        assert_eq!(
            validate(DomainCurve::BrainpoolP384r1, &g),
            Err(EcError::InvalidPoint)
        );
        assert_eq!(
            multiply(BP256, &[7], Some(&off)),
            Err(EcError::InvalidPoint)
        );
    }

    #[test]
    fn invalid_scalars_are_refused() {
        assert_eq!(multiply(BP256, &[0; 32], None), Err(EcError::InvalidScalar));
        assert_eq!(multiply(BP256, &[1; 33], None), Err(EcError::InvalidScalar));
        // The group order itself.
        let n = hex("A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7");
        assert_eq!(multiply(BP256, &n, None), Err(EcError::InvalidScalar));
    }

    #[test]
    fn mapping_onto_minus_s_g_is_refused_as_identity() {
        // H = -(s*G) makes the mapped generator the point at infinity.
        let s = [5u8];
        let s_g = multiply(BP256, &s, None).unwrap();
        let mut minus = s_g.to_vec();
        // -P has y = p - y.
        let p = hex("A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377");
        let y = &s_g[33..65];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(p[i]) - i16::from(y[i]) - borrow;
            minus[33 + i] = d.rem_euclid(256) as u8;
            borrow = i16::from(d < 0);
        }
        assert!(validate(BP256, &minus).is_ok());
        assert_eq!(map_generator(BP256, &s, &minus), Err(EcError::Identity));
    }

    #[test]
    fn random_scalars_are_valid_and_differ() {
        for curve in [
            DomainCurve::NistP256,
            DomainCurve::BrainpoolP256r1,
            DomainCurve::BrainpoolP384r1,
        ] {
            let a = random_scalar(curve).unwrap();
            let b = random_scalar(curve).unwrap();
            assert_eq!(a.len(), curve.field_len());
            assert_ne!(a, b);
            let pk = multiply(curve, &a, None).unwrap();
            assert_eq!(pk.len(), curve.point_len());
            validate(curve, &pk).unwrap();
        }
    }

    // ICAO 9303-11 Appendix G.1: the curve steps of PACE ECDH-GM on brainpoolP256r1.
    #[test]
    fn appendix_g1_curve_steps() {
        let sk_map_ifd = hex("7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99");
        let pk_map_ifd = point(
            "7ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E",
            "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D",
        );
        let sk_map_ic = hex("498FF49756F2DC1587840041839A85982BE7761D14715FB091EFA7BCE9058560");
        let pk_map_ic = point(
            "824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57",
            "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54",
        );
        let h = point(
            "60332EF2450B5D247EF6D3868397D398852ED6E8CAF6FFEEF6BF85CA57057FD5",
            "0840CA7415BAF3E43BD414D35AA4608B93A2CAF3A4E3EA4E82C9C13D03EB7181",
        );
        let g_mapped = point(
            "8CED63C91426D4F0EB1435E7CB1D74A46723A0AF21C89634F65A9AE87A9265E2",
            "8C879506743F8611AC33645C5B985C80B5F09A0B83407C1B6A4D857AE76FE522",
        );
        let sk_ifd = hex("A73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595");
        let pk_ifd = point(
            "2DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C",
            "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462",
        );
        let sk_ic = hex("107CF58696EF6155053340FD633392BA81909DF7B9706F226F32086C7AFF974A");
        let pk_ic = point(
            "9E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB",
            "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094",
        );
        let shared = hex("28768D20701247DAE81804C9E780EDE582A9996DB4A315020B2733197DB84925");
        let nonce = hex("3F00C4D39D153F2B2A214A078D899B22");

        assert_eq!(*multiply(BP256, &sk_map_ifd, None).unwrap(), pk_map_ifd);
        assert_eq!(*multiply(BP256, &sk_map_ic, None).unwrap(), pk_map_ic);
        assert_eq!(*multiply(BP256, &sk_map_ifd, Some(&pk_map_ic)).unwrap(), h);
        assert_eq!(*multiply(BP256, &sk_map_ic, Some(&pk_map_ifd)).unwrap(), h);
        assert_eq!(map_generator(BP256, &nonce, &h).unwrap(), g_mapped);
        assert_eq!(*multiply(BP256, &sk_ifd, Some(&g_mapped)).unwrap(), pk_ifd);
        assert_eq!(*multiply(BP256, &sk_ic, Some(&g_mapped)).unwrap(), pk_ic);
        let k_ifd = multiply(BP256, &sk_ifd, Some(&pk_ic)).unwrap();
        let k_ic = multiply(BP256, &sk_ic, Some(&pk_ifd)).unwrap();
        assert_eq!(k_ifd, k_ic);
        assert_eq!(x_coordinate(BP256, &k_ifd).unwrap(), shared.as_slice());
    }
}
