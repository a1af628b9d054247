//! The HIS port: the desk's events for the clinic's own information system, over HTTP on a
//! loopback address, behind a bearer token.
//!
//! The events name the patient, so the port is refused at start on anything but a loopback
//! address, and every request must present the token, which the agent creates at first start in
//! a file only its own user can read. Endpoints:
//!
//! - `GET /v1/events`: Server-Sent Events (`id:` the seq, `event:` the kind, `data:` the JSON),
//!   from the event after `Last-Event-ID` when given, otherwise from the next one; a comment
//!   line every 15 s keeps idle connections open;
//! - `GET /v1/events?after=SEQ&limit=N`: the events after SEQ as one JSON document;
//! - `GET /v1/health`.
//!
//! Bounds: connections and event streams are counted (a semaphore each), request heads are
//! limited by hyper's read buffer, and no body is ever read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::events::{self, Event, EventLog};
use crate::secret_file::{SecretFileError, create_secret, read_secret};

/// The `[his]` section of agent.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HisConfig {
    /// A loopback address and port (default `127.0.0.1:7788`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The bearer token's file: created at first start (0600 on Unix), read afterwards.
    pub token_file: PathBuf,
    /// Event streams served at once (default 8); one more is refused with 503.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// Events kept for clients resuming after a disconnection (default 1000).
    #[serde(default = "default_events_kept")]
    pub events_kept: usize,
}

fn default_listen() -> String {
    "127.0.0.1:7788".into()
}

fn default_max_streams() -> usize {
    8
}

fn default_events_kept() -> usize {
    events::DEFAULT_CAPACITY
}

/// Connections open at once, streams included; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 32;
/// hyper's read buffer, which bounds a request's line and headers (hyper's least is 8 KiB).
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// A client must send its request head within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Comment lines on idle streams, so proxies and clients see the connection alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Pull: events per response unless `limit` says fewer, and never more than this.
const DEFAULT_PULL: usize = 100;
const MAX_PULL: usize = 1000;
/// How long open connections get to finish when the agent stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Why the HIS port cannot start. Messages name the setting to fix, never the token.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HisError {
    #[error("his.listen = {listen:?} is not an address and port such as 127.0.0.1:7788: {reason}")]
    Address { listen: String, reason: String },
    #[error(
        "his.listen = {listen:?} is not a loopback address: the HIS port hands out patients' \
         identities, so it listens on 127.0.0.1 or ::1 only"
    )]
    NotLoopback { listen: String },
    #[error("his.token_file {path}: {source}")]
    Token { path: String, source: io::Error },
    #[error("his.token_file {path} holds no usable token (at least 32 visible ASCII characters)")]
    TokenUnusable { path: String },
    #[error(
        "his.token_file {path} can be read by other users (mode {mode:o}): restrict it to the \
         agent's user (chmod 600)"
    )]
    TokenPermissions { path: String, mode: u32 },
    #[error("cannot listen on {listen}: {source}")]
    Bind { listen: String, source: io::Error },
}

/// The bearer token. Debug shows nothing.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads the token from `path`, or creates it there (`secret_file`): 32 random bytes in
    /// hex, readable by this user only.
    pub fn load_or_create(path: &Path) -> Result<Token, HisError> {
        let shown = || path.display().to_string();
        let refused = |e| match e {
            SecretFileError::Readable { mode } => HisError::TokenPermissions {
                path: shown(),
                mode,
            },
            SecretFileError::Io(source) => HisError::Token {
                path: shown(),
                source,
            },
        };
        let bytes = match read_secret(path).map_err(refused)? {
            Some(bytes) => bytes,
            None => {
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(|e| {
                    refused(io::Error::other(format!("random generator: {e}")).into())
                })?;
                let token = format!("{}\n", hex::encode(random));
                let bytes = create_secret(path, token.as_bytes()).map_err(refused)?;
                tracing::info!(path = %path.display(), "created the HIS token file");
                bytes
            }
        };
        let token = std::str::from_utf8(&bytes).unwrap_or_default().trim();
        if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HisError::TokenUnusable { path: shown() });
        }
        Ok(Token(token.to_owned()))
    }

    /// Whether `presented` is the token, compared in constant time.
    fn matches(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

/// The port, bound and with its token, ready to serve.
pub struct HisPort {
    listener: TcpListener,
    token: Token,
    max_streams: usize,
    /// Where keys the HIS submits go (`POST /v1/checks`); `None`: the endpoint answers 404.
    keys: Option<mpsc::Sender<String>>,
}

impl HisPort {
    /// Checks the address is loopback, loads or creates the token, binds.
    pub async fn bind(config: &HisConfig) -> Result<HisPort, HisError> {
        let address: SocketAddr = config.listen.parse().map_err(|e| HisError::Address {
            listen: config.listen.clone(),
            reason: format!("{e}"),
        })?;
        if !address.ip().is_loopback() {
            return Err(HisError::NotLoopback {
                listen: config.listen.clone(),
            });
        }
        let token = Token::load_or_create(&config.token_file)?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HisError::Bind {
                listen: config.listen.clone(),
                source,
            })?;
        Ok(HisPort {
            listener,
            token,
            max_streams: config.max_streams.max(1),
            keys: None,
        })
    }

    /// Accepts desk keys from the HIS (`POST /v1/checks`) and hands them to `keys`: the desk's
    /// input when no one types at the PC (the agent running as a service).
    pub fn with_keys(mut self, keys: mpsc::Sender<String>) -> HisPort {
        self.keys = Some(keys);
        self
    }

    /// The bound address (the port chosen when the configuration says 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `events` until `shutdown` turns true (or its sender is dropped): then streams end,
    /// open connections get [`DRAIN`] to finish, and the rest are dropped.
    pub async fn serve(self, events: EventLog, shutdown: watch::Receiver<bool>) {
        let shared = Arc::new(Shared {
            token: self.token,
            events,
            streams: Arc::new(Semaphore::new(self.max_streams)),
            shutdown: shutdown.clone(),
            keys: self.keys,
        });
        let app = router(shared);
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = JoinSet::new();
        let mut stop = shutdown;
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = stopped(&mut stop) => break,
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = stopped(&mut stop) => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "HIS port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = TowerToHyperService::new(app.clone());
            let mut stop = stop.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .max_buf_size(MAX_REQUEST_HEAD)
                    .header_read_timeout(HEAD_TIMEOUT);
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stopped(&mut stop) => {
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(DRAIN, connection).await;
                    }
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        let drained =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
        }
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

struct Shared {
    token: Token,
    events: EventLog,
    streams: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    keys: Option<mpsc::Sender<String>>,
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/v1/health", get(health))
        .route("/v1/events", get(events_endpoint))
        .route(
            "/v1/checks",
            post(submit_key).layer(DefaultBodyLimit::max(MAX_KEY_BODY)),
        )
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: /v1/events, /v1/checks or /v1/health",
            )
        })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            require_token,
        ))
        .with_state(shared)
}

