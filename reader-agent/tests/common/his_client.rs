//! A client of the agent's HIS port for the tests: hyper's own HTTP/1 client over one TCP
//! connection per request, and the event stream cut into SSE messages frame by frame, as an HIS
//! would read it.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The longest wait for an answer, a frame or a body.
pub const WAIT: Duration = Duration::from_secs(10);

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::get(path).header("host", "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an HTTP answer")
}

/// One POST of a JSON body on a fresh connection, with the HIS token.
#[allow(dead_code)] // his.rs reads only.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: &Value,
) -> Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post(path)
        .header("host", "localhost")
        .header("authorization", bearer(token))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an HTTP answer")
}

pub async fn json(response: Response<Incoming>) -> Value {
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("the body in time")
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).expect("a JSON body")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An event stream being read: frames are cut into SSE messages.
pub struct Stream {
    body: Incoming,
    /// Bytes received and not yet cut into messages (a large event spans several frames).
    text: Vec<u8>,
}

/// One SSE message: its id, event name and data.
#[derive(Debug)]
pub struct Message {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

impl Stream {
    pub async fn open(addr: SocketAddr, token: &str, last_event_id: Option<u64>) -> Stream {
        let auth = bearer(token);
        let id = last_event_id.map(|id| id.to_string());
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(id) = &id {
            headers.push(("last-event-id", id));
        }
        let response = get(addr, "/v1/events", &headers).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Stream {
            body: response.into_body(),
            text: Vec::new(),
        }
    }

    /// The next message, skipping keep-alive comments; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.text.windows(2).position(|w| w == b"\n\n") {
                // Cut at a message's end, so a character split across frames is whole again.
                let bytes: Vec<u8> = self.text.drain(..end + 2).collect();
                let block = String::from_utf8(bytes).expect("UTF-8 messages");
                let (mut id, mut event, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("JSON data"));
                    }
                }
                if let (Some(id), Some(event), Some(data)) = (id, event, data) {
                    return Some(Message { id, event, data });
                }
                continue;
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("a frame in time")?
                .ok()?;
            if let Ok(bytes) = frame.into_data() {
                self.text.extend_from_slice(&bytes);
            }
        }
    }
}
