//! The agent's card layer through the real PC/SC path: a private pcscd with the vpcd driver, and
//! the vpcd bridge serving emrtd's virtual CCCD to it. Nothing here is in-process between the
//! agent and the card: every APDU goes through libpcsclite, pcscd and vpcd's socket.
//!
//! Each test holds the pcscd lock (one private pcscd at a time) and bounds every wait.
//! pcscd and vpcd are Debian packages: these tests are for Linux.

#![cfg(target_os = "linux")]

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
use reader_agent::vpcd::{Behaviour, CONTACTLESS_ATR};
use sha2::{Digest, Sha256};
use support::{PrivateReader, WAIT};

/// The card access number printed on the virtual card.
const CAN: &str = "012345";

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
    let rig = PrivateReader::start("BHYT Test PCD");
    let name = rig.name.clone();
    let watcher = watcher();
    let events = watcher.events();
    expect_event(
        events,
        "reader",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if *reader == name),
    );

    let card = rig.insert(cccd, Behaviour::default());
    let inserted = expect_event(
        events,
        "card insertion",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name),
    );
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
        let started = Instant::now();
        let read = read_card(&mut reader);
        let took = started.elapsed();
        let stats = reader.stats().clone();
        (read, (stats, took), reader.into_transport())
    });
    let (stats, took) = stats;
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
        "read over pcscd+vpcd: {} APDUs ({} in PACE) in {took:?} (reported, not asserted)",
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
    expect_event(
        events,
        "card removal",
        |e| matches!(e, CardEvent::CardRemoved { reader } if *reader == name),
    );
    watcher.stop();
}

#[test]
fn a_card_pulled_mid_read_is_a_removal_error_and_the_watcher_sees_it_leave() {
    let rig = PrivateReader::start("BHYT Pull PCD");
    let name = rig.name.clone();
    let watcher = watcher();
    let events = watcher.events();
    // Pulled after PACE (5 APDUs after the EF.CardAccess probe), in the middle of the files.
    let behaviour = Behaviour {
        pull_after_apdus: Some(8),
        ..Behaviour::default()
    };
    let card = rig.insert(cccd, behaviour);
    expect_event(
        events,
        "card insertion",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name),
    );
    let reader_name = name.clone();
    let read = bounded("the interrupted read", move || {
        let transport =
            PcscCard::connect(&reader_name, ExtendedApduMemory::default()).expect("connect");
        let mut reader = Reader::new(transport);
        read_card(&mut reader).map(|_| ())
    });
    // The card is gone, said as such: not a protocol error, not a hang, not a panic. Without
    // the pull the read succeeds and this fails.
    assert_eq!(
        read.err(),
        Some(ReadError::Transport(TransportError::CardRemoved))
    );
    assert_eq!(card.counters().apdus(), 8);
    expect_event(
        events,
        "card removal",
        |e| matches!(e, CardEvent::CardRemoved { reader } if *reader == name),
    );
    drop(card);
    watcher.stop();
}

#[test]
fn pcscd_killed_and_restarted_the_watcher_recovers_and_sees_the_next_card() {
    let mut rig = PrivateReader::start("BHYT Restart PCD");
    let name = rig.name.clone();
    let watcher = watcher();
    let events = watcher.events();
    expect_event(
        events,
        "reader",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if *reader == name),
    );
    rig.pcscd.kill();
    expect_event(events, "service lost", |e| *e == CardEvent::ServiceLost);
    expect_event(
        events,
        "reader gone with the service",
        |e| matches!(e, CardEvent::ReaderRemoved { reader } if *reader == name),
    );
    rig.pcscd.restart().expect("restart pcscd");
    // Without re-establishing the context the watcher stays on the dead one and none of these
    // come.
    expect_event(events, "service restored", |e| {
        *e == CardEvent::ServiceRestored
    });
    expect_event(
        events,
        "reader back",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if *reader == name),
    );
    let card = rig.insert(cccd, Behaviour::default());
    expect_event(
        events,
        "card insertion after the restart",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name),
    );
    let reader_name = name.clone();
    let read = bounded("the read after the restart", move || {
        let transport =
            PcscCard::connect(&reader_name, ExtendedApduMemory::default()).expect("connect");
        let mut reader = Reader::new(transport);
        read_card(&mut reader).map(|f| f.dg13)
    });
    assert_eq!(read.expect("read after the restart"), files().dg13);
    drop(card);
    watcher.stop();
}