/// The largest `POST /v1/checks` body: a key is at most three MRZ lines or one QR text.
const MAX_KEY_BODY: usize = 4096;

/// `POST /v1/checks` `{"key": "..."}`: a desk key as the QR scanner or the receptionist would
/// give it, queued for the desk (202). The key is checked where typed keys are: a malformed one
/// is published as `input_rejected`. 503 when the desk already has keys waiting.
async fn submit_key(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<SubmittedKey>, JsonRejection>,
) -> Response {
    let Some(keys) = &shared.keys else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this desk takes no keys from the HIS",
        );
    };
    let Ok(Json(SubmittedKey { key })) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a JSON body {\"key\": \"...\"} of at most 4096 bytes",
        );
    };
    match keys.try_send(key) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the desk has keys waiting; try again when its check is done",
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmittedKey {
    key: String,
}

/// A JSON error: `{"error": code, "message": text}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let refused = match presented {
        Some(token) if shared.token.matches(token) => return next.run(request).await,
        Some(_) => "wrong",
        None => "missing",
    };
    // Neither the token presented nor the query: the path and why.
    tracing::warn!(path = ?request.uri().path(), token = refused, "HIS request refused");
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send the agent's HIS token as 'Authorization: Bearer <token>'",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "v": events::VERSION,
        "newest_seq": shared.events.newest(),
    }))
}

#[derive(Deserialize)]
struct Pull {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `after` or `limit` in the query: one JSON page; otherwise the stream.
async fn events_endpoint(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<Pull>, QueryRejection>,
) -> Response {
    let Ok(Query(pull)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "after and limit are whole numbers",
        );
    };
    if pull.after.is_some() || pull.limit.is_some() {
        let after = pull.after.unwrap_or(0);
        let limit = pull.limit.unwrap_or(DEFAULT_PULL).clamp(1, MAX_PULL);
        let page = shared.events.after(after, limit);
        let next_after = page.last().map_or(after, |e| e.seq);
        let events: Vec<&Event> = page.iter().map(Arc::as_ref).collect();
        return Json(json!({ "events": events, "next_after": next_after })).into_response();
    }
    let after = match headers.get("last-event-id") {
        None => shared.events.newest(),
        Some(value) => match value.to_str().ok().and_then(|v| v.trim().parse().ok()) {
            Some(seq) => seq,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_last_event_id",
                    "Last-Event-ID is an event's seq",
                );
            }
        },
    };
    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "the agent serves a limited number of event streams; close another one",
        );
    };
    let follow = Follow {
        events: shared.events.clone(),
        newest: shared.events.subscribe(),
        shutdown: shared.shutdown.clone(),
        after,
        pending: VecDeque::new(),
        _permit: permit,
    };
    Sse::new(futures::stream::unfold(follow, Follow::next))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response()
}

/// One client's position in the event stream.
struct Follow {
    events: EventLog,
    newest: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    after: u64,
    pending: VecDeque<Arc<Event>>,
    /// Counts this stream against `max_streams` until it ends.
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    /// The next event, waiting for one; `None` (the stream ends) once the agent stops and the
    /// events published before are sent.
    async fn next(mut self) -> Option<(Result<sse::Event, Infallible>, Follow)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                let data = serde_json::to_string(event.as_ref()).unwrap_or_default();
                let sse = sse::Event::default()
                    .id(event.seq.to_string())
                    .event(event.body.kind())
                    .data(data);
                return Some((Ok(sse), self));
            }
            // Mark the newest seen before reading, so a publication in between wakes us.
            self.newest.borrow_and_update();
            let batch = self.events.after(self.after, DEFAULT_PULL);
            if let Some(last) = batch.last() {
                self.after = last.seq;
                self.pending.extend(batch);
                continue;
            }
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                changed = self.newest.changed() => if changed.is_err() { return None },
                () = stopped(&mut self.shutdown) => {}
            }
        }
    }
}
