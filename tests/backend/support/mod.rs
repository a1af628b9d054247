//! Private instances of the real services the backend's tests use, on free ports in temporary
//! directories, so tests neither depend on nor disturb services already on the machine.

mod postgres;
mod redis;

pub use postgres::{Postgres, postgres};
pub use redis::RedisServer;

/// A port the OS says is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 30 s for `ready`, polling; panics naming `what` (a bound against hangs).
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..600 {
        if ready() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{what} did not become ready");
}
