//! `reader-agent demo` run as the program it is, end to end: its own private pcscd and vpcd
//! reader, its in-process backend, the genuine card verified and the bad cards refused, with
//! the figures it promises. The demo takes the private-pcscd lock itself (this test does not
//! hold it), so it waits for other PC/SC tests. Linux only (Debian's pcscd and
//! vsmartcard-vpcd).

#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::Duration;

/// Generous: the demo waits for the PC/SC tests of other test binaries, then runs six checks.
const BOUND: Duration = Duration::from_secs(600);

#[test]
fn the_demo_verifies_the_genuine_card_refuses_the_bad_ones_and_reports_figures() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reader-agent"))
        .args(["demo", "--runs", "2", "--lang", "en"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run reader-agent demo");
    // Bounded: a demo that hangs is killed and fails the test. (Its output, a few kilobytes,
    // fits the pipes, so it never blocks on them.)
    let deadline = std::time::Instant::now() + BOUND;
    while child.try_wait().expect("the demo's status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().expect("the demo's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    // The genuine card: verified at the desk and in the audit record.
    let genuine = section(&stdout, "== Genuine card");
    assert!(genuine.contains("Chip: VERIFIED"), "{stdout}");
    assert!(genuine.contains("presence VERIFIED"), "{stdout}");
    // The refusals: coverage answered, never "verified", the reason named, the record failed.
    let clone = section(&stdout, "== A clone");
    assert!(clone.contains("NOT VERIFIED"), "{stdout}");
    assert!(clone.contains("active authentication failed"), "{stdout}");
    assert!(clone.contains("presence FAILED"), "{stdout}");
    assert!(!clone.contains("Chip: VERIFIED"), "{stdout}");
    let altered = section(&stdout, "== Altered data");
    assert!(altered.contains("DG13 does not match its hash"), "{stdout}");
    assert!(altered.contains("presence FAILED"), "{stdout}");
    assert!(!altered.contains("Chip: VERIFIED"), "{stdout}");

    // The photo, read after the answer over the same session, and what it cost.
    let photo = section(&stdout, "== The photo");
    assert!(photo.contains("Photo from the chip available"), "{stdout}");
    assert!(photo.contains("Photo: 15360 B in "), "{stdout}");

    // The figures: each phase, the insertion-to-answer time, the APDU counts and the minimum.
    for phase in [
        "card seen after insertion",
        "presence challenge",
        "open (PACE-CAN)",
        "read files",
        "active authentication",
        "passive authentication",
        "backend check",
        "insertion to answer",
    ] {
        assert!(stdout.contains(phase), "no {phase}: {stdout}");
    }
    assert!(stdout.contains("median of 2 run(s)"), "{stdout}");
    let apdus = stdout
        .lines()
        .find_map(|l| l.strip_prefix("APDUs: "))
        .expect("the APDU line");
    let count: u32 = apdus.split(' ').next().unwrap().parse().unwrap();
    let minimum: u32 = apdus
        .split("protocol minimum ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the minimum");
    // A read cannot take fewer APDUs than the protocol needs; both counted, not timed.
    assert!(count >= minimum && minimum >= 7, "{apdus}");
    // The per-phase table of the read (EF.SOD and PACE among its rows).
    assert!(stdout.contains("pace:"), "{stdout}");
    assert!(stdout.contains("EF.SOD:"), "{stdout}");
}

/// The text from the line starting with `title` to the next section.
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(title)
        .unwrap_or_else(|| panic!("no {title}: {text}"));
    let rest = &text[start + title.len()..];
    let end = rest.find("\n== ").map_or(rest.len(), |i| i);
    &rest[..end]
}
