//! The agent's card layer through the real PC/SC path: a private pcscd with the vpcd driver, and
//! the vpcd bridge serving emrtd's virtual CCCD to it. Nothing here is in-process between the
//! agent and the card: every APDU goes through libpcsclite, pcscd and vpcd's socket.
//!
//! Each test holds the pcscd lock (one private pcscd at a time) and bounds every wait.

mod support;

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use emrtd::lds::build::{self, Dg13Person, Td1Fields};
use emrtd::lds::sod;
use emrtd::pace::{self, PacePassword};
use emrtd::reader::{ReadError, Reader};
use emrtd::stats::Phase;
use emrtd::transport::TransportError;
use emrtd::virtual_card::pace::VirtualPace;
use emrtd::virtual_card::{FileSystem, VirtualCard};
use reader_agent::card::{CardEvent, ExtendedApduMemory, PcscCard, Watcher, WatcherConfig};
use reader_agent::vpcd::{Behaviour, CONTACTLESS_ATR, VirtualReader};
use sha2::{Digest, Sha256};
use support::pcscd::{PrivatePcscd, exclusive};

/// The card access number printed on the virtual card.
const CAN: &str = "012345";
/// Long enough for pcscd's polling (about every 400 ms) and a busy 2-core CI machine.
const WAIT: Duration = Duration::from_secs(20);

struct Files {
    dg1: Vec<u8>,
    dg13: Vec<u8>,
    sod: Vec<u8>,
}

fn files() -> Files {
    let dg1 = build::dg1(&build::td1_mrz(&Td1Fields::cccd_example()));
    let dg13 = build::dg13(&Dg13Person::example());
    let sod = build::sod(&[(1, &dg1), (13, &dg13)], &[]).expect("build EF.SOD");
    Files { dg1, dg13, sod }
}

/// The virtual CCCD: PACE with the CAN, DG1, DG13, EF.SOD.
fn cccd() -> VirtualCard {
    let f = files();
    let fs = FileSystem::new()
        .with_file(0x011D, f.sod)
        .with_data_group(1, f.dg1)
        .with_data_group(13, f.dg13);
    VirtualCard::new(fs).with_pace(Box::new(VirtualPace::cccd(CAN)))
}

/// The desk's read: EF.CardAccess, PACE-CAN, the application, DG1, DG13, EF.SOD.
fn read_card(reader: &mut Reader<PcscCard>) -> Result<Files, ReadError> {
    let card_access = reader.read_card_access()?;
    let password = PacePassword::can(CAN).expect("valid CAN");
    reader
        .establish_with(|t, stats| pace::establish(t, &password, card_access.as_deref(), stats))
        .map_err(|e| ReadError::Transport(TransportError::Other(e.to_string())))?;
    reader.select_application()?;
    Ok(Files {
        dg1: reader.read_file(0x01)?,
        dg13: reader.read_file(0x0D)?,
        sod: reader.read_file(0x1D)?,
    })
}

/// Waits for the first event `want` accepts, skipping others; panics with what was seen.
fn expect_event(
    events: &Receiver<CardEvent>,
    what: &str,
    want: impl Fn(&CardEvent) -> bool,
) -> CardEvent {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(event) if want(&event) => return event,
            Ok(event) => seen.push(event),
            Err(_) => break,
        }
    }
    panic!("no {what} within {WAIT:?}; saw {seen:?}");
}

fn watcher() -> Watcher {
    Watcher::start(WatcherConfig {
        poll: Duration::from_millis(500),
        retry: Duration::from_millis(200),
    })
    .expect("start watcher")
}

/// Runs `f` on its own thread and gives up after `WAIT`: a hang fails the test instead of
/// stalling the suite.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{what} did not finish within {WAIT:?}"))
}

#[test]
fn reader_card_insertion_full_pace_read_and_removal_through_pcscd() {
    let _lock = exclusive();
    let (pcscd, port) = PrivatePcscd::start("BHYT Test PCD");
    let name = "BHYT Test PCD 00 00".to_string();
    let watcher = watcher();
    let events = watcher.events();
    expect_event(events, "reader", |e| {
        matches!(e, CardEvent::ReaderAdded { reader } if *reader == name)
    });

    let card = VirtualReader::on_port(port)
        .insert(cccd, &CONTACTLESS_ATR, Behaviour::default(), WAIT)
        .unwrap_or_else(|e| panic!("{e}; pcscd log:\n{}", pcscd.log()));
    let inserted = expect_event(events, "card insertion", |e| {
        matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name)
    });
    assert_eq!(
        inserted,
        CardEvent::CardInserted {
            reader: name.clone(),
            atr: CONTACTLESS_ATR.to_vec()
        }
    );

    let memory = ExtendedApduMemory::default();
    let reader_name = name.clone();
    let (read, stats, transport) = bounded("the read", move || {
        let transport = PcscCard::connect(&reader_name, memory).expect("connect");
        let mut reader = Reader::new(transport);
        let read = read_card(&mut reader);
        let stats = reader.stats().clone();
        (read, stats, reader.into_transport())
    });
    let read = read.expect("full read over PC/SC");
    let want = files();
    assert_eq!(read.dg1, want.dg1);
    assert_eq!(read.dg13, want.dg13);
    assert_eq!(read.sod, want.sod);
    // What came over PC/SC is what EF.SOD vouches for.
    let parsed = sod::parse(&read.sod).expect("EF.SOD parses");
    let lso = &parsed.security_object;
    assert_eq!(lso.hash_of(1), Some(&Sha256::digest(&read.dg1)[..]));
    assert_eq!(lso.hash_of(13), Some(&Sha256::digest(&read.dg13)[..]));
    // PACE ran: MSE:Set AT and four GENERAL AUTHENTICATE, all through pcscd.
    assert_eq!(stats.phase(Phase::Pace).apdus, 5);
    assert_eq!(card.counters().apdus(), u64::from(stats.total().apdus));
    eprintln!(
        "read over pcscd+vpcd: {} APDUs ({} in PACE)",
        stats.total().apdus,
        stats.phase(Phase::Pace).apdus
    );

    // Done: disconnect leaving the card. With a reset disposition pcscd sends vpcd a reset
    // (control 2) and this count goes up.
    let resets = card.counters().resets();
    let powered_off = card.counters().power_offs();
    transport.finish().expect("disconnect");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(card.counters().resets(), resets, "card reset on disconnect");
    assert_eq!(card.counters().power_offs(), powered_off);

    card.remove();
    expect_event(events, "card removal", |e| {
        matches!(e, CardEvent::CardRemoved { reader } if *reader == name)
    });
    watcher.stop();
}
