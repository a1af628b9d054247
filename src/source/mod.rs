//! Where coverage facts come from: the registry database (embedded default) or, later, the
//! national gateway. Every source answers the same question for a [`Subject`].

use async_trait::async_trait;

use crate::coverage::{CardRecord, Subject};

/// Why a source could not answer. Distinct from "no such card", which is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("the coverage source is unavailable: {0}")]
    Unavailable(String),
    #[error("the coverage source answered something unusable: {0}")]
    Malformed(String),
}

#[async_trait]
pub trait CoverageSource: Send + Sync + 'static {
    /// A short name reported in answers and metrics: "registry", "gateway".
    fn name(&self) -> &'static str;

    /// The card that answers for `subject`: by citizen ID, the person's current card; by card
    /// number (either form), that card, with its replacement if it was re-issued.
    async fn lookup(&self, subject: &Subject) -> Result<Option<CardRecord>, SourceError>;
}
