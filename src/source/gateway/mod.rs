//! The national social-security gateway as a [`CoverageSource`]: a token log-in per facility
//! account, then a form-encoded card check per query (see [`wire`]).
//!
//! Failures are sorted for whoever wraps this source (a circuit breaker, the cache's stale
//! answers): a gateway that cannot be reached, times out, answers 5xx or reports its own server
//! error (codes 500 and 101, from the log-in or the card check) is [`SourceError::Unavailable`],
//! after a few retries with back-off ([`retry`]); an answer that cannot be read is
//! [`SourceError::Malformed`] and is not retried. A check never takes longer than
//! `total_timeout_ms`.
//!
//! Only `https://` gateways are accepted, unless `[source] dev_plain_http` says otherwise (the
//! simulator, in development): the token, the password and the patients' data cross the wire.
//!
//! Secrets: the token travels in the card check's query string (the gateway wants it there),
//! so no URL is ever logged or put in an error; errors of the HTTP client are described by
//! their kind only. The password goes in a form body, and names and ID numbers only in form
//! bodies, never in a URL, a log line or an error message.

pub mod retry;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use self::retry::RetryPolicy;
use self::wire::{CheckAnswer, CheckForm, LoginAnswer, LoginForm, TokenParams};
use super::{CoverageSource, SourceAnswer, SourceError, SourceQuery};
use crate::card_number::CardNumber;
use crate::config::{Secret, SourceConfig};
use crate::coverage::{self, CardRecord, CardStatus, Insurer, ReplacementCard, Subject};

/// Largest answer read from the gateway; a card check's answer is well under 2 KiB.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewaySetupError {
    #[error("[source] url is required for the gateway source")]
    NoUrl,
    #[error("[source] url must start with https:// (or http:// with dev_plain_http)")]
    BadUrl,
    #[error(
        "[source] url is plain http://: the gateway's token and password and the patients' data \
         would cross the network in clear; use https://, or set [source] dev_plain_http = true \
         for a local simulator (development only)"
    )]
    PlainHttp,
    #[error("[source] username and password are required for the gateway source")]
    NoCredentials,
    #[error("[source] ca_cert {0}: not a readable PEM certificate file")]
    BadCaCert(String),
    #[error("TLS set-up for the gateway: {0}")]
    Tls(String),
}

/// The gateway's token, with the instant after which it is renewed before use.
#[derive(Clone)]
struct Token {
    access: String,
    id: String,
    renew_after: Instant,
}

/// Why one try failed.
enum Failure {
    /// Worth another try after a back-off.
    Transient(String),
    /// This access token was refused: log in again, once.
    Unauthorized(String),
    /// Retrying would not help.
    Final(SourceError),
}

pub struct GatewaySource {
    http: reqwest::Client,
    login_url: String,
    check_url: String,
    username: String,
    password: Secret,
    policy: RetryPolicy,
    total_timeout: Duration,
    refresh_margin: Duration,
    /// One log-in at a time: concurrent checks that find no valid token wait for one.
    token: tokio::sync::Mutex<Option<Token>>,
    jitter: Mutex<ChaCha8Rng>,
    /// When the gateway last answered a card check (any answer it gave, even an unwelcome
    /// one, shows it is up); for `/health`.
    last_answer: Mutex<Option<Instant>>,
}

