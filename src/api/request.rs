//! Validating a check request: every field is checked before anything is looked up, and a bad
//! one is refused with INVALID_ARGUMENT naming it ("citizen_id: ..."). Messages never repeat the
//! personal value that was sent.

use bhyt_proto::v1::{CheckCoverageRequest, Date, IdentityMethod, check_coverage_request};
use emrtd::cccd::id_number::CitizenId;
use prost::Message;
use ring::digest;

use crate::audit::Evidence;
use crate::card_number::CardNumber;
use crate::coverage::{BirthDate, Claim, Subject};

/// A request that passed validation.
#[derive(Clone, Debug)]
pub struct ValidCheck {
    pub subject: Subject,
    pub claim: Claim,
    pub operator_name: String,
    pub operator_id: CitizenId,
    pub evidence: Evidence,
}

/// A refused field: `field` is the request's field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl ToString) -> Self {
        Self {
            field,
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

const MAX_NAME_CHARS: usize = 200;
const MAX_ISSUER_CHARS: usize = 512;

/// Checks the fields every request must get right before anything else happens: the keys that
/// identify it for idempotency.
pub fn check_keys(req: &CheckCoverageRequest) -> Result<(), FieldError> {
    token("request_id", &req.request_id)?;
    validate_station(&req.facility_code, &req.station_id)
}

/// The facility and station a request speaks for.
pub fn validate_station(facility: &str, station: &str) -> Result<(), FieldError> {
    facility_code("facility_code", facility)?;
    token("station_id", station)
}

pub fn validate(req: &CheckCoverageRequest) -> Result<ValidCheck, FieldError> {
    check_keys(req)?;
    let birth = birth_date(req.date_of_birth.as_ref())?;
    let subject = match &req.subject {
        Some(check_coverage_request::Subject::CitizenId(id)) => {
            let id = CitizenId::parse(id).map_err(|e| FieldError::new("citizen_id", e))?;
            // The century/sex digit and digits 5-6 give the birth year.
            id.check_holder(birth.year, None)
                .map_err(|e| FieldError::new("citizen_id", e))?;
            Subject::Citizen(id)
        }
        Some(check_coverage_request::Subject::CardNumber(card)) => {
            Subject::Card(CardNumber::parse(card).map_err(|e| FieldError::new("card_number", e))?)
        }
        None => return Err(FieldError::new("subject", "give citizen_id or card_number")),
    };
    let full_name = person_name("full_name", &req.full_name)?;
    let operator = req
        .operator
        .as_ref()
        .ok_or_else(|| FieldError::new("operator", "required"))?;
    let operator_name = person_name("operator.full_name", &operator.full_name)?;
    let operator_id = CitizenId::parse(&operator.citizen_id)
        .map_err(|e| FieldError::new("operator.citizen_id", e))?;
    let evidence = evidence(req)?;
    Ok(ValidCheck {
        subject,
        claim: Claim {
            full_name,
            birth,
            facility_code: req.facility_code.clone(),
        },
        operator_name,
        operator_id,
        evidence,
    })
}

/// The hash that tells a retry (same payload) from a reuse of a request id (another payload).
pub fn payload_hash(req: &mut CheckCoverageRequest) -> String {
    // The request without its id, encoded in place rather than from a copy (a presence proof
    // makes a request kilobytes long).
    let request_id = std::mem::take(&mut req.request_id);
    let hash = digest::digest(&digest::SHA256, &req.encode_to_vec());
    req.request_id = request_id;
    hex::encode(hash.as_ref())
}

fn token(field: &'static str, value: &str) -> Result<(), FieldError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| FieldError::new(field, "1-64 characters from A-Z a-z 0-9 . _ : -"))
}

/// A facility code: 2-digit province and 3 letters or digits, e.g. "01821".
fn facility_code(field: &'static str, value: &str) -> Result<(), FieldError> {
    let b = value.as_bytes();
    let ok = b.len() == 5
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..].iter().all(u8::is_ascii_alphanumeric);
    ok.then_some(()).ok_or_else(|| {
        FieldError::new(
            field,
            "5 characters: 2-digit province, then 3 letters or digits",
        )
    })
}

fn person_name(field: &'static str, value: &str) -> Result<String, FieldError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(FieldError::new(field, "required"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            "letters, spaces and punctuation only",
        ));
    }
    Ok(name.to_owned())
}

