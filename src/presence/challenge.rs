//! Presence challenges: fresh, single-use, bound to the station that asked.
//!
//! A challenge carries its own proof of origin, so any replica can check one another issued:
//! `version (1) | expires at (8, Unix seconds, big-endian) | nonce (8) | tag (16)`, the tag a
//! keyed hash (the pseudonym key ring, which replicas share) over the station and those fields.
//! Single use is enforced by remembering each redeemed tag, with the request that used it, until
//! the challenge expires: in Redis when it is in use (so a replay at another replica is caught
//! too), and always in process (so a replay is caught even while Redis is down; a replay at
//! another replica during a Redis outage is the one that gets through). The same request sent
//! again (a retry after UNAVAILABLE, same request id and payload) may use its challenge again.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::keys::Pseudonymizer;
use crate::redis_link::RedisLink;

/// How long a challenge may be answered: a card read with PACE and Active Authentication takes
/// a few seconds; two minutes leaves room for a slow reader and a retry, not for storing proofs.
pub const LIFETIME: Duration = Duration::from_secs(120);

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const LEN: usize = 1 + 8 + 8 + TAG_LEN;
const PURPOSE: &str = "presence-challenge";
/// Replicas' clocks may differ this much: a redeemed tag is remembered this much longer.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The 8-byte challenge the chip signs (INTERNAL AUTHENTICATE takes exactly 8).
pub type Nonce = [u8; 8];

pub struct Issued {
    pub challenge: Vec<u8>,
    pub nonce: Nonce,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    #[error("the presence challenge is malformed: send PresenceChallenge.challenge unchanged")]
    Malformed,
    #[error("the presence challenge was not issued to this station by this service")]
    NotIssuedHere,
    #[error("the presence challenge has expired: ask for a new one")]
    Expired,
    #[error("the presence challenge was already used: ask for a new one for each check")]
    AlreadyUsed,
}

pub struct Challenges {
    keys: Pseudonymizer,
    random: SystemRandom,
    /// Redeemed tags and the request (a hash of its keys and payload) that redeemed each.
    redeemed: moka::sync::Cache<[u8; TAG_LEN], String>,
    redis_timeout: Duration,
}

impl Challenges {
    pub fn new(keys: Pseudonymizer, redis_timeout: Duration) -> Self {
        Self {
            keys,
            random: SystemRandom::new(),
            // Entries outlive their challenge (by the clock skew allowed between replicas): an
            // expired challenge fails anyway.
            redeemed: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(LIFETIME + CLOCK_SKEW)
                .build(),
            redis_timeout,
        }
    }

    pub fn issue(&self, facility: &str, station: &str, now: OffsetDateTime) -> Issued {
        let mut nonce = [0u8; 8];
        self.random
            .fill(&mut nonce)
            .expect("the system's random source works");
        // Whole seconds: what the challenge says is what the answer says.
        let expires = (now + LIFETIME).unix_timestamp();
        let mut challenge = Vec::with_capacity(LEN);
        challenge.push(VERSION);
        challenge.extend_from_slice(&expires.to_be_bytes());
        challenge.extend_from_slice(&nonce);
        let tag = self.tags(facility, station, &challenge).remove(0);
        challenge.extend_from_slice(&tag);
        Issued {
            challenge,
            nonce,
            expires_at: OffsetDateTime::from_unix_timestamp(expires).unwrap_or(now + LIFETIME),
        }
    }