impl GatewaySource {
    pub fn new(config: &SourceConfig) -> Result<Self, GatewaySetupError> {
        let base = config.url.trim_end_matches('/');
        if base.is_empty() {
            return Err(GatewaySetupError::NoUrl);
        }
        if base.starts_with("http://") {
            if !config.dev_plain_http {
                return Err(GatewaySetupError::PlainHttp);
            }
            tracing::warn!(
                "[source] dev_plain_http: the gateway is called over plain HTTP; its token, \
                 password and the patients' data cross the network in clear. Development only."
            );
        } else if !base.starts_with("https://") {
            return Err(GatewaySetupError::BadUrl);
        }
        if config.username.is_empty() || config.password.expose().is_empty() {
            return Err(GatewaySetupError::NoCredentials);
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&config.ca_cert)?)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            // A redirect would carry the token to wherever it points; a proxy from the
            // environment would see it too. The gateway is called directly.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| GatewaySetupError::Tls(describe(&e)))?;
        Ok(Self {
            http,
            login_url: format!("{base}{}", wire::LOGIN_PATH),
            check_url: format!("{base}{}", wire::CHECK_PATH),
            username: config.username.clone(),
            password: config.password.clone(),
            policy: RetryPolicy {
                retries: config.retries,
                base: Duration::from_millis(config.backoff_base_ms),
                max: Duration::from_millis(config.backoff_max_ms),
            },
            total_timeout: Duration::from_millis(config.total_timeout_ms),
            refresh_margin: Duration::from_secs(config.token_refresh_margin_secs),
            token: tokio::sync::Mutex::new(None),
            jitter: Mutex::new(ChaCha8Rng::from_os_rng()),
            last_answer: Mutex::new(None),
        })
    }

    /// How long ago the gateway last answered a card check; `None` before its first answer.
    pub fn last_answer_age(&self) -> Option<Duration> {
        self.last_answer
            .lock()
            .expect("last answer lock")
            .map(|at| at.elapsed())
    }

    /// Tries, and retries transient failures with back-off; a refused token is renewed once.
    async fn check_with_retries(
        &self,
        query: &SourceQuery<'_>,
    ) -> Result<SourceAnswer, SourceError> {
        let mut renewed = false;
        let mut retry = 0;
        loop {
            let failure = match self.try_once(query).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            match failure {
                Failure::Final(error) => return Err(error),
                Failure::Unauthorized(refused) if !renewed => {
                    renewed = true;
                    // Only if no other check has renewed it already: a burst of refused
                    // calls makes one log-in, not one each.
                    let mut slot = self.token.lock().await;
                    if slot.as_ref().is_some_and(|t| t.access == refused) {
                        *slot = None;
                    }
                }
                Failure::Unauthorized(_) => {
                    return Err(SourceError::Unavailable(
                        "the gateway refused a token it had just issued".into(),
                    ));
                }
                Failure::Transient(why) => {
                    if retry >= self.policy.retries {
                        return Err(SourceError::Unavailable(format!(
                            "{why} (tried {} times)",
                            retry + 1
                        )));
                    }
                    let delay = {
                        let mut rng = self.jitter.lock().expect("jitter lock");
                        self.policy.delay(retry, &mut *rng)
                    };
                    retry += 1;
                    tracing::debug!(retry, delay_ms = delay.as_millis() as u64, %why, "gateway call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn try_once(&self, query: &SourceQuery<'_>) -> Result<SourceAnswer, Failure> {
        let token = self.token().await?;
        let form = CheckForm {
            ma_the: query.subject.value().to_owned(),
            ho_ten: query.full_name.to_owned(),
            ngay_sinh: wire::format_birth(query.birth),
            ho_ten_cb: query.operator_name.to_owned(),
            cccd_cb: query.operator_id.to_owned(),
        };
        let params = TokenParams {
            token: token.access.clone(),
            id_token: token.id,
            username: self.username.clone(),
        };
        let response = self
            .http
            .post(&self.check_url)
            .query(&params)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized(token.access));
        }
        check_status(status)?;
        let body = read_body(response).await?;
        let answer: CheckAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::Final(SourceError::Malformed(format!(
                "the card check's answer is not the expected JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )))
        })?;
        match interpret(&answer, query.subject).map_err(Failure::Final)? {
            Interpreted::Answer(answer) => {
                *self.last_answer.lock().expect("last answer lock") = Some(Instant::now());
                Ok(answer)
            }
            Interpreted::ServerError(code) => Err(server_error(code)),
            Interpreted::TokenRefused => Err(Failure::Unauthorized(token.access)),
        }
    }

    /// A token valid for a while yet: the current one, or a new one from a log-in.
    async fn token(&self) -> Result<Token, Failure> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.renew_after
        {
            return Ok(token.clone());
        }
        let token = self.log_in().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn log_in(&self) -> Result<Token, Failure> {
        let form = LoginForm {
            username: self.username.clone(),
            password: self.password.expose().to_owned(),
        };
        let requested = Instant::now();
        let response = self
            .http
            .post(&self.login_url)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let refused = || {
            Failure::Final(SourceError::Unavailable(
                "the gateway refused the facility account's log-in: check [source] username and password".into(),
            ))
        };
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(refused());
        }
        check_status(status)?;
        let body = read_body(response).await?;
        let answer: LoginAnswer = serde_json::from_slice(&body).map_err(|_| {
            Failure::Final(SourceError::Malformed(
                "the log-in answer is not the expected JSON".into(),
            ))
        })?;
        match (answer.code.as_str(), answer.api_key) {
            (wire::LOGIN_OK, Some(key)) if !key.access_token.is_empty() => {
                // Renew before the gateway's expiry, timed from when the log-in was sent; a day
                // at most, so an absurd expires_in can neither overflow the clock nor keep a
                // token forever.
                let lifetime = Duration::from_secs(key.expires_in.min(86_400));
                let renew_after = requested + lifetime.saturating_sub(self.refresh_margin);
                tracing::debug!(expires_in_secs = key.expires_in, "logged in to the gateway");
                Ok(Token {
                    access: key.access_token,
                    id: key.id_token,
                    renew_after,
                })
            }
            ("401", _) => Err(refused()),
            (code @ (SERVER_ERROR | SYSTEM_ERROR), _) => Err(server_error(code)),
            (wire::LOGIN_OK, _) => Err(Failure::Final(SourceError::Malformed(
                "the log-in answer has no access token".into(),
            ))),
            (code, _) => Err(Failure::Final(SourceError::Malformed(format!(
                "the log-in answer has code {}",
                printable_code(code)
            )))),
        }
    }
}

#[async_trait]
impl CoverageSource for GatewaySource {
    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn check(&self, query: &SourceQuery<'_>) -> Result<SourceAnswer, SourceError> {
        match tokio::time::timeout(self.total_timeout, self.check_with_retries(query)).await {
            Ok(result) => result,
            Err(_) => Err(SourceError::Unavailable(format!(
                "no answer from the gateway within {} ms",
                self.total_timeout.as_millis()
            ))),
        }
    }
}

/// rustls with the ring provider, the one provider of this build, and the public roots plus
/// the configured CA certificates.
fn tls_config(ca_cert: &str) -> Result<rustls::ClientConfig, GatewaySetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if !ca_cert.is_empty() {
        let bad = || GatewaySetupError::BadCaCert(ca_cert.to_owned());
        let certificates = CertificateDer::pem_file_iter(ca_cert)
            .map_err(|_| bad())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad())?;
        if certificates.is_empty() {
            return Err(bad());
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|_| bad())?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewaySetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An HTTP client error by its kind only: its `Display` names the URL, token included.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut off"
    } else if error.is_request() {
        "the request could not be sent"
    } else if error.is_builder() {
        "the request could not be built"
    } else {
        "HTTP error"
    };
    format!("gateway call failed: {kind}")
}

