//! `gateway-sim`: the national gateway's card-check protocol (src/source/gateway/wire.rs)
//! served from a synthetic registry, with faults injected by flags or at run time, for tests,
//! the demo and benchmarks.
//!
//! The answers come from the same registry code and the same judge as the backend's embedded
//! source, so the simulator and the registry agree on who is covered and what each card's
//! code is. Run it on port 0: the first line on stdout names the bound addresses,
//! `gateway http://ADDR control http://ADDR`. It stops by itself when its standard input
//! closes (its parent died or closed the pipe), or on Ctrl-C.
//!
//! The control endpoint (a listener of its own, so it keeps answering during an outage):
//! `GET /control` shows the faults and the counters (log-ins, card checks); `POST /control`
//! with JSON changes any of `latency_ms`, `error_rate`, `fail_next`, `fail_next_logins`,
//! `fail_code` (empty: HTTP 500), `unknown_code` (empty: off), `raw_answer` (a body sent
//! verbatim; empty: off), `outage` (`none`, `drop`, `hang`), `token_ttl_secs`, and
//! `expire_tokens: true` invalidates every token issued so far.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::{Form, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bhyt_verify::card_number::CardNumber;
use bhyt_verify::coverage::{self, CardRecord, Claim, Subject};
use bhyt_verify::db::{self, Schema};
use bhyt_verify::messages;
use bhyt_verify::names::{self, NameMatch};
use bhyt_verify::registry::Registry;
use bhyt_verify::registry::generate::{self, Generator};
use bhyt_verify::source::gateway::wire::{self, ApiKey, CheckAnswer, LoginAnswer};
use clap::Parser;
use emrtd::cccd::id_number::CitizenId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "The national gateway's card check, simulated, with injectable faults")]
struct Args {
    /// The registry to answer from (`sqlite://…` or `postgres://…`), e.g. the backend's own.
    #[arg(long, conflicts_with = "generate")]
    registry: Option<String>,
    /// Instead: a fresh registry of this many synthetic people (in a temporary directory).
    #[arg(long)]
    generate: Option<usize>,
    /// Seed of the synthetic people and of the error-rate draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0")]
    control_listen: SocketAddr,
    /// Facility accounts, `USERNAME:PASSWORD` (repeatable).
    #[arg(long = "account", default_value = "bv01821:sim-password")]
    accounts: Vec<String>,
    /// Staff registered by the facilities, `CCCD=Full Name` (repeatable); none: any staff
    /// member with a well-formed CCCD is accepted.
    #[arg(long = "staff")]
    staff: Vec<String>,
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Faults from the start (the control endpoint changes them later).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long)]
    unknown_code: Option<String>,
    #[arg(long, value_enum, default_value = "none")]
    outage: Outage,
}

/// A full outage as a client sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Outage {
    #[default]
    None,
    /// Every call's connection is dropped before an answer is complete.
    Drop,
    /// Every call is accepted and never answered.
    Hang,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Faults {
    /// Added before every card check's answer.
    latency_ms: u64,
    /// Share of card checks answered HTTP 500 with code 500 (0.0-1.0).
    error_rate: f64,
    /// The next this many card checks are answered HTTP 500, whatever the rate.
    fail_next: u32,
    /// The next this many log-ins fail the same way.
    fail_next_logins: u32,
    /// How failures are answered: this code with HTTP 200 (e.g. "101", "500"); none: HTTP 500
    /// with code 500.
    fail_code: Option<String>,
    /// Every card check is answered with this code and nothing else.
    unknown_code: Option<String>,
    /// Every card check is answered HTTP 200 with this body, verbatim (bad answers).
    raw_answer: Option<String>,
    outage: Outage,
    token_ttl_secs: u64,
}

