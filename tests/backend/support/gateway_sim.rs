//! The gateway simulator (`gateway-sim`, a bin of this crate) as a real process on port 0,
//! with its control endpoint for changing faults and reading its counters.
//!
//! It stops by itself when its standard input closes: this handle holds the only write end,
//! which the kernel closes however the test process ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const USERNAME: &str = "bv01821";

pub struct GatewaySim {
    /// `http://127.0.0.1:PORT`, the gateway's base URL.
    pub url: String,
    control: String,
    child: Child,
    _stdin: ChildStdin,
}

/// The simulator's counters.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Counts {
    pub logins: u64,
    pub checks: u64,
}

impl GatewaySim {
    /// A simulator answering from the registry at `registry_url`, accepting `USERNAME` with
    /// `password`; `extra` are more command-line flags.
    pub fn start(registry_url: &str, password: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-sim"))
            .args(["--registry", registry_url])
            .args(["--account", &format!("{USERNAME}:{password}")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("gateway-sim starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("gateway-sim prints its addresses");
        // "gateway http://ADDR control http://ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        let (url, control) = match words.as_slice() {
            ["gateway", url, "control", control] => (url.to_string(), control.to_string()),
            _ => panic!("unexpected first line from gateway-sim: {line:?}"),
        };
        Self {
            url,
            control,
            child,
            _stdin: stdin,
        }
    }

    /// POSTs a JSON change of faults to the control endpoint.
    pub async fn set(&self, json: &str) {
        let (status, body) = self.control_call("POST", json).await;
        assert_eq!(status, 200, "control refused {json}: {body}");
    }

    pub async fn counts(&self) -> Counts {
        let (_, body) = self.control_call("GET", "").await;
        let value: serde_json::Value = serde_json::from_str(&body).expect("control JSON");
        Counts {
            logins: value["logins"].as_u64().expect("logins"),
            checks: value["checks"].as_u64().expect("checks"),
        }
    }

    async fn control_call(&self, method: &str, body: &str) -> (u16, String) {
        let address = self.control.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.expect("control endpoint");
        let request = format!(
            "{method} /control HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for GatewaySim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