    /// Checks that `challenge` was issued to this station, is unexpired and unused by any other
    /// request than `request` (a hash naming the request and its payload), and marks it used by
    /// it; returns the nonce the chip must have signed.
    pub async fn redeem(
        &self,
        challenge: &[u8],
        facility: &str,
        station: &str,
        request: &str,
        now: OffsetDateTime,
        redis: Option<RedisLink>,
    ) -> Result<Nonce, ChallengeError> {
        if challenge.len() != LEN || challenge[0] != VERSION {
            return Err(ChallengeError::Malformed);
        }
        let (body, tag) = challenge.split_at(LEN - TAG_LEN);
        // Any key of the ring: a challenge issued just before a key rotation still counts.
        if !self
            .tags(facility, station, body)
            .iter()
            .any(|t| same_tag(t, tag))
        {
            return Err(ChallengeError::NotIssuedHere);
        }
        let expires = i64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
        let remaining = expires - now.unix_timestamp();
        if remaining <= 0 {
            return Err(ChallengeError::Expired);
        }
        let tag: [u8; TAG_LEN] = tag.try_into().expect("16 bytes");
        // One atomic claim: of two requests racing with the same challenge, one wins.
        let claim = self
            .redeemed
            .entry(tag)
            .or_insert_with(|| request.to_owned());
        if claim.value() != request {
            return Err(ChallengeError::AlreadyUsed);
        }
        let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0);
        if let Some(redis) = redis
            && !self
                .claim_in_redis(redis, &tag, request, remaining + skew)
                .await
        {
            return Err(ChallengeError::AlreadyUsed);
        }
        Ok(body[9..17].try_into().expect("8 bytes"))
    }

    /// Claims the tag for `request` in Redis; false when another request holds it. An
    /// unreachable Redis counts as a claim: the in-process record still stops replays here.
    async fn claim_in_redis(
        &self,
        mut redis: RedisLink,
        tag: &[u8; TAG_LEN],
        request: &str,
        lifetime_secs: i64,
    ) -> bool {
        let key = format!("bhyt:presence:{}", hex::encode(tag));
        // SET NX GET (Redis 7): sets when absent and answers nil, else answers the holder.
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(request)
            .arg("NX")
            .arg("GET")
            .arg("EX")
            .arg(lifetime_secs);
        let command = set.query_async::<Option<String>>(&mut redis);
        match tokio::time::timeout(self.redis_timeout, command).await {
            Ok(Ok(holder)) => holder.is_none_or(|h| h == request),
            Ok(Err(error)) => {
                tracing::warn!(%error, "redis: presence challenge not recorded there");
                true
            }
            Err(_) => {
                tracing::warn!("redis timed out: presence challenge not recorded there");
                true
            }
        }
    }

    /// The tag under every pseudonym key, current first.
    fn tags(&self, facility: &str, station: &str, body: &[u8]) -> Vec<[u8; TAG_LEN]> {
        let value = format!("{facility}\0{station}\0{}", hex::encode(body));
        self.keys
            .all_hashes(PURPOSE, &value)
            .iter()
            .map(|h| {
                let bytes = hex::decode(h).expect("hex from the pseudonymizer");
                bytes[..TAG_LEN].try_into().expect("a 32-byte hash")
            })
            .collect()
    }
}

/// Equality that takes as long whichever byte differs: a forger learns nothing from timing.
fn same_tag(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges() -> Challenges {
        Challenges::new(Pseudonymizer::new(b"test key"), Duration::from_secs(1))
    }

    #[tokio::test]
    async fn a_challenge_is_redeemed_once_by_its_station_before_it_expires() {
        let c = challenges();
        let now = OffsetDateTime::now_utc();
        let issued = c.issue("01821", "desk-1", now);
        assert_eq!(issued.challenge.len(), LEN);
        assert_eq!(
            c.redeem(&issued.challenge, "01821", "desk-2", "r1", now, None)
                .await,
            Err(ChallengeError::NotIssuedHere)
        );
        assert_eq!(
            c.redeem(
                &issued.challenge,
                "01821",
                "desk-1",
                "r1",
                now + LIFETIME,
                None
            )
            .await,
            Err(ChallengeError::Expired)
        );
        assert_eq!(
            c.redeem(&issued.challenge, "01821", "desk-1", "r1", now, None)
                .await,
            Ok(issued.nonce)
        );
        // The same request again (a retry) may use it; any other request may not.
        assert_eq!(
            c.redeem(&issued.challenge, "01821", "desk-1", "r1", now, None)
                .await,
            Ok(issued.nonce)
        );
        assert_eq!(
            c.redeem(&issued.challenge, "01821", "desk-1", "r2", now, None)
                .await,
            Err(ChallengeError::AlreadyUsed)
        );
    }

    #[tokio::test]
    async fn altered_or_foreign_challenges_are_refused() {
        let c = challenges();
        let now = OffsetDateTime::now_utc();
        let issued = c.issue("01821", "desk-1", now);
        // Each byte matters: the version, the expiry (a later one would extend it), the nonce.
        for i in 0..LEN {
            let mut altered = issued.challenge.clone();
            altered[i] ^= 1;
            assert!(
                c.redeem(&altered, "01821", "desk-1", "r1", now, None)
                    .await
                    .is_err(),
                "byte {i}"
            );
        }
        assert_eq!(
            c.redeem(&issued.challenge[1..], "01821", "desk-1", "r1", now, None)
                .await,
            Err(ChallengeError::Malformed)
        );
        let other_service = Challenges::new(Pseudonymizer::new(b"other key"), LIFETIME);
        assert_eq!(
            other_service
                .redeem(&issued.challenge, "01821", "desk-1", "r1", now, None)
                .await,
            Err(ChallengeError::NotIssuedHere)
        );
    }
}