/// pcsc-lite 1.9.9 (Debian 12, libudev build) adds and removes readers live only for USB
/// devices; SIGUSR1 (`pcscd --hotplug`) does not re-read reader.conf for serial drivers such as
/// vpcd, so a change of readers is produced here across a pcscd restart (and vpcd serves one
/// reader.conf line per pcscd, so the change replaces the line). The watcher's diffing of reader
/// lists is the same code either way: a reader that appears in a listing is added, one that
/// vanishes is removed with its card, and a vanished reader is not reported again.
#[test]
fn readers_appearing_and_vanishing_are_reported_with_their_cards() {
    let mut rig = PrivateReader::start("BHYT Desk PCD");
    let watcher = watcher();
    let events = watcher.events();
    expect_event(
        events,
        "first reader",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if reader == "BHYT Desk PCD 00 00"),
    );
    // Another reader in place of the first.
    rig.pcscd.remove_vpcd("vpcd-0").expect("remove the reader");
    rig.port = rig
        .pcscd
        .add_vpcd("vpcd-0", "BHYT Second PCD")
        .expect("add a reader");
    rig.pcscd.restart().expect("restart pcscd");
    expect_event(
        events,
        "first reader gone",
        |e| matches!(e, CardEvent::ReaderRemoved { reader } if reader == "BHYT Desk PCD 00 00"),
    );
    expect_event(
        events,
        "second reader",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if reader == "BHYT Second PCD 00 00"),
    );
    let card = rig.insert(cccd, Behaviour::default());
    expect_event(
        events,
        "card on the second reader",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if reader == "BHYT Second PCD 00 00"),
    );
    // No reader left, with the card on it: the card leaves with the reader.
    rig.pcscd.remove_vpcd("vpcd-0").expect("remove the reader");
    rig.pcscd.restart().expect("restart pcscd");
    expect_event(
        events,
        "card gone with its reader",
        |e| matches!(e, CardEvent::CardRemoved { reader } if reader == "BHYT Second PCD 00 00"),
    );
    expect_event(
        events,
        "second reader gone",
        |e| matches!(e, CardEvent::ReaderRemoved { reader } if reader == "BHYT Second PCD 00 00"),
    );
    expect_event(events, "service back", |e| *e == CardEvent::ServiceRestored);
    let mut later = Vec::new();
    while let Ok(event) = events.recv_timeout(Duration::from_secs(2)) {
        later.push(event);
    }
    // Without the diffing, a stale list would re-add readers that are gone.
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, CardEvent::ReaderAdded { .. })),
        "a reader came back with none configured: {later:?}"
    );
    drop(card);
    watcher.stop();
}

#[test]
fn a_watcher_started_before_pcscd_reports_it_missing_then_sees_it_come_up() {
    let mut rig = PrivateReader::prepare("BHYT Late PCD");
    // Nothing serves the private socket yet (a desk PC where the agent starts first).
    let watcher = watcher();
    let events = watcher.events();
    expect_event(events, "service missing", |e| *e == CardEvent::ServiceLost);
    rig.pcscd.restart().expect("start pcscd");
    // Without retrying the context the watcher would wait forever here.
    expect_event(events, "service up", |e| *e == CardEvent::ServiceRestored);
    expect_event(
        events,
        "reader",
        |e| matches!(e, CardEvent::ReaderAdded { reader } if reader == "BHYT Late PCD 00 00"),
    );
    watcher.stop();
}

