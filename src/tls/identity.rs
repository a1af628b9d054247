//! Who is calling, as the private CA certified it: role, facility and station read from the
//! client certificate's subject alternative names, never from a request body.
//!
//! The claims are `urn:bhyt:<key>:<value>` URIs in the SAN extension (the scheme is described in
//! [`crate::tls`]). URIs are used rather than a custom extension because every tool shows them
//! (`openssl x509 -text`), rcgen writes them, and no private OID needs registering.
//!
//! Parsed with `x509-cert` 0.3: it is already in the build (the chip library reads DG14/DG15 and
//! EF.SOD with it), so no second ASN.1 stack comes in for this.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The prefix of every claim URI.
pub const CLAIM_PREFIX: &str = "urn:bhyt:";

/// What a certificate holder may do; the handlers authorise by it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A reception desk's reader-agent: checks coverage for its own facility and station.
    Station,
    /// A clinic's hospital information system: checks coverage for its own facility.
    HisIntegration,
    /// Reads the audit trail.
    Auditor,
    /// Imports the registry and administers the service.
    Administrator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Station,
        Role::HisIntegration,
        Role::Auditor,
        Role::Administrator,
    ];

    /// The value in `urn:bhyt:role:<value>` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::HisIntegration => "his",
            Role::Auditor => "auditor",
            Role::Administrator => "admin",
        }
    }

    /// Stations and HIS integrations act for one facility; auditors and administrators for none.
    fn facility_scoped(self) -> bool {
        matches!(self, Role::Station | Role::HisIntegration)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

/// A certificate's serial number, as unsigned big-endian bytes without leading zeros, so that a
/// serial read from a certificate and the same serial read from a CRL compare equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Box<[u8]>);

impl Serial {
    /// From the content octets of a DER INTEGER (which may carry a leading 0x00 sign byte).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        Serial(bytes[start..].into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Lower-case hex, no separators (`openssl x509 -serial` prints the same digits in upper case).
impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// Hex digits, optionally separated by `:` (as rcgen and some tools print them).
impl FromStr for Serial {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|&c| c != ':').collect();
        let bad = || IdentityError::BadSerial(s.to_owned());
        if digits.is_empty() || digits.len() > 42 {
            return Err(bad());
        }
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        hex::decode(padded)
            .map(|b| Serial::from_bytes(&b))
            .map_err(|_| bad())
    }
}

/// What a certificate claims about its holder. Built by the CA tooling (which writes
/// [`Claims::uris`]) and read back by the server (which parses them with [`Claims::from_uris`]):
/// one type, so the two cannot drift apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub role: Role,
    /// Required for stations and HIS integrations; absent for auditors and administrators.
    pub facility: Option<String>,
    /// Required for stations; optional for HIS integrations; absent otherwise.
    pub station: Option<String>,
}

impl Claims {
    /// Checks the values and that the role has exactly the scope it needs.
    pub fn new(
        role: Role,
        facility: Option<String>,
        station: Option<String>,
    ) -> Result<Self, IdentityError> {
        if let Some(f) = &facility {
            check_facility(f)?;
        }
        if let Some(s) = &station {
            check_station(s)?;
        }
        let missing = |key| IdentityError::Missing { role, key };
        let not_allowed = |key| IdentityError::NotAllowed { role, key };
        match (role.facility_scoped(), &facility, &station) {
            (true, None, _) => return Err(missing("facility")),
            (false, Some(_), _) => return Err(not_allowed("facility")),
            (false, _, Some(_)) => return Err(not_allowed("station")),
            _ => {}
        }
        if role == Role::Station && station.is_none() {
            return Err(missing("station"));
        }
        Ok(Claims {
            role,
            facility,
            station,
        })
    }

    /// The SAN URIs that carry these claims.
    pub fn uris(&self) -> Vec<String> {
        let mut uris = vec![format!("{CLAIM_PREFIX}role:{}", self.role)];
        if let Some(f) = &self.facility {
            uris.push(format!("{CLAIM_PREFIX}facility:{f}"));
        }
        if let Some(s) = &self.station {
            uris.push(format!("{CLAIM_PREFIX}station:{s}"));
        }
        uris
    }

    /// Reads the claims from a certificate's SAN URIs. URIs outside `urn:bhyt:` are ignored;
    /// an unknown or repeated `urn:bhyt:` key is refused, since a certificate meant to be
    /// narrower than we understand must not be taken as broader.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Self, IdentityError> {
        let (mut role, mut facility, mut station) = (None, None, None);
        for uri in uris {
            let Some(claim) = uri.strip_prefix(CLAIM_PREFIX) else {
                continue;
            };
            let (key, value) = claim
                .split_once(':')
                .ok_or_else(|| IdentityError::UnknownClaim(uri.to_owned()))?;
            let slot = match key {
                "role" => &mut role,
                "facility" => &mut facility,
                "station" => &mut station,
                _ => return Err(IdentityError::UnknownClaim(uri.to_owned())),
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(IdentityError::Repeated(key.to_owned()));
            }
        }
        let role = role.ok_or(IdentityError::NoRole)?.parse()?;
        Claims::new(role, facility, station)
    }
}

/// The verified peer of a connection: its claims and what the server needs to keep checking it
/// on every call (serial for revocation, expiry for connections that outlive the certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub claims: Claims,
    pub serial: Serial,
    pub not_after: OffsetDateTime,
}

