//! Where coverage facts come from: the registry database (embedded default) or the national
//! gateway ([`gateway`]). Every source answers the same question, a [`SourceQuery`].

pub mod breaker;
pub mod gateway;

use async_trait::async_trait;
use bhyt_proto::v1::ResultCode;

use crate::coverage::{BirthDate, CardRecord, Subject};

/// Why a source could not answer. Distinct from "no such card", which is `Facts(None)`.
///
/// `Unavailable` is worth trying again later (the circuit breaker counts it); `Malformed` means
/// the source answered and the answer cannot be read, which retrying does not change;
/// `CircuitOpen` means the source was not asked at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("the coverage source is unavailable: {0}")]
    Unavailable(String),
    #[error("the coverage source answered something unusable: {0}")]
    Malformed(String),
    /// Not asked: the circuit breaker is open after repeated failures ([`breaker`]).
    #[error("the coverage source is failing; not asked again for {} ms", retry_in.as_millis())]
    CircuitOpen { retry_in: std::time::Duration },
}

/// One check as a source sees it: whom it is about, what the desk typed, and who is asking.
/// The registry needs only the subject; the national gateway wants all of it (since 2024 it
/// logs the staff member's name and CCCD with every card check).
///
/// Personal data: nothing here may reach a log line or an error message.
#[derive(Clone, Copy)]
pub struct SourceQuery<'a> {
    pub subject: &'a Subject,
    pub full_name: &'a str,
    pub birth: BirthDate,
    pub operator_name: &'a str,
    pub operator_id: &'a str,
}

/// What a source answers. One per query, moved to the cache or the answer, never held in bulk:
/// the facts stay unboxed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)]
pub enum SourceAnswer {
    /// Facts about the subject's card (`None`: no card). They hold whoever asks, so they are
    /// cached, and the backend judges them for each request.
    Facts(Option<CardRecord>),
    /// The source's own verdict on this request alone (a wrong name, an operator the gateway
    /// does not know, a code this service does not know): never cached, never shared with
    /// other requests for the same subject. `source_code` is the source's raw code.
    Verdict {
        result: ResultCode,
        source_code: String,
    },
}

#[async_trait]
pub trait CoverageSource: Send + Sync + 'static {
    /// A short name reported in answers and metrics: "registry", "gateway".
    fn name(&self) -> &'static str;

    /// The answer for `query`: by citizen ID, the person's current card; by card number
    /// (either form), that card, with its replacement if it was re-issued.
    async fn check(&self, query: &SourceQuery<'_>) -> Result<SourceAnswer, SourceError>;
}