#[test]
fn pcscd_killed_mid_session_fails_the_read_as_a_removal_not_a_hang() {
    let mut rig = PrivateReader::start("BHYT Crash PCD");
    let name = rig.name.clone();
    let watcher = watcher();
    let card = rig.insert(cccd, Behaviour::default());
    expect_event(
        watcher.events(),
        "card insertion",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name),
    );
    let (opened_tx, opened_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let reader_name = name.clone();
    let (result_tx, result_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let transport =
            PcscCard::connect(&reader_name, ExtendedApduMemory::default()).expect("connect");
        let mut reader = Reader::new(transport);
        let password = PacePassword::can(CAN).expect("valid CAN");
        let opened = reader
            .establish_with(|t, stats| pace::establish(t, &password, None, stats))
            .is_ok();
        let _ = opened_tx.send(opened);
        let _ = go_rx.recv();
        let _ = result_tx.send(reader.read_file(0x01).map(|_| ()));
    });
    assert_eq!(opened_rx.recv_timeout(WAIT), Ok(true), "PACE over pcscd");
    rig.pcscd.kill();
    let _ = go_tx.send(());
    // With the daemon gone the card is lost to this session; said as a removal, in time.
    let result = result_rx
        .recv_timeout(WAIT)
        .expect("the read after pcscd died did not end");
    assert_eq!(
        result.err(),
        Some(ReadError::Transport(TransportError::CardRemoved))
    );
    drop(card);
    watcher.stop();
}

/// pcsc-lite's SCardTransmit has no timeout: a card that stops answering holds the read until
/// it leaves the field. The read runs off the watcher's thread, so the watcher keeps working,
/// and removing the card releases the read with a removal error. (A deadline for the desk is the
/// flow's: it gives up on the read thread and says the reader does not answer.)
#[test]
fn an_unresponsive_card_holds_the_read_until_removed_then_it_fails_as_a_removal() {
    let rig = PrivateReader::start("BHYT Mute PCD");
    let name = rig.name.clone();
    let watcher = watcher();
    let behaviour = Behaviour {
        stall_after_apdus: Some(7),
        ..Behaviour::default()
    };
    let card = rig.insert(cccd, behaviour);
    expect_event(
        watcher.events(),
        "card insertion",
        |e| matches!(e, CardEvent::CardInserted { reader, .. } if *reader == name),
    );
    let reader_name = name.clone();
    let (result_tx, result_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let transport =
            PcscCard::connect(&reader_name, ExtendedApduMemory::default()).expect("connect");
        let mut reader = Reader::new(transport);
        let _ = result_tx.send(read_card(&mut reader).map(|_| ()));
    });
    // Still waiting on the silent card: the read neither succeeded nor invented an answer.
    assert!(result_rx.recv_timeout(Duration::from_secs(2)).is_err());
    card.remove();
    let result = result_rx
        .recv_timeout(WAIT)
        .expect("removing the card did not release the read");
    assert_eq!(
        result.err(),
        Some(ReadError::Transport(TransportError::CardRemoved))
    );
    expect_event(
        watcher.events(),
        "card removal",
        |e| matches!(e, CardEvent::CardRemoved { reader } if *reader == name),
    );
    watcher.stop();
}

#[test]
fn stopping_the_watcher_cancels_its_blocking_wait() {
    let _rig = PrivateReader::start("BHYT Stop PCD");
    // A wait far longer than the bound below: only SCardCancel ends it in time.
    let watcher = Watcher::start(WatcherConfig {
        poll: Duration::from_secs(600),
        retry: Duration::from_millis(200),
    })
    .expect("start watcher");
    expect_event(watcher.events(), "reader", |e| {
        matches!(e, CardEvent::ReaderAdded { .. })
    });
    // Let the thread settle into GetStatusChange.
    std::thread::sleep(Duration::from_millis(500));
    bounded("stopping the watcher", move || watcher.stop());
}
