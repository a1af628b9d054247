//! The HIS port through real HTTP on loopback: the address check, the token file, refusals
//! without the token, the event stream in order and resumed from `Last-Event-ID`, the pull
//! endpoint resumed with `after`, the bounds on streams and request heads, and shutdown.
//!
//! The client (common/his_client.rs) reads the stream frame by frame as the HIS would. No PC/SC
//! here: events are published straight into the log (the desk
//! loop's own events are shown end to end in desk_flow.rs).

#[path = "common/his_client.rs"]
mod his_client;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyper::StatusCode;
use reader_agent::events::{EventBody, EventLog};
use reader_agent::his::{HisConfig, HisError, HisPort};
use tokio::sync::watch;

use his_client::{Stream, WAIT, bearer, get, json};

/// Log lines of this test binary, to show what the refusals log.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let _ = tracing_subscriber::fmt()
            .with_writer(move || Sink(Arc::clone(&sink)))
            .with_ansi(false)
            .try_init();
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(dir: &tempfile::TempDir) -> HisConfig {
    HisConfig {
        listen: "127.0.0.1:0".into(),
        token_file: dir.path().join("his").join("token"),
        max_streams: 2,
        events_kept: 100,
    }
}

/// A running port: its address, token, event log and stop switch.
struct Port {
    addr: SocketAddr,
    token: String,
    events: EventLog,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(max_streams: usize) -> Port {
    let dir = tempfile::tempdir().unwrap();
    let config = HisConfig {
        max_streams,
        ..config(&dir)
    };
    let port = HisPort::bind(&config).await.expect("the port binds");
    let addr = port.local_addr().unwrap();
    let token = std::fs::read_to_string(&config.token_file)
        .unwrap()
        .trim()
        .to_owned();
    let events = EventLog::starting_at(1, 100);
    let (stop, stopped) = watch::channel(false);
    let served = tokio::spawn(port.serve(events.clone(), stopped));
    Port {
        addr,
        token,
        events,
        stop,
        served,
        _dir: dir,
    }
}

fn card(reader: &str, inserted: bool) -> EventBody {
    if inserted {
        EventBody::CardInserted {
            reader: reader.into(),
            atr: "3B8001".into(),
        }
    } else {
        EventBody::CardRemoved {
            reader: reader.into(),
        }
    }
}

#[tokio::test]
async fn a_non_loopback_address_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0.0.0.0:7788", "192.168.1.20:7788", "[::]:7788"] {
        let config = HisConfig {
            listen: listen.into(),
            ..config(&dir)
        };
        let error = HisPort::bind(&config).await.err().expect("refused");
        assert!(matches!(error, HisError::NotLoopback { .. }), "{error}");
        assert!(error.to_string().contains("loopback"), "{error}");
    }
    // A host name is not taken either: it could resolve anywhere.
    let config = HisConfig {
        listen: "localhost:7788".into(),
        ..config(&dir)
    };
    let error = HisPort::bind(&config).await.err().expect("refused");
    assert!(matches!(error, HisError::Address { .. }), "{error}");
    // Refused before the token file was made.
    assert!(!config.token_file.exists());
    // Loopback is taken (the control that the refusals above are about the address).
    assert!(
        HisPort::bind(&HisConfig {
            listen: "127.0.0.1:0".into(),
            ..config
        })
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn the_token_is_created_once_owner_only_and_a_readable_or_short_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    drop(HisPort::bind(&config).await.unwrap());
    let token = std::fs::read_to_string(&config.token_file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // The second start reads the same token.
    drop(HisPort::bind(&config).await.unwrap());
    assert_eq!(
        std::fs::read_to_string(&config.token_file).unwrap().trim(),
        token
    );
    // A second port from another directory gets another token.
    let other = tempfile::tempdir().unwrap();
    let other_config = self::config(&other);
    drop(HisPort::bind(&other_config).await.unwrap());
    assert_ne!(
        std::fs::read_to_string(&other_config.token_file)
            .unwrap()
            .trim(),
        token
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&config.token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&config.token_file, std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let error = HisPort::bind(&config).await.err().expect("refused");
        assert!(
            matches!(error, HisError::TokenPermissions { .. }),
            "{error}"
        );
        assert!(!error.to_string().contains(token), "{error}");
        std::fs::set_permissions(&config.token_file, std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    std::fs::write(&config.token_file, "short\n").unwrap();
    let error = HisPort::bind(&config).await.err().expect("refused");
    assert!(matches!(error, HisError::TokenUnusable { .. }), "{error}");
}

#[tokio::test]
async fn requests_without_the_token_or_with_a_wrong_one_get_401_and_no_events() {
    let logs = captured_logs();
    let port = start(2).await;
    port.events.publish(card("R", true));
    let wrong = "f".repeat(64);
    // The token with its last character changed.
    let last = if port.token.ends_with('0') { '1' } else { '0' };
    let almost = format!("{}{last}", &port.token[..63]);
    let refused = [
        vec![],
        vec![("authorization", bearer(&wrong))],
        vec![("authorization", bearer(&almost))],
        vec![("authorization", bearer(&port.token[..32]))],
        vec![("authorization", format!("Basic {}", port.token))],
        vec![("authorization", port.token.clone())],
    ];
    for path in ["/v1/health", "/v1/events?after=0", "/v1/events", "/nowhere"] {
        for headers in &refused {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let response = get(port.addr, path, &headers).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body = json(response).await;
            assert_eq!(body["error"], "unauthorized", "{body}");
            assert!(body.get("events").is_none());
        }
    }
    // The right token: the same requests are answered (what makes the refusals above mean
    // something).
    let auth = bearer(&port.token);
    let ok = get(port.addr, "/v1/health", &[("authorization", &auth)]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let health = json(ok).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["newest_seq"], 1);
    let lower = format!("bearer {}", port.token);
    let ok = get(
        port.addr,
        "/v1/events?after=0",
        &[("authorization", &lower)],
    )
    .await;
    assert_eq!(json(ok).await["events"][0]["kind"], "card_inserted");
    let missing = get(port.addr, "/nowhere", &[("authorization", &auth)]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(missing).await["error"], "not_found");

    // Each refusal was logged, without any token.
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("HIS request refused"), "{logs}");
    assert!(logs.contains("wrong") && logs.contains("missing"), "{logs}");
    for secret in [&port.token, &wrong, &almost, &port.token[..32].to_owned()] {
        assert!(
            !logs.contains(secret.as_str()),
            "a token in the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn the_stream_carries_card_and_check_events_in_order_and_resumes_from_last_event_id() {
    let port = start(2).await;
    // Published before the client connects: not sent to a client without Last-Event-ID.
    port.events.publish(card("Before", true));
    let mut stream = Stream::open(port.addr, &port.token, None).await;
    let bodies = [
        card("ACS 00", true),
        EventBody::CheckStarted {
            check: 1,
            key: "qr".into(),
        },
        EventBody::ReadFailed {
            check: 1,
            reason: "removed".into(),
            message: reader_agent::events::Text {
                vi: "thẻ bị nhấc ra".into(),
                en: "the card was removed".into(),
            },
        },
        card("ACS 00", false),
    ];
    let mut seqs = Vec::new();
    for body in bodies.iter().cloned() {
        seqs.push(port.events.publish(body));
    }
    let mut got = Vec::new();
    for _ in &bodies {
        got.push(stream.next().await.expect("an event"));
    }
    let kinds: Vec<&str> = got.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "card_inserted",
            "check_started",
            "read_failed",
            "card_removed"
        ]
    );
    for (message, seq) in got.iter().zip(&seqs) {
        assert_eq!(message.id, *seq);
        assert_eq!(message.data["seq"], *seq);
        assert_eq!(message.data["kind"], message.event);
        assert_eq!(message.data["v"], 1);
    }
    assert_eq!(got[0].data["reader"], "ACS 00");
    assert_eq!(got[2].data["reason"], "removed");
    assert_eq!(got[2].data["message"]["vi"], "thẻ bị nhấc ra");

    // A client that saw the second event comes back: the third and fourth, then live ones.
    drop(stream);
    let mut resumed = Stream::open(port.addr, &port.token, Some(seqs[1])).await;
    assert_eq!(resumed.next().await.unwrap().id, seqs[2]);
    assert_eq!(resumed.next().await.unwrap().id, seqs[3]);
    let live = port.events.publish(card("ACS 00", true));
    assert_eq!(resumed.next().await.unwrap().id, live);

    // A Last-Event-ID that is not a seq is refused.
    let auth = bearer(&port.token);
    let bad = get(
        port.addr,
        "/v1/events",
        &[("authorization", &auth), ("last-event-id", "yesterday")],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(bad).await["error"], "bad_last_event_id");
}

#[tokio::test]
async fn pull_pages_with_after_and_limit() {
    let port = start(2).await;
    let seqs: Vec<u64> = (0..5)
        .map(|n| port.events.publish(card(&format!("R{n}"), true)))
        .collect();
    let auth = bearer(&port.token);
    let page = |query: String| {
        let auth = auth.clone();
        let addr = port.addr;
        async move {
            let response = get(addr, &query, &[("authorization", &auth)]).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            json(response).await
        }
    };
    let first = page("/v1/events?after=0&limit=2".into()).await;
    let ids: Vec<u64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, seqs[..2]);
    assert_eq!(first["next_after"], seqs[1]);
    let rest = page(format!("/v1/events?after={}", first["next_after"])).await;
    let ids: Vec<u64> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, seqs[2..]);
    assert_eq!(rest["events"][2]["reader"], "R4");
    // Caught up: nothing, and the position stays.
    let none = page(format!("/v1/events?after={}", seqs[4])).await;
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    assert_eq!(none["next_after"], seqs[4]);
    // A limit of 0 still returns one event; a huge one is capped.
    let one = page("/v1/events?after=0&limit=0".into()).await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    // Not numbers: 400 with a JSON error.
    for query in [
        "/v1/events?after=abc",
        "/v1/events?after=-1",
        "/v1/events?limit=x",
    ] {
        let response = get(port.addr, query, &[("authorization", &auth)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(json(response).await["error"], "bad_query");
    }
}

#[tokio::test]
async fn streams_are_bounded_and_request_heads_too() {
    let port = start(1).await;
    let first = Stream::open(port.addr, &port.token, None).await;
    let auth = bearer(&port.token);
    let second = get(port.addr, "/v1/events", &[("authorization", &auth)]).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(second).await["error"], "too_many_streams");
    // Pulls are not streams: still answered.
    let pull = get(port.addr, "/v1/events?after=0", &[("authorization", &auth)]).await;
    assert_eq!(pull.status(), StatusCode::OK);
    // The first stream closed: its place is free again (the server notices the closed
    // connection, so retry for a bounded time).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let again = get(port.addr, "/v1/events", &[("authorization", &auth)]).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A request head beyond the bound (64 KiB of header, with the right token, so it would be
    // answered 200 without the bound) is refused without reaching the handlers.
    let mut raw = tokio::net::TcpStream::connect(port.addr).await.unwrap();
    let head = format!(
        "GET /v1/health HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\nx-filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = raw.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "an oversized head was served: {answer}"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_the_server() {
    let port = start(2).await;
    let mut stream = Stream::open(port.addr, &port.token, None).await;
    let seq = port.events.publish(card("R", true));
    assert_eq!(stream.next().await.unwrap().id, seq);
    port.stop.send(true).unwrap();
    // The stream ends rather than hanging on keep-alives.
    assert!(stream.next().await.is_none());
    tokio::time::timeout(WAIT, port.served)
        .await
        .expect("the server stops in time")
        .unwrap();
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(port.addr).await.is_err());
    let _ = std::io::stderr().flush();
}
