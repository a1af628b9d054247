//! The chip read at the desk, counted against the protocol's minimum: a genuine virtual CCCD
//! (the test PKI's, with a signed EF.SOD and an Active Authentication key) read in process with
//! PACE-CAN, EF.SOD, DG1, DG13, DG14, DG15 and one INTERNAL AUTHENTICATE, through a reader that
//! passes extended APDUs and one that does not. In process there is no card or reader latency:
//! the time is the terminal side's own cost (PACE's elliptic-curve work, secure messaging).

use std::time::{Duration, Instant};

use cccd_authenticity::test_pki::TestIssuer;
use emrtd::aa;
use emrtd::cccd::id_number::CitizenId;
use emrtd::lds::build::{Dg13Person, Td1Fields};
use emrtd::pace::{self, PacePassword};
use emrtd::reader::Reader;
use emrtd::stats::{SHORT_SM_READ, minimum_apdus};
use emrtd::virtual_card::Limits;
use emrtd::virtual_card::aa::{AaHash, VirtualAa};
use serde::Serialize;

const FILES: [u8; 5] = [0x1D, 0x01, 0x0D, 0x0E, 0x0F];

#[derive(Clone, Debug, Serialize)]
pub struct ChipRead {
    pub reader: &'static str,
    pub file_bytes: Vec<usize>,
    pub apdus: u32,
    /// [`emrtd::stats::minimum_apdus`]: SELECT of the application, PACE (MSE:Set AT and four
    /// GENERAL AUTHENTICATE), one READ BINARY per largest chunk of each file, one INTERNAL
    /// AUTHENTICATE.
    pub minimum_apdus: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Median wall time of one complete read, in process.
    pub median_ms: f64,
}

/// `runs` complete reads per kind of reader.
pub fn chip_reads(runs: usize) -> Vec<ChipRead> {
    let issuer = TestIssuer::vietnam_like();
    let person = Dg13Person::example();
    let mrz = Td1Fields::cccd_example();
    let password = PacePassword::from_citizen_id(&CitizenId::parse(person.id).expect("an ID"));
    [("extended", true), ("short only", false)]
        .into_iter()
        .map(|(name, extended)| {
            let mut times = Vec::with_capacity(runs);
            let mut last = None;
            for _ in 0..runs.max(1) {
                let card = issuer
                    .card(&mrz, &person, VirtualAa::ecdsa_p256(AaHash::Sha256))
                    .with_limits(Limits {
                        reader_extended: extended,
                        ..Limits::default()
                    });
                let started = Instant::now();
                let mut reader = Reader::new(card);
                reader
                    .establish_with(|t, stats| pace::establish(t, &password, None, stats))
                    .expect("PACE with the CAN");
                reader.select_application().expect("the eMRTD application");
                let sizes: Vec<usize> = FILES
                    .iter()
                    .map(|&sfi| reader.read_file(sfi).expect("the file").len())
                    .collect();
                aa::internal_authenticate(&mut reader, &[7; 8]).expect("Active Authentication");
                times.push(started.elapsed());
                last = Some((sizes, reader.stats().total()));
            }
            let (sizes, total) = last.expect("at least one run");
            let minimum = minimum_apdus(&sizes, (!extended).then_some(SHORT_SM_READ));
            times.sort();
            ChipRead {
                reader: name,
                file_bytes: sizes,
                apdus: total.apdus,
                minimum_apdus: minimum,
                bytes_sent: total.bytes_sent,
                bytes_received: total.bytes_received,
                median_ms: median(&times).as_secs_f64() * 1000.0,
            }
        })
        .collect()
}

fn median(times: &[Duration]) -> Duration {
    times.get(times.len() / 2).copied().unwrap_or_default()
}
