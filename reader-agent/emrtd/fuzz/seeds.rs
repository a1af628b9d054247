//! Writes a seed corpus (corpus/<target>/) from the crate's encoders and the OpenSSL-made
//! EF.SOD, so fuzzing starts from well-formed files and mutates inward from there.

use std::fs;
use std::path::Path;

use emrtd::lds::build::{self, Dg13Person, FaceRecord, OldIdField, ParentsLayout, Td1Fields};
use emrtd::lds::dg2::FaceRecordVersion;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed written");
}

fn main() {
    let mrz = build::td1_mrz(&Td1Fields::cccd_example());
    let no_expiry = build::td1_mrz(&Td1Fields {
        date_of_expiry: None,
        ..Td1Fields::cccd_example()
    });
    let dg1 = build::dg1(&mrz);
    let com = build::com(&[1, 2, 13, 14, 15]);
    let mut dg13s = Vec::new();
    for parents in [ParentsLayout::OneSequence, ParentsLayout::SequenceEach] {
        for old_id in [
            Some(("123456789", OldIdField::Field15)),
            Some(("123456789", OldIdField::Field16)),
            None,
        ] {
            dg13s.push(build::dg13(&Dg13Person {
                parents,
                old_id,
                field_16: old_id.is_none().then_some("A1B2C3D4E5F6G7H8"),
                ..Dg13Person::example()
            }));
        }
    }
    let ec = build::example_ec_public_key_info();
    let rsa = build::example_rsa_public_key_info();
    let dg14 = build::dg14(&ec, Some(build::ECDSA_WITH_SHA256));
    let dg15_ec = build::dg15(&ec);
    let dg15_rsa = build::dg15(&rsa);
    let openssl_sod = include_bytes!("../testdata/sod/sod.bin");
    let built_sod = build::sod(&[(1, &dg1), (13, &dg13s[0])], &[]).expect("SOD encodes");

    for (i, seed) in [&dg1, &com, &dg13s[0], &dg14, &dg15_ec, &built_sod]
        .into_iter()
        .enumerate()
    {
        write("tlv", &format!("{i}"), seed);
    }
    write("com", "com", &com);
    write("dg1", "cccd", &dg1);
    write("dg1", "no_expiry", &build::dg1(&no_expiry));
    write("dg1", "td1", mrz.as_bytes());
    for (i, dg13) in dg13s.iter().enumerate() {
        write("dg13", &format!("layout{i}"), dg13);
    }
    let jpeg = build::synthetic_jpeg(600, 1);
    for (name, version) in [
        ("v2005", FaceRecordVersion::V2005),
        ("v2011", FaceRecordVersion::V2011),
    ] {
        let record = FaceRecord {
            points: 2,
            quality_blocks: 1,
            ..FaceRecord::new(version, &jpeg)
        };
        write("dg2", name, &build::dg2(&record));
    }
    write("sod", "openssl", openssl_sod);
    write("sod", "built", &built_sod);
    write("dg14", "ca_aa", &dg14);
    write("dg14", "ca", &build::dg14(&ec, None));
    write("dg15", "ec", &dg15_ec);
    write("dg15", "rsa", &dg15_rsa);
    let mut with_dg14 = vec![dg15_ec.len() as u8];
    with_dg14.extend(&dg15_ec);
    with_dg14.extend(&dg14);
    write("dg15", "ec_with_dg14", &with_dg14);
    write(
        "qr",
        "sample",
        "001099012345|123456789|Nguyễn Văn An|15011999|Nam|Số 1 Phố Huế, Hà Nội|10072021\r\n"
            .as_bytes(),
    );
    write(
        "qr",
        "female",
        "079305000001||Trần Thị Bé|01022005|Nữ|Quận 1|01032021".as_bytes(),
    );
    write("mrz", "one_line", mrz.as_bytes());
    write(
        "mrz",
        "three_lines",
        format!("{}\r\n{}\r\n{}\r\n", &mrz[..30], &mrz[30..60], &mrz[60..]).as_bytes(),
    );
    write("mrz", "no_expiry", no_expiry.as_bytes());
}
