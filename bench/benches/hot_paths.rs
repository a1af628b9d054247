//! Micro-benchmarks of the pure functions on the hot paths: every check validates an ID or a
//! card number, derives a cache key and decodes a cached value, hashes an audit record; every
//! chip read parses TLV and DG13 and wraps/unwraps each APDU with secure messaging.
//!
//! `cargo bench -p bhyt-bench` (short runs by default: see `config`). Reported, never asserted.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bhyt_verify::audit::chain::{self, AuditEntry, Evidence};
use bhyt_verify::cache::{CachedCoverage, CoverageCache};
use bhyt_verify::card_number::CardNumber;
use bhyt_verify::config::CacheConfig;
use bhyt_verify::coverage::Subject;
use bhyt_verify::keys::Pseudonymizer;
use bhyt_verify::registry::generate::Generator;
use bhyt_verify::seal::Sealer;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use emrtd::apdu::CommandApdu;
use emrtd::cccd::dg13;
use emrtd::cccd::id_number::CitizenId;
use emrtd::crypto::{self, Cipher, SessionKeys};
use emrtd::sm::SecureChannel;
use emrtd::tlv;

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    g.bench_function("citizen_id/valid", |b| {
        b.iter(|| CitizenId::parse(black_box("001099012345")))
    });
    g.bench_function("citizen_id/bad_province", |b| {
        b.iter(|| CitizenId::parse(black_box("003099012345")))
    });
    g.bench_function("card_number/15_chars", |b| {
        b.iter(|| CardNumber::parse(black_box("DN4010123456789")))
    });
    g.bench_function("card_number/10_digits", |b| {
        b.iter(|| CardNumber::parse(black_box("0123456789")))
    });
    g.finish();
}

fn cache(c: &mut Criterion) {
    let keys = Pseudonymizer::new(&[7; 32]);
    let config = CacheConfig::default();
    let sealer = Arc::new(Sealer::new(vec![("bench-01".into(), vec![9; 32])]));
    let cache =
        CoverageCache::new(&config, keys.clone(), sealer.clone()).expect("no Redis configured");
    let subject = Subject::Citizen(CitizenId::parse("001099012345").unwrap());
    let today = bhyt_verify::coverage::vietnam_date(time_now());
    let value = CachedCoverage {
        card: Some(Generator::new(1, today).next().unwrap().record),
        fetched_at: 1_760_000_000,
    };
    let bytes = serde_json::to_vec(&value).unwrap();
    // As Redis holds it: sealed with AES-256-GCM (purpose as in src/cache.rs).
    let sealed = sealer.seal("redis-coverage", &bytes);

    let mut g = c.benchmark_group("cache");
    g.bench_function("pseudonymize", |b| {
        b.iter(|| keys.hash(black_box("cache"), black_box("citizen_id:001099012345")))
    });
    g.bench_function("key", |b| b.iter(|| cache.key(black_box(&subject))));
    g.bench_function("encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&value)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| serde_json::from_slice::<CachedCoverage>(black_box(&bytes)))
    });
    g.bench_function("encode_and_seal", |b| {
        b.iter(|| {
            sealer.seal(
                "redis-coverage",
                &serde_json::to_vec(black_box(&value)).unwrap(),
            )
        })
    });
    g.bench_function("open_and_decode", |b| {
        b.iter(|| {
            let plain = sealer.open("redis-coverage", black_box(&sealed)).unwrap();
            serde_json::from_slice::<CachedCoverage>(&plain).unwrap()
        })
    });
    g.finish();
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn audit(c: &mut Criterion) {
    let entry = AuditEntry {
        recorded_at: 1_760_000_000_000_000,
        request_id: "desk-7-000123".into(),
        facility_code: "01821".into(),
        station_id: "desk-7".into(),
        operator_hash: "ab".repeat(32),
        subject_kind: "citizen_id".into(),
        subject_hash: "cd".repeat(32),
        result: 1,
        source_code: "000".into(),
        cache_status: 1,
        evidence: Evidence {
            method: 1,
            passive_authentication: true,
            chip_authentication: true,
            ..Default::default()
        },
        latency_micros: 850,
        ..Default::default()
    };
    let prev = chain::genesis_hash("w-0123456789abcdef");
    c.bench_function("audit/record_hash", |b| {
        b.iter(|| {
            chain::record_hash(
                black_box("w-0123456789abcdef"),
                42,
                &prev,
                black_box(&entry),
            )
        })
    });
}