/// A change of faults; absent fields stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultChange {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    fail_next: Option<u32>,
    fail_next_logins: Option<u32>,
    fail_code: Option<String>,
    unknown_code: Option<String>,
    raw_answer: Option<String>,
    outage: Option<Outage>,
    token_ttl_secs: Option<u64>,
    #[serde(default)]
    expire_tokens: bool,
}

#[derive(Serialize)]
struct Status {
    faults: Faults,
    logins: u64,
    checks: u64,
}

struct Sim {
    registry: Registry,
    accounts: HashMap<String, String>,
    staff: HashMap<String, String>,
    faults: Mutex<Faults>,
    /// Access token -> when it expires.
    tokens: Mutex<HashMap<String, Instant>>,
    rng: Mutex<ChaCha8Rng>,
    logins: AtomicU64,
    checks: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _temp;
    let url = match (&args.registry, args.generate) {
        (Some(url), _) => url.clone(),
        (None, count) => {
            let dir = tempfile::tempdir().context("temporary directory")?;
            let url = format!("sqlite://{}/registry.sqlite", dir.path().display());
            _temp = dir;
            let pool = db::connect(&url, 2, Schema::Registry).await?;
            let today = coverage::vietnam_date(OffsetDateTime::now_utc());
            let people = Generator::new(args.seed, today).take(count.unwrap_or(20_000));
            generate::insert(&pool, people).await?;
            pool.close().await;
            url
        }
    };
    let pool = db::connect(&url, 4, Schema::Registry)
        .await
        .context("opening the registry")?;
    let pair = |text: &str, sep: char| {
        text.split_once(sep)
            .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
    };
    let accounts = args
        .accounts
        .iter()
        .map(|a| pair(a, ':').context("--account takes USERNAME:PASSWORD"))
        .collect::<anyhow::Result<_>>()?;
    let staff = args
        .staff
        .iter()
        .map(|s| pair(s, '=').context("--staff takes CCCD=Full Name"))
        .collect::<anyhow::Result<_>>()?;
    let sim = Arc::new(Sim {
        registry: Registry::new(pool),
        accounts,
        staff,
        faults: Mutex::new(Faults {
            latency_ms: args.latency_ms,
            error_rate: args.error_rate,
            fail_next: 0,
            fail_next_logins: 0,
            fail_code: None,
            unknown_code: args.unknown_code,
            raw_answer: None,
            outage: args.outage,
            token_ttl_secs: args.token_ttl_secs,
        }),
        tokens: Mutex::default(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(args.seed)),
        logins: AtomicU64::new(0),
        checks: AtomicU64::new(0),
    });

    let gateway = axum::Router::new()
        .route(wire::LOGIN_PATH, post(log_in))
        .route(wire::CHECK_PATH, post(check))
        .layer(middleware::from_fn_with_state(sim.clone(), outage))
        .with_state(sim.clone());
    let control = axum::Router::new()
        .route("/control", get(status).post(change))
        .with_state(sim);
    let gateway_listener = TcpListener::bind(args.listen).await?;
    let control_listener = TcpListener::bind(args.control_listen).await?;
    println!(
        "gateway http://{} control http://{}",
        gateway_listener.local_addr()?,
        control_listener.local_addr()?
    );

    // Stop with the parent: its end of our standard input closes when it exits.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    });
    tokio::select! {
        result = axum::serve(gateway_listener, gateway).into_future() => result?,
        result = axum::serve(control_listener, control).into_future() => result?,
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// Full outages, before any handler runs.
async fn outage(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    let outage = sim.faults.lock().expect("faults").outage;
    match outage {
        Outage::None => next.run(request).await,
        Outage::Hang => std::future::pending().await,
        Outage::Drop => {
            // A body that fails at once: the server aborts the connection mid-answer.
            let failing = futures::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::other("simulated outage"))
            });
            Response::new(axum::body::Body::from_stream(failing))
        }
    }
}

