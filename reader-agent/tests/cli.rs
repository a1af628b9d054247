//! The `check` command's handling of bad desk input and configuration: refused before any card
//! or backend is touched, exit status 2, and a message naming the problem without echoing the
//! personal data typed.

use std::process::Command;

fn agent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reader-agent"))
        .args(args)
        .output()
        .expect("run reader-agent");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_malformed_id_or_qr_is_refused_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    let config = config.to_str().unwrap();
    // Eleven digits: with the ID check off, the command would go on to the (absent) config.
    let (code, err) = agent(&["check", "--id", "00109901234", "--config", config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("12-digit"), "{err}");
    assert!(!err.contains("00109901234"), "the typed ID echoed: {err}");
    let (code, err) = agent(&["check", "--qr", "not|a|qr", "--config", config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("QR"), "{err}");
}

#[test]
fn a_missing_or_malformed_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.toml");
    let (code, err) = agent(&[
        "check",
        "--id",
        "001099012345",
        "--config",
        absent.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "backend_url = \"https://x\"\nunknown_key = 1\n").unwrap();
    let (code, err) = agent(&[
        "check",
        "--id",
        "001099012345",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown_key") || err.contains("unknown field"),
        "{err}"
    );
}