fn transport(error: reqwest::Error) -> Failure {
    Failure::Transient(describe(&error))
}

/// The gateway's codes for a failure of its own, in the log-in's answer or the card check's:
/// 500 "server error" and 101 "server error" (listed with 100, card data error, in the domain
/// notes). Worth another try, like an HTTP 5xx.
const SERVER_ERROR: &str = "500";
const SYSTEM_ERROR: &str = "101";

fn server_error(code: &str) -> Failure {
    Failure::Transient(format!("the gateway answered code {code} (server error)"))
}

/// 5xx and 429 are worth retrying; other non-success statuses are not.
fn check_status(status: reqwest::StatusCode) -> Result<(), Failure> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Transient(format!(
            "the gateway answered HTTP {}",
            status.as_u16()
        )))
    } else {
        Err(Failure::Final(SourceError::Malformed(format!(
            "the gateway answered HTTP {}",
            status.as_u16()
        ))))
    }
}

/// The body, up to [`MAX_ANSWER_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::Final(SourceError::Malformed(format!(
                "the gateway's answer is longer than {MAX_ANSWER_BYTES} bytes"
            ))));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a card check's answer means for this client.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per call, moved, never stored
pub(crate) enum Interpreted {
    Answer(SourceAnswer),
    /// Code 500 or 101: the gateway's server failed; transient.
    ServerError(&'static str),
    /// Code 401 in the body: the token was refused.
    TokenRefused,
}

/// Maps a card check's answer to what the backend understands:
///
/// | code | becomes |
/// |---|---|
/// | 000-004, 010, 110, 120-124 | the card's facts (state, insurer, new card from the code), judged and cached by the backend; 010 marks the card expired whatever its dates say |
/// | 050 | no card (cached briefly, like the registry's "not found") |
/// | 051-055, 060, 061, 070, 100, 130, 205 | the gateway's verdict on this request, not cached |
/// | 401 | the token was refused: log in again |
/// | 500, 101 | server error: retried, then `Unavailable` |
/// | anything else | `UNKNOWN_SOURCE_CODE` with the raw code (bounded, printable) |
pub(crate) fn interpret(
    answer: &CheckAnswer,
    subject: &Subject,
) -> Result<Interpreted, SourceError> {
    let code = answer.ma_ket_qua.trim();
    let facts = |status, insurer| card_from(answer, subject, status, insurer).map(Some);
    let card = match code {
        "000" => facts(CardStatus::Active, Insurer::SocialSecurity)?,
        // The gateway's judgement stands: a card it calls expired is not made valid again by
        // dates that say otherwise (an early end of coverage, a clock or time-zone difference).
        "010" => facts(CardStatus::Expired, Insurer::SocialSecurity)?,
        "001" => facts(CardStatus::Active, Insurer::Defence)?,
        "002" => facts(CardStatus::Active, Insurer::PublicSecurity)?,
        "003" | "004" => {
            let mut card = card_from(answer, subject, CardStatus::Active, Insurer::SocialSecurity)?;
            card.replaced_by = Some(replacement(answer)?);
            Some(card)
        }
        "110" => facts(CardStatus::Revoked, Insurer::SocialSecurity)?,
        "120" => facts(CardStatus::Reduced, Insurer::SocialSecurity)?,
        "121" => facts(
            CardStatus::ReducedMovedOutOfProvince,
            Insurer::SocialSecurity,
        )?,
        "122" => facts(
            CardStatus::ReducedMovedWithinProvince,
            Insurer::SocialSecurity,
        )?,
        "123" => facts(
            CardStatus::ReducedReaddedSameEmployer,
            Insurer::SocialSecurity,
        )?,
        "124" => facts(
            CardStatus::ReducedStoppedParticipating,
            Insurer::SocialSecurity,
        )?,
        "050" => None,
        "401" => return Ok(Interpreted::TokenRefused),
        SERVER_ERROR => return Ok(Interpreted::ServerError(SERVER_ERROR)),
        SYSTEM_ERROR => return Ok(Interpreted::ServerError(SYSTEM_ERROR)),
        _ => {
            let result = coverage::from_gateway_code(code);
            return Ok(Interpreted::Answer(SourceAnswer::Verdict {
                result,
                source_code: printable_code(code),
            }));
        }
    };
    Ok(Interpreted::Answer(SourceAnswer::Facts(card)))
}

/// A code from outside, fit to keep and show: at most 8 ASCII letters or digits.
fn printable_code(code: &str) -> String {
    if !code.is_empty() && code.len() <= 8 && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        code.to_owned()
    } else {
        "?".into()
    }
}