async fn log_in(
    State(sim): State<Arc<Sim>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    sim.logins.fetch_add(1, Ordering::Relaxed);
    let failure = {
        let mut faults = sim.faults.lock().expect("faults");
        (faults.fail_next_logins > 0).then(|| {
            faults.fail_next_logins -= 1;
            faults.fail_code.clone()
        })
    };
    if let Some(code) = failure {
        return failed(code).into_response();
    }
    let username = form.get("username").map(String::as_str).unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    if username.is_empty() || sim.accounts.get(username).map(String::as_str) != Some(password) {
        let answer = LoginAnswer {
            code: "401".into(),
            api_key: None,
        };
        return (StatusCode::UNAUTHORIZED, Json(answer)).into_response();
    }
    let ttl = sim.faults.lock().expect("faults").token_ttl_secs;
    let token = random_token(&sim);
    sim.tokens
        .lock()
        .expect("tokens")
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    let answer = LoginAnswer {
        code: wire::LOGIN_OK.into(),
        api_key: Some(ApiKey {
            access_token: token,
            id_token: random_token(&sim),
            expires_in: ttl,
        }),
    };
    Json(answer).into_response()
}

fn random_token(sim: &Sim) -> String {
    let bytes: [u8; 24] = sim.rng.lock().expect("rng").random();
    hex::encode(bytes)
}

/// A failure as configured: HTTP 200 with the gateway's code, or HTTP 500 with code 500.
fn failed(code: Option<String>) -> (StatusCode, Json<CheckAnswer>) {
    match code {
        Some(code) => (StatusCode::OK, Json(code_only(&code))),
        None => (StatusCode::INTERNAL_SERVER_ERROR, Json(code_only("500"))),
    }
}

fn code_only(code: &str) -> CheckAnswer {
    CheckAnswer {
        ma_ket_qua: code.into(),
        ..Default::default()
    }
}