impl PeerIdentity {
    /// Parses an end-entity certificate (DER). Does not verify it: the TLS handshake did.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let malformed = |e: x509_cert::der::Error| IdentityError::Malformed(e.to_string());
        let cert = Certificate::from_der(der).map_err(malformed)?;
        let tbs = cert.tbs_certificate();
        let (_, san) = tbs
            .get_extension::<SubjectAltName>()
            .map_err(malformed)?
            .ok_or(IdentityError::NoRole)?;
        let claims = Claims::from_uris(san.0.iter().filter_map(|name| match name {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
            _ => None,
        }))?;
        let not_after = tbs.validity().not_after.to_unix_duration();
        let not_after = OffsetDateTime::UNIX_EPOCH + not_after;
        Ok(PeerIdentity {
            claims,
            serial: Serial::from_bytes(tbs.serial_number().as_bytes()),
            not_after,
        })
    }

    pub fn role(&self) -> Role {
        self.claims.role
    }

    pub fn facility(&self) -> Option<&str> {
        self.claims.facility.as_deref()
    }

    pub fn station(&self) -> Option<&str> {
        self.claims.station.as_deref()
    }

    /// A connection opened before the certificate's end may still be open after it.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now > self.not_after
    }
}

/// Why a certificate carries no usable identity. Facility codes and station ids are not personal
/// data, so they may be named.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate: {0}")]
    Malformed(String),
    #[error("certificate has no urn:bhyt:role: subject alternative name")]
    NoRole,
    #[error("unknown role {0:?} (station, his, auditor or admin)")]
    UnknownRole(String),
    #[error("unknown claim {0:?} in the certificate")]
    UnknownClaim(String),
    #[error("claim urn:bhyt:{0} appears more than once")]
    Repeated(String),
    #[error("role {role} needs a {key}")]
    Missing { role: Role, key: &'static str },
    #[error("role {role} may not carry a {key}")]
    NotAllowed { role: Role, key: &'static str },
    #[error("facility {0:?}: 5 characters, 2-digit province then 3 letters or digits")]
    BadFacility(String),
    #[error("station {0:?}: 1-64 characters from A-Z a-z 0-9 . _ -")]
    BadStation(String),
    #[error("serial {0:?}: hex digits, at most 20 bytes")]
    BadSerial(String),
}

/// The same rule the API applies to `facility_code`.
fn check_facility(value: &str) -> Result<(), IdentityError> {
    let b = value.as_bytes();
    let ok = b.len() == 5
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..].iter().all(u8::is_ascii_alphanumeric);
    ok.then_some(())
        .ok_or_else(|| IdentityError::BadFacility(value.to_owned()))
}

/// The API's `station_id` rule, without `:` (it separates the URI's parts).
fn check_station(value: &str) -> Result<(), IdentityError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| IdentityError::BadStation(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(uris: &[&str]) -> Result<Claims, IdentityError> {
        Claims::from_uris(uris.iter().copied())
    }

    #[test]
    fn station_claims_round_trip() {
        let c = Claims::new(Role::Station, Some("01821".into()), Some("desk-1".into())).unwrap();
        assert_eq!(
            c.uris(),
            [
                "urn:bhyt:role:station",
                "urn:bhyt:facility:01821",
                "urn:bhyt:station:desk-1"
            ]
        );
        let mut uris = c.uris();
        uris.insert(0, "https://example.invalid/ignored".into());
        assert_eq!(
            Claims::from_uris(uris.iter().map(String::as_str)).unwrap(),
            c
        );
    }

    #[test]
    fn each_role_gets_exactly_its_scope() {
        assert!(claims(&["urn:bhyt:role:auditor"]).is_ok());
        assert!(claims(&["urn:bhyt:role:admin"]).is_ok());
        assert!(claims(&["urn:bhyt:role:his", "urn:bhyt:facility:01821"]).is_ok());
        assert!(matches!(
            claims(&["urn:bhyt:role:station", "urn:bhyt:facility:01821"]),
            Err(IdentityError::Missing { key: "station", .. })
        ));
        assert!(matches!(
            claims(&["urn:bhyt:role:his"]),
            Err(IdentityError::Missing {
                key: "facility",
                ..
            })
        ));
        assert!(matches!(
            claims(&["urn:bhyt:role:auditor", "urn:bhyt:facility:01821"]),
            Err(IdentityError::NotAllowed {
                key: "facility",
                ..
            })
        ));
    }

    #[test]
    fn ambiguous_or_unknown_claims_are_refused() {
        assert!(matches!(claims(&[]), Err(IdentityError::NoRole)));
        assert!(matches!(
            claims(&["urn:bhyt:role:admin", "urn:bhyt:role:auditor"]),
            Err(IdentityError::Repeated(_))
        ));
        assert!(matches!(
            claims(&["urn:bhyt:role:root"]),
            Err(IdentityError::UnknownRole(_))
        ));
        assert!(matches!(
            claims(&["urn:bhyt:role:auditor", "urn:bhyt:scope:all"]),
            Err(IdentityError::UnknownClaim(_))
        ));
        assert!(matches!(
            claims(&["urn:bhyt:role:his", "urn:bhyt:facility:1821"]),
            Err(IdentityError::BadFacility(_))
        ));
        assert!(matches!(
            claims(&[
                "urn:bhyt:role:station",
                "urn:bhyt:facility:01821",
                "urn:bhyt:station:desk 1"
            ]),
            Err(IdentityError::BadStation(_))
        ));
    }

    #[test]
    fn serials_compare_without_sign_bytes() {
        assert_eq!(
            Serial::from_bytes(&[0, 0x80, 1]),
            Serial::from_bytes(&[0x80, 1])
        );
        assert_eq!("80:01".parse::<Serial>().unwrap().to_string(), "8001");
        assert_eq!("0x1".parse::<Serial>().ok(), None);
        assert_eq!("801".parse::<Serial>().unwrap().as_bytes(), [8, 1]);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            PeerIdentity::from_der(b"\x30\x03\x02\x01\x01"),
            Err(IdentityError::Malformed(_))
        ));
    }
}
