//! Test support shared by the PC/SC integration tests: a private pcscd with its vpcd reader,
//! under the lock every private-pcscd user takes, and cards put on that reader.

use std::time::Duration;

use emrtd::transport::Transport;
use reader_agent::pcscd::{Exclusive, PrivatePcscd, exclusive};
use reader_agent::vpcd::{Behaviour, CONTACTLESS_ATR, InsertedCard, VirtualReader};

/// Long enough for pcscd's polling (about every 400 ms) and a busy 2-core CI machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// A private pcscd serving one vpcd reader, held under the private-pcscd lock.
pub struct PrivateReader {
    /// Dropped first: pcscd stops before the lock is released.
    pub pcscd: PrivatePcscd,
    /// The vpcd slot's port.
    pub port: u16,
    /// The reader's name as PC/SC lists it (`<name> 00 00`).
    pub name: String,
    _lock: Exclusive,
}

impl PrivateReader {
    /// Takes the lock and starts pcscd with the reader `name`.
    pub fn start(name: &str) -> Self {
        let lock = exclusive().expect("the private-pcscd lock");
        let (pcscd, port) = PrivatePcscd::start(name).unwrap_or_else(|e| panic!("{e}"));
        Self::with(lock, pcscd, port, name)
    }

    /// Takes the lock and writes the configuration, without starting pcscd (`pcscd.restart()`
    /// starts it).
    pub fn prepare(name: &str) -> Self {
        let lock = exclusive().expect("the private-pcscd lock");
        let (pcscd, port) = PrivatePcscd::prepare(name).unwrap_or_else(|e| panic!("{e}"));
        Self::with(lock, pcscd, port, name)
    }

    fn with(lock: Exclusive, pcscd: PrivatePcscd, port: u16, name: &str) -> Self {
        PrivateReader {
            pcscd,
            port,
            name: format!("{name} 00 00"),
            _lock: lock,
        }
    }

    /// Puts a card on the reader, a fresh `chip()` at every power-on and reset; panics with
    /// pcscd's log when the driver does not take it.
    pub fn insert<T, F>(&self, chip: F, behaviour: Behaviour) -> InsertedCard
    where
        T: Transport,
        F: FnMut() -> T + Send + 'static,
    {
        VirtualReader::on_port(self.port)
            .insert(chip, &CONTACTLESS_ATR, behaviour, WAIT)
            .unwrap_or_else(|e| panic!("{e}; pcscd log:\n{}", self.pcscd.log()))
    }
}