async fn check(
    State(sim): State<Arc<Sim>>,
    Query(params): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    sim.checks.fetch_add(1, Ordering::Relaxed);
    let faults = sim.faults.lock().expect("faults").clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let fail = {
        let mut current = sim.faults.lock().expect("faults");
        if current.fail_next > 0 {
            current.fail_next -= 1;
            true
        } else {
            faults.error_rate > 0.0
                && sim
                    .rng
                    .lock()
                    .expect("rng")
                    .random_bool(faults.error_rate.clamp(0.0, 1.0))
        }
    };
    if fail {
        return failed(faults.fail_code).into_response();
    }
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let valid = sim
        .tokens
        .lock()
        .expect("tokens")
        .get(token)
        .is_some_and(|expires| Instant::now() < *expires);
    if !valid {
        return (StatusCode::UNAUTHORIZED, Json(code_only("401"))).into_response();
    }
    if let Some(body) = faults.raw_answer {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    if let Some(code) = faults.unknown_code.filter(|c| !c.is_empty()) {
        return Json(code_only(&code)).into_response();
    }
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    Json(
        sim.answer(
            field("maThe"),
            field("hoTen"),
            field("ngaySinh"),
            field("hoTenCb"),
            field("cccdCb"),
        )
        .await,
    )
    .into_response()
}

impl Sim {
    /// The card check proper: the registry's card judged against what was sent, in the order
    /// the gateway reports problems (parameters, staff, card, identity, state).
    async fn answer(
        &self,
        number: &str,
        name: &str,
        birth: &str,
        staff_name: &str,
        staff_id: &str,
    ) -> CheckAnswer {
        let (Some(birth), false) = (wire::parse_birth(birth), name.is_empty()) else {
            return code_only("205");
        };
        if staff_name.is_empty() || CitizenId::parse(staff_id).is_err() {
            return code_only("054");
        }
        if !self.staff.is_empty() {
            match self.staff.get(staff_id) {
                None => return code_only("054"),
                Some(known) if names::compare(staff_name, known) != NameMatch::Same => {
                    return code_only("055");
                }
                Some(_) => {}
            }
        }
        let subject = if number.len() == 12 {
            CitizenId::parse(number).ok().map(Subject::Citizen)
        } else {
            CardNumber::parse(number).ok().map(Subject::Card)
        };
        let Some(subject) = subject else {
            return code_only("051");
        };
        let card = match self.registry.lookup(&subject).await {
            Ok(card) => card,
            Err(_) => return code_only("101"),
        };
        let claim = Claim {
            full_name: name.to_owned(),
            birth,
            facility_code: String::new(),
        };
        let today = coverage::vietnam_date(OffsetDateTime::now_utc());
        let verdict = coverage::judge(card.as_ref(), &claim, today);
        // Not yet valid has no code of its own: the card's information is correct, and its
        // dates say the rest.
        let code = match verdict.source_code {
            "" => "000",
            code => code,
        };
        let (note, _) = messages::for_result(verdict.result);
        let mut answer = match (card, code) {
            (Some(card), "000" | "001" | "002" | "003" | "004" | "010" | "110") => {
                card_fields(&card)
            }
            (Some(card), code) if code.starts_with("12") => card_fields(&card),
            _ => CheckAnswer::default(),
        };
        answer.ma_ket_qua = code.into();
        answer.ghi_chu = Some(note.into());
        answer
    }
}

fn card_fields(card: &CardRecord) -> CheckAnswer {
    let new = card.replaced_by.as_ref();
    CheckAnswer {
        ma_the: Some(card.card_number.clone()),
        ho_ten: Some(card.full_name.clone()),
        ngay_sinh: Some(wire::format_birth(card.birth)),
        ma_dkbd: Some(card.primary_care_facility.clone()),
        cq_bhxh: Some(card.issuing_office.clone()),
        gt_the_tu: Some(wire::format_date(card.valid_from)),
        gt_the_den: Some(wire::format_date(card.valid_to)),
        ma_kv: Some(card.area_code.clone().unwrap_or_default()),
        ngay_du_5_nam: card.five_year_date.map(wire::format_date),
        ma_so_bhxh: Some(card.social_insurance_number.clone()),
        ma_the_moi: new.map(|n| n.card_number.clone()),
        gt_the_tu_moi: new.map(|n| wire::format_date(n.valid_from)),
        gt_the_den_moi: new.map(|n| wire::format_date(n.valid_to)),
        ..Default::default()
    }
}

async fn status(State(sim): State<Arc<Sim>>) -> Json<Status> {
    Json(Status {
        faults: sim.faults.lock().expect("faults").clone(),
        logins: sim.logins.load(Ordering::Relaxed),
        checks: sim.checks.load(Ordering::Relaxed),
    })
}

async fn change(State(sim): State<Arc<Sim>>, Json(change): Json<FaultChange>) -> Json<Status> {
    {
        let mut faults = sim.faults.lock().expect("faults");
        if let Some(v) = change.latency_ms {
            faults.latency_ms = v;
        }
        if let Some(v) = change.error_rate {
            faults.error_rate = v.clamp(0.0, 1.0);
        }
        if let Some(v) = change.fail_next {
            faults.fail_next = v;
        }
        if let Some(v) = change.fail_next_logins {
            faults.fail_next_logins = v;
        }
        if let Some(v) = change.fail_code {
            faults.fail_code = Some(v).filter(|c| !c.is_empty());
        }
        if let Some(v) = change.unknown_code {
            faults.unknown_code = Some(v).filter(|c| !c.is_empty());
        }
        if let Some(v) = change.raw_answer {
            faults.raw_answer = Some(v).filter(|a| !a.is_empty());
        }
        if let Some(v) = change.outage {
            faults.outage = v;
        }
        if let Some(v) = change.token_ttl_secs {
            faults.token_ttl_secs = v;
        }
    }
    if change.expire_tokens {
        sim.tokens.lock().expect("tokens").clear();
    }
    status(State(sim)).await
}