/// The card in an answer. A missing or unreadable field is `Malformed`, naming the field and
/// never its value.
fn card_from(
    answer: &CheckAnswer,
    subject: &Subject,
    status: CardStatus,
    insurer: Insurer,
) -> Result<CardRecord, SourceError> {
    fn field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, SourceError> {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad_field(name))
    }
    let card_number = field(&answer.ma_the, "maThe")?;
    let Ok(CardNumber::Full(card_number)) = CardNumber::parse(card_number) else {
        return Err(bad_field("maThe"));
    };
    let benefit_level = card_number
        .as_bytes()
        .get(2)
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .ok_or_else(|| bad_field("maThe"))?;
    let social_insurance_number = match answer.ma_so_bhxh.as_deref().map(str::trim) {
        Some(number) if !number.is_empty() => number.to_owned(),
        _ => card_number.get(5..).unwrap_or_default().to_owned(),
    };
    let date = |value: &Option<String>, name: &str| {
        wire::parse_date(field(value, name)?).ok_or_else(|| bad_field(name))
    };
    let five_year_date = match answer.ngay_du_5_nam.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(wire::parse_date(text).ok_or_else(|| bad_field("ngayDu5Nam"))?),
    };
    Ok(CardRecord {
        category: card_number.get(..2).unwrap_or_default().to_owned(),
        social_insurance_number,
        citizen_id: match subject {
            Subject::Citizen(id) => Some(id.as_str().to_owned()),
            Subject::Card(_) => None,
        },
        full_name: field(&answer.ho_ten, "hoTen")?.to_owned(),
        birth: wire::parse_birth(field(&answer.ngay_sinh, "ngaySinh")?)
            .ok_or_else(|| bad_field("ngaySinh"))?,
        benefit_level,
        valid_from: date(&answer.gt_the_tu, "gtTheTu")?,
        valid_to: date(&answer.gt_the_den, "gtTheDen")?,
        primary_care_facility: field(&answer.ma_dkbd, "maDKBD")?.to_owned(),
        area_code: answer
            .ma_kv
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        five_year_date,
        issuing_office: answer.cq_bhxh.clone().unwrap_or_default(),
        status,
        insurer,
        replaced_by: None,
        card_number,
    })
}

