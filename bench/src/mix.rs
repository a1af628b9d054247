//! The citizens a run asks about, and the requests it sends for them.
//!
//! A desk's traffic is skewed: regulars and people checked twice in a visit (hot), everyone else
//! once in a long while (cold), a few people with no card (not found) and a few typing slips
//! (invalid). The people come from the same deterministic generator that seeds the registry, so
//! a driver samples them while seeding and hands the sample to the load generator as a file.

use std::path::Path;

use bhyt_proto::v1::{
    CheckCoverageRequest, Date, IdentityEvidence, IdentityMethod, Operator, check_coverage_request,
};
use bhyt_verify::registry::generate::{SyntheticCard, unregistered_citizen_ids};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// One person as the desk would ask about them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Person {
    /// A 12-digit citizen ID, or a card number for the few (children) who have none.
    pub citizen_id: Option<String>,
    pub card_number: String,
    pub full_name: String,
    /// Year, month (0 = unknown), day (0 = unknown).
    pub birth: [u32; 3],
}

impl Person {
    fn from_card(card: &SyntheticCard) -> Self {
        let r = &card.record;
        Self {
            citizen_id: r.citizen_id.clone(),
            card_number: r.card_number.clone(),
            full_name: r.full_name.clone(),
            birth: [
                r.birth.year.into(),
                r.birth.month.map_or(0, u32::from),
                r.birth.day.map_or(0, u32::from),
            ],
        }
    }
}

/// What share of requests goes to each group.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Weights {
    pub hot: u32,
    pub cold: u32,
    pub not_found: u32,
    pub invalid: u32,
}

impl Weights {
    /// `hot`, `cold`, `realistic` (75% hot, 17% cold, 5% not found, 3% invalid), or four numbers
    /// `hot:cold:not_found:invalid`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let w = |hot, cold, not_found, invalid| Self {
            hot,
            cold,
            not_found,
            invalid,
        };
        match text {
            "hot" => Ok(w(1, 0, 0, 0)),
            "cold" => Ok(w(0, 1, 0, 0)),
            "realistic" => Ok(w(75, 17, 5, 3)),
            _ => {
                let n: Vec<u32> = text
                    .split(':')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("weights {text:?}: hot, cold, realistic or h:c:n:i"))?;
                match n[..] {
                    [h, c, nf, i] if h + c + nf + i > 0 => Ok(w(h, c, nf, i)),
                    _ => Err(format!("weights {text:?}: four numbers, not all zero")),
                }
            }
        }
    }
}

/// The sample of people a run draws from.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Population {
    pub hot: Vec<Person>,
    pub cold: Vec<Person>,
    pub not_found: Vec<Person>,
}

impl Population {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec(self)?)?;
        Ok(())
    }
}

/// Takes a sample while the registry is seeded: the first `hot` people, then every k-th person
/// so the cold set spreads over the whole registry (and its whole index).
pub struct Sampler {
    hot: usize,
    every: u64,
    seen: u64,
    seed: u64,
    population: Population,
}

impl Sampler {
    pub fn new(seed: u64, people: u64, hot: usize, cold: usize) -> Self {
        Self {
            hot,
            every: (people / cold.max(1) as u64).max(1),
            seen: 0,
            seed,
            population: Population::default(),
        }
    }

    pub fn observe(&mut self, card: &SyntheticCard) {
        self.seen += 1;
        if self.population.hot.len() < self.hot {
            self.population.hot.push(Person::from_card(card));
        } else if self.seen.is_multiple_of(self.every) {
            self.population.cold.push(Person::from_card(card));
        }
    }

    /// The sample, with `not_found` well-formed IDs the registry does not hold.
    pub fn finish(mut self, not_found: usize) -> Population {
        self.population.not_found = unregistered_citizen_ids(self.seed)
            .take(not_found)
            .map(|id| Person {
                citizen_id: Some(id.as_str().to_owned()),
                card_number: String::new(),
                full_name: "Nguyễn Thị Hoà".into(),
                birth: [id.birth_year().into(), 0, 0],
            })
            .collect();
        self.population
    }
}

/// Draws requests from a population with given weights.
pub struct Mix {
    population: Population,
    weights: Weights,
    total: u32,
}

/// Malformed requests a desk sends by mistake: each is refused with INVALID_ARGUMENT.
const INVALID: [(&str, &str); 4] = [
    // No such province code of birth registration.
    ("003099012345", "Nguyễn Văn An"),
    // Eleven digits.
    ("00109901234", "Nguyễn Văn An"),
    // A letter.
    ("00109901234O", "Nguyễn Văn An"),
    // No name.
    ("001099012345", ""),
];

impl Mix {
    pub fn new(population: Population, weights: Weights) -> anyhow::Result<Self> {
        let empty = |w: u32, v: &Vec<Person>, what| {
            if w > 0 && v.is_empty() {
                anyhow::bail!("the mix asks for {what} people and the sample has none")
            }
            Ok(())
        };
        empty(weights.hot, &population.hot, "hot")?;
        empty(weights.cold, &population.cold, "cold")?;
        empty(weights.not_found, &population.not_found, "not-found")?;
        Ok(Self {
            total: weights.hot + weights.cold + weights.not_found + weights.invalid,
            population,
            weights,
        })
    }

    /// The hot people, for priming the cache before a cached run.
    pub fn hot(&self) -> &[Person] {
        &self.population.hot
    }

    /// A request for a person drawn at random; `id` makes its request id unique.
    pub fn draw(&self, rng: &mut impl Rng, id: &str) -> CheckCoverageRequest {
        let mut pick = rng.random_range(0..self.total);
        let groups = [
            (self.weights.hot, &self.population.hot),
            (self.weights.cold, &self.population.cold),
            (self.weights.not_found, &self.population.not_found),
        ];
        for (weight, people) in groups {
            if pick < weight {
                let person = &people[rng.random_range(0..people.len())];
                return request(person, id, rng.random_range(0..200));
            }
            pick -= weight;
        }
        let (citizen_id, name) = INVALID[rng.random_range(0..INVALID.len())];
        let person = Person {
            citizen_id: Some(citizen_id.into()),
            card_number: String::new(),
            full_name: name.into(),
            birth: [1999, 0, 0],
        };
        request(&person, id, rng.random_range(0..200))
    }
}

/// The hospital every request of the mix is for.
pub const FACILITY: &str = "01821";

/// The request a desk sends for `person`, typed in at one of 200 stations of one hospital.
pub fn request(person: &Person, request_id: &str, station: u32) -> CheckCoverageRequest {
    let subject = match &person.citizen_id {
        Some(id) => check_coverage_request::Subject::CitizenId(id.clone()),
        None => check_coverage_request::Subject::CardNumber(person.card_number.clone()),
    };
    CheckCoverageRequest {
        request_id: request_id.into(),
        subject: Some(subject),
        full_name: person.full_name.clone(),
        date_of_birth: Some(Date {
            year: person.birth[0],
            month: person.birth[1],
            day: person.birth[2],
        }),
        operator: Some(Operator {
            full_name: "Lê Thị Thu".into(),
            citizen_id: "079185000123".into(),
        }),
        facility_code: FACILITY.into(),
        station_id: format!("desk-{station}"),
        evidence: Some(IdentityEvidence {
            method: IdentityMethod::Chip as i32,
            passive_authentication: true,
            chip_authentication: true,
            ..Default::default()
        }),
        presence_proof: None,
    }
}