fn chip(c: &mut Criterion) {
    let dg13 = sample_dg13();
    let mut g = c.benchmark_group("chip");
    g.bench_function("tlv/check_tree_dg13", |b| {
        b.iter(|| tlv::check_tree(black_box(&dg13), tlv::MAX_DEPTH))
    });
    g.bench_function("tlv/walk_dg13", |b| {
        b.iter(|| {
            let (outer, _) = tlv::parse_one(black_box(&dg13)).unwrap();
            outer.children().unwrap().count()
        })
    });
    g.bench_function("dg13/parse", |b| b.iter(|| dg13::parse(black_box(&dg13))));

    for (name, cipher) in [("aes128", Cipher::Aes128), ("3des", Cipher::TripleDes)] {
        let keys = SessionKeys::derive(cipher, b"benchmark shared secret");
        let ssc = vec![0u8; cipher.block_size()];
        let read = CommandApdu::new(0x00, 0xB0, 0x00, 0x00).with_le(0xDF);
        g.bench_function(format!("sm/{name}/wrap_read_binary"), |b| {
            b.iter_batched(
                || SecureChannel::new(keys.clone(), &ssc).unwrap(),
                |mut channel| channel.protect(black_box(&read)),
                BatchSize::SmallInput,
            )
        });
        // A full READ BINARY chunk (223 bytes) as the card would protect it.
        let response = protected_response(&keys, &ssc, &[0x5A; 223]);
        g.bench_function(format!("sm/{name}/unwrap_223_bytes"), |b| {
            b.iter_batched(
                || SecureChannel::new(keys.clone(), &ssc).unwrap(),
                |mut channel| channel.unprotect(black_box(&response)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A DG13 as Vietnamese cards write it (tag 6D: version, OID 1.0.10646.1.0.8, a SET of
/// {field number, value}), with a made-up holder. Written here rather than taken from emrtd's
/// test encoders, whose feature would rebuild the backend for `cargo bench`.
fn sample_dg13() -> Vec<u8> {
    use tlv::{Tag, encoded};
    let utf8 = |t: &str| encoded(Tag::new(0x0C), t.as_bytes());
    let printable = |t: &str| encoded(Tag::new(0x13), t.as_bytes());
    let sequence = |parts: &[Vec<u8>]| encoded(Tag::new(0x30), &parts.concat());
    let field = |n: u8, value: Vec<u8>| sequence(&[vec![0x02, 0x01, n], value]);
    let fields = [
        field(1, printable("001099012345")),
        field(2, utf8("Nguyễn Văn An")),
        field(3, printable("15/01/1999")),
        field(4, utf8("Nam")),
        field(5, utf8("Việt Nam")),
        field(6, utf8("Kinh")),
        field(7, utf8("Không")),
        field(8, utf8("Xã Phú Mỹ, Huyện Phú Vang, Thừa Thiên Huế")),
        field(
            9,
            utf8("Số 1 Phố Huế, Phường Hàng Bài, Quận Hoàn Kiếm, Hà Nội"),
        ),
        field(10, utf8("Nốt ruồi C:2cm trên trước mép trái")),
        field(11, printable("10/07/2021")),
        field(12, utf8("15/01/2039")),
        field(
            13,
            sequence(&[utf8("Nguyễn Văn Bình"), utf8("Trần Thị Cúc")]),
        ),
        field(14, sequence(&[])),
        field(15, printable("123456789")),
    ];
    let oid = vec![0x06, 0x06, 0x28, 0xD3, 0x16, 0x01, 0x00, 0x08];
    let body = sequence(&[
        vec![0x02, 0x01, 0x01],
        oid,
        encoded(Tag::new(0x31), &fields.concat()),
    ]);
    encoded(Tag::new(0x6D), &body)
}

/// The card's protection of `data` with status 9000, for the response that follows a channel
/// opened at `ssc` (the counter is one higher then): DO87 (encrypted, padded), DO99, DO8E.
fn protected_response(keys: &SessionKeys, ssc: &[u8], data: &[u8]) -> Vec<u8> {
    let cipher = keys.cipher;
    let bs = cipher.block_size();
    let mut counter = ssc.to_vec();
    *counter.last_mut().unwrap() += 1;
    let iv = if cipher == Cipher::TripleDes {
        vec![0; bs]
    } else {
        let mut iv = counter.clone();
        crypto::encrypt_cbc(cipher, &keys.k_enc, &vec![0; bs], &mut iv).unwrap();
        iv
    };
    let mut cryptogram = crypto::pad(data, bs);
    crypto::encrypt_cbc(cipher, &keys.k_enc, &iv, &mut cryptogram).unwrap();
    let mut value = vec![0x01];
    value.extend_from_slice(&cryptogram);
    let mut body = tlv::encoded(tlv::Tag::new(0x87), &value);
    body.extend_from_slice(&[0x99, 0x02, 0x90, 0x00]);
    let mut mac_input = counter;
    mac_input.extend_from_slice(&body);
    let mac = crypto::mac(cipher, &keys.k_mac, &crypto::pad(&mac_input, bs)).unwrap();
    body.extend_from_slice(&[0x8E, 0x08]);
    body.extend_from_slice(&mac);
    body.extend_from_slice(&[0x90, 0x00]);
    body
}

fn config() -> Criterion {
    // Short by default so the whole suite takes well under a minute; criterion's command-line
    // options (e.g. --measurement-time) override these.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = validation, cache, audit, chip
}
criterion_main!(benches);