fn replacement(answer: &CheckAnswer) -> Result<ReplacementCard, SourceError> {
    let number = answer
        .ma_the_moi
        .as_deref()
        .map(str::trim)
        .filter(|n| matches!(CardNumber::parse(n), Ok(CardNumber::Full(_))))
        .ok_or_else(|| bad_field("maTheMoi"))?;
    let date = |value: &Option<String>, name: &str| {
        value
            .as_deref()
            .and_then(|v| wire::parse_date(v.trim()))
            .ok_or_else(|| bad_field(name))
    };
    Ok(ReplacementCard {
        card_number: number.to_owned(),
        valid_from: date(&answer.gt_the_tu_moi, "gtTheTuMoi")?,
        valid_to: date(&answer.gt_the_den_moi, "gtTheDenMoi")?,
    })
}

fn bad_field(name: &str) -> SourceError {
    SourceError::Malformed(format!(
        "the gateway's answer has a missing or unreadable {name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bhyt_proto::v1::ResultCode;
    use emrtd::cccd::id_number::CitizenId;
    use time::macros::date;

    fn citizen() -> Subject {
        Subject::Citizen(CitizenId::parse("001199012345").unwrap())
    }

    fn card_answer(code: &str) -> CheckAnswer {
        CheckAnswer {
            ma_ket_qua: code.into(),
            ma_the: Some("DN4010123456789".into()),
            ho_ten: Some("Nguyễn Thị Hòa".into()),
            ngay_sinh: Some("14/03/1999".into()),
            ma_dkbd: Some("01821".into()),
            cq_bhxh: Some("BHXH Hà Nội".into()),
            gt_the_tu: Some("01/01/2026".into()),
            gt_the_den: Some("31/12/2026".into()),
            ma_kv: Some("".into()),
            ngay_du_5_nam: Some("30/06/2027".into()),
            ..Default::default()
        }
    }

    fn facts(interpreted: Interpreted) -> CardRecord {
        match interpreted {
            Interpreted::Answer(SourceAnswer::Facts(Some(card))) => card,
            other => panic!("expected facts, got {other:?}"),
        }
    }

    #[test]
    fn card_codes_become_facts_with_state_insurer_and_new_card() {
        let card = facts(interpret(&card_answer("000"), &citizen()).unwrap());
        assert_eq!(card.card_number, "DN4010123456789");
        assert_eq!(card.social_insurance_number, "0123456789");
        assert_eq!((card.category.as_str(), card.benefit_level), ("DN", 4));
        assert_eq!(card.citizen_id.as_deref(), Some("001199012345"));
        assert_eq!(card.valid_to, date!(2026 - 12 - 31));
        assert_eq!(card.five_year_date, Some(date!(2027 - 06 - 30)));
        assert_eq!(card.area_code, None, "an empty maKV is no area code");
        assert_eq!(
            (card.status, card.insurer),
            (CardStatus::Active, Insurer::SocialSecurity)
        );
        let cases = [
            ("001", CardStatus::Active, Insurer::Defence),
            ("002", CardStatus::Active, Insurer::PublicSecurity),
            ("110", CardStatus::Revoked, Insurer::SocialSecurity),
            ("120", CardStatus::Reduced, Insurer::SocialSecurity),
            (
                "121",
                CardStatus::ReducedMovedOutOfProvince,
                Insurer::SocialSecurity,
            ),
            (
                "122",
                CardStatus::ReducedMovedWithinProvince,
                Insurer::SocialSecurity,
            ),
            (
                "123",
                CardStatus::ReducedReaddedSameEmployer,
                Insurer::SocialSecurity,
            ),
            (
                "124",
                CardStatus::ReducedStoppedParticipating,
                Insurer::SocialSecurity,
            ),
        ];
        for (code, status, insurer) in cases {
            let card = facts(interpret(&card_answer(code), &citizen()).unwrap());
            assert_eq!((card.status, card.insurer), (status, insurer), "{code}");
        }
        // The backend's own judgement of these facts gives the gateway's code back.
        let claim = coverage::Claim {
            full_name: "Nguyễn Thị Hòa".into(),
            birth: wire::parse_birth("14/03/1999").unwrap(),
            facility_code: "01821".into(),
        };
        let in_2026 = date!(2026 - 06 - 01);
        for code in ["000", "001", "002", "110", "120", "124"] {
            let card = facts(interpret(&card_answer(code), &citizen()).unwrap());
            let verdict = coverage::judge(Some(&card), &claim, in_2026);
            assert_eq!(verdict.source_code, code);
        }
        let expired = facts(interpret(&card_answer("010"), &citizen()).unwrap());
        assert_eq!(
            coverage::judge(Some(&expired), &claim, date!(2027 - 01 - 02)).source_code,
            "010"
        );
        // 010 with dates that still cover today: the gateway's "expired" is the verdict. Were
        // 010 mapped like 000, this would be CardValid.
        assert_eq!(expired.status, CardStatus::Expired);
        let verdict = coverage::judge(Some(&expired), &claim, in_2026);
        assert_eq!(
            (verdict.result, verdict.source_code, verdict.usable),
            (ResultCode::CardExpired, "010", false)
        );

        // 003/004: the new card's number and dates come along; without them, Malformed.
        let reissued = CheckAnswer {
            ma_the_moi: Some("HT3010123456789".into()),
            gt_the_tu_moi: Some("01/06/2026".into()),
            gt_the_den_moi: Some("31/05/2027".into()),
            ..card_answer("004")
        };
        let card = facts(interpret(&reissued, &citizen()).unwrap());
        let new = card.replaced_by.clone().unwrap();
        assert_eq!(new.card_number, "HT3010123456789");
        assert_eq!(new.valid_to, date!(2027 - 05 - 31));
        assert_eq!(
            coverage::judge(Some(&card), &claim, in_2026).result,
            ResultCode::ReissuedOldCardValid
        );
        assert_eq!(
            coverage::judge(Some(&card), &claim, date!(2027 - 01 - 02)).result,
            ResultCode::ReissuedOldCardExpired
        );
        for broken in [
            CheckAnswer {
                ma_the_moi: None,
                ..reissued.clone()
            },
            CheckAnswer {
                ma_the_moi: Some("HT30101".into()),
                ..reissued.clone()
            },
            CheckAnswer {
                gt_the_den_moi: Some("2027-05-31".into()),
                ..reissued.clone()
            },
        ] {
            assert!(matches!(
                interpret(&broken, &citizen()),
                Err(SourceError::Malformed(_))
            ));
        }
    }

    #[test]
    fn other_codes_are_verdicts_or_control_and_unknown_codes_are_kept() {
        assert_eq!(
            interpret(
                &CheckAnswer {
                    ma_ket_qua: "050".into(),
                    ..Default::default()
                },
                &citizen()
            )
            .unwrap(),
            Interpreted::Answer(SourceAnswer::Facts(None))
        );
        let verdict = |code: &str| {
            interpret(
                &CheckAnswer {
                    ma_ket_qua: code.into(),
                    ..Default::default()
                },
                &citizen(),
            )
            .unwrap()
        };
        let expected = [
            ("051", ResultCode::WrongCardNumber),
            ("052", ResultCode::WrongProvinceCode),
            ("053", ResultCode::WrongBenefitCode),
            ("054", ResultCode::OperatorNotRegistered),
            ("055", ResultCode::OperatorNameMismatch),
            ("060", ResultCode::NameMismatch),
            ("061", ResultCode::NameMismatchFirstCharacterRight),
            ("070", ResultCode::BirthDateMismatch),
            ("100", ResultCode::CardDataError),
            ("130", ResultCode::ChildWithoutCard),
            ("205", ResultCode::SourceParameterError),
            ("999", ResultCode::UnknownSourceCode),
            ("", ResultCode::UnknownSourceCode),
        ];
        for (code, result) in expected {
            let source_code = if code.is_empty() { "?" } else { code };
            assert_eq!(
                verdict(code),
                Interpreted::Answer(SourceAnswer::Verdict {
                    result,
                    source_code: source_code.into()
                }),
                "{code}"
            );
        }
        assert_eq!(verdict("401"), Interpreted::TokenRefused);
        assert_eq!(verdict("500"), Interpreted::ServerError("500"));
        assert_eq!(verdict("101"), Interpreted::ServerError("101"));
        // A hostile code is neither echoed at length nor with control characters.
        for hostile in ["0000000000000000000", "00\n1", "<b>", "Ω"] {
            assert_eq!(
                verdict(hostile),
                Interpreted::Answer(SourceAnswer::Verdict {
                    result: ResultCode::UnknownSourceCode,
                    source_code: "?".into()
                }),
                "{hostile:?}"
            );
        }
    }

    #[test]
    fn unreadable_card_fields_are_malformed_naming_the_field_only() {
        let cases = [
            (
                "maThe",
                CheckAnswer {
                    ma_the: None,
                    ..card_answer("000")
                },
            ),
            (
                "maThe",
                CheckAnswer {
                    ma_the: Some("DN40101234".into()),
                    ..card_answer("000")
                },
            ),
            (
                "hoTen",
                CheckAnswer {
                    ho_ten: Some(" ".into()),
                    ..card_answer("000")
                },
            ),
            (
                "ngaySinh",
                CheckAnswer {
                    ngay_sinh: Some("14-03-1999".into()),
                    ..card_answer("000")
                },
            ),
            (
                "gtTheDen",
                CheckAnswer {
                    gt_the_den: Some("31/02/2026".into()),
                    ..card_answer("000")
                },
            ),
            (
                "maDKBD",
                CheckAnswer {
                    ma_dkbd: None,
                    ..card_answer("000")
                },
            ),
            (
                "ngayDu5Nam",
                CheckAnswer {
                    ngay_du_5_nam: Some("soon".into()),
                    ..card_answer("000")
                },
            ),
        ];
        for (name, answer) in cases {
            match interpret(&answer, &citizen()) {
                Err(SourceError::Malformed(message)) => {
                    assert!(message.contains(name), "{message}");
                    assert!(
                        !message.contains("1999") && !message.contains("soon"),
                        "{message}"
                    );
                }
                other => panic!("{name}: expected Malformed, got {other:?}"),
            }
        }
    }
}