fn birth_date(date: Option<&Date>) -> Result<BirthDate, FieldError> {
    let date =
        date.ok_or_else(|| FieldError::new("date_of_birth", "required (a year alone is allowed)"))?;
    let part = |n: u32| {
        if n == 0 {
            None
        } else {
            u8::try_from(n).ok().or(Some(u8::MAX))
        }
    };
    let year = u16::try_from(date.year).unwrap_or(u16::MAX);
    BirthDate::new(year, part(date.month), part(date.day))
        .map_err(|e| FieldError::new("date_of_birth", e))
}

fn evidence(req: &CheckCoverageRequest) -> Result<Evidence, FieldError> {
    let e = req
        .evidence
        .as_ref()
        .ok_or_else(|| FieldError::new("evidence", "required"))?;
    match IdentityMethod::try_from(e.method) {
        Ok(IdentityMethod::Unspecified) => {
            return Err(FieldError::new(
                "evidence.method",
                "say how the identity was established",
            ));
        }
        Err(_) => {
            return Err(FieldError::new(
                "evidence.method",
                format!("unknown value {}", e.method),
            ));
        }
        Ok(_) => {}
    }
    let chip_claims = e.passive_authentication || e.chip_authentication || e.active_authentication;
    if chip_claims && e.method != IdentityMethod::Chip as i32 {
        return Err(FieldError::new(
            "evidence",
            "chip authentication flags need method CHIP",
        ));
    }
    if let Some(proof) = &req.presence_proof {
        if e.method != IdentityMethod::Chip as i32 {
            return Err(FieldError::new(
                "presence_proof",
                "a presence proof needs evidence.method CHIP",
            ));
        }
        // Bounds what a proof can make the backend verify and write down.
        if let Some(n) = proof.data_groups.keys().find(|n| !(1..=16).contains(*n)) {
            return Err(FieldError::new(
                "presence_proof.data_groups",
                format!("data group {n} does not exist (1 to 16)"),
            ));
        }
    }
    if e.document_signer_issuer.chars().count() > MAX_ISSUER_CHARS {
        return Err(FieldError::new(
            "evidence.document_signer_issuer",
            format!("at most {MAX_ISSUER_CHARS} characters"),
        ));
    }
    Ok(Evidence {
        method: e.method,
        passive_authentication: e.passive_authentication,
        chip_authentication: e.chip_authentication,
        active_authentication: e.active_authentication,
        document_signer_issuer: e.document_signer_issuer.clone(),
        presence: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhyt_proto::v1::{IdentityEvidence, Operator};

    pub(crate) fn good() -> CheckCoverageRequest {
        CheckCoverageRequest {
            request_id: "req-1".into(),
            subject: Some(check_coverage_request::Subject::CitizenId(
                "001099012345".into(),
            )),
            full_name: "Nguyễn Thị Hòa".into(),
            date_of_birth: Some(Date {
                year: 1999,
                month: 3,
                day: 14,
            }),
            operator: Some(Operator {
                full_name: "Lê Văn Tám".into(),
                citizen_id: "079085000123".into(),
            }),
            facility_code: "01821".into(),
            station_id: "desk-1".into(),
            evidence: Some(IdentityEvidence {
                method: IdentityMethod::Typed as i32,
                ..Default::default()
            }),
            presence_proof: None,
        }
    }

    fn field_of(req: CheckCoverageRequest) -> &'static str {
        validate(&req).unwrap_err().field
    }

    #[test]
    fn accepts_a_good_request() {
        assert!(validate(&good()).is_ok());
        let year_only = CheckCoverageRequest {
            date_of_birth: Some(Date {
                year: 1999,
                month: 0,
                day: 0,
            }),
            ..good()
        };
        assert!(validate(&year_only).is_ok());
    }

    #[test]
    fn names_the_bad_field() {
        use check_coverage_request::Subject as S;
        let cases: Vec<(CheckCoverageRequest, &str)> = vec![
            (
                CheckCoverageRequest {
                    request_id: "".into(),
                    ..good()
                },
                "request_id",
            ),
            (
                CheckCoverageRequest {
                    request_id: "a b".into(),
                    ..good()
                },
                "request_id",
            ),
            (
                CheckCoverageRequest {
                    subject: Some(S::CitizenId("0010990123".into())),
                    ..good()
                },
                "citizen_id",
            ),
            (
                CheckCoverageRequest {
                    subject: Some(S::CitizenId("003099012345".into())),
                    ..good()
                },
                "citizen_id",
            ),
            // Century digit 2 says born in the 2000s, the date of birth says 1999.
            (
                CheckCoverageRequest {
                    subject: Some(S::CitizenId("001299012345".into())),
                    ..good()
                },
                "citizen_id",
            ),
            (
                CheckCoverageRequest {
                    subject: Some(S::CardNumber("XX".into())),
                    ..good()
                },
                "card_number",
            ),
            (
                CheckCoverageRequest {
                    subject: None,
                    ..good()
                },
                "subject",
            ),
            (
                CheckCoverageRequest {
                    full_name: "  ".into(),
                    ..good()
                },
                "full_name",
            ),
            (
                CheckCoverageRequest {
                    full_name: "x".repeat(201),
                    ..good()
                },
                "full_name",
            ),
            (
                CheckCoverageRequest {
                    date_of_birth: Some(Date {
                        year: 1999,
                        month: 2,
                        day: 30,
                    }),
                    ..good()
                },
                "date_of_birth",
            ),
            (
                CheckCoverageRequest {
                    date_of_birth: Some(Date {
                        year: 1999,
                        month: 0,
                        day: 3,
                    }),
                    ..good()
                },
                "date_of_birth",
            ),
            (
                CheckCoverageRequest {
                    date_of_birth: None,
                    ..good()
                },
                "date_of_birth",
            ),
            (
                CheckCoverageRequest {
                    operator: None,
                    ..good()
                },
                "operator",
            ),
            (
                CheckCoverageRequest {
                    facility_code: "1821".into(),
                    ..good()
                },
                "facility_code",
            ),
            (
                CheckCoverageRequest {
                    station_id: "".into(),
                    ..good()
                },
                "station_id",
            ),
            (
                CheckCoverageRequest {
                    evidence: Some(IdentityEvidence {
                        method: 42,
                        ..Default::default()
                    }),
                    ..good()
                },
                "evidence.method",
            ),
            (
                CheckCoverageRequest {
                    evidence: Some(IdentityEvidence::default()),
                    ..good()
                },
                "evidence.method",
            ),
        ];
        for (req, field) in cases {
            assert_eq!(field_of(req), field);
        }
    }

    #[test]
    fn messages_do_not_repeat_the_id() {
        let req = CheckCoverageRequest {
            subject: Some(check_coverage_request::Subject::CitizenId(
                "003099012345".into(),
            )),
            ..good()
        };
        assert!(
            !validate(&req)
                .unwrap_err()
                .to_string()
                .contains("099012345")
        );
    }

    #[test]
    fn payload_hash_ignores_only_the_request_id() {
        let mut a = good();
        let mut b = CheckCoverageRequest {
            request_id: "other".into(),
            ..good()
        };
        let mut c = CheckCoverageRequest {
            full_name: "Nguyễn Thị Hoà".into(),
            ..good()
        };
        assert_eq!(payload_hash(&mut a), payload_hash(&mut b));
        assert_ne!(payload_hash(&mut a), payload_hash(&mut c));
        assert_eq!(b.request_id, "other", "the request keeps its id");
    }

    /// A retry arrives as fresh bytes, decoded into a fresh map: its hash must not depend on
    /// the map's order. With the generated map a HashMap (random order per instance), ten
    /// decodes of a four-group proof agree by chance about once in 24^9.
    #[test]
    fn payload_hash_is_the_same_for_every_decode_of_a_proof() {
        let request = CheckCoverageRequest {
            presence_proof: Some(bhyt_proto::v1::PresenceProof {
                challenge: vec![1; 16],
                sod: vec![2; 32],
                data_groups: [1u32, 13, 14, 15]
                    .into_iter()
                    .map(|n| (n, vec![n as u8; 8]))
                    .collect(),
                active_authentication_signature: vec![3; 64],
            }),
            ..good()
        };
        let bytes = request.encode_to_vec();
        let first = payload_hash(&mut CheckCoverageRequest::decode(bytes.as_slice()).unwrap());
        for _ in 0..10 {
            let mut again = CheckCoverageRequest::decode(bytes.as_slice()).unwrap();
            assert_eq!(payload_hash(&mut again), first);
        }
    }
}
