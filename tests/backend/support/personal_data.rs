//! A scanner for personal data left behind: the planted people's identifiers and names, in the
//! forms a leak could take (names composed, decomposed and without diacritics; any of them as
//! raw bytes, hex or base64 at any byte alignment), searched in files and captured text.

use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// One form of one planted secret, as bytes to look for.
struct Needle {
    /// Says which secret and which form, without the secret itself (it goes into test output).
    label: String,
    bytes: Vec<u8>,
}

/// A finding: where, and which form of which secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
    pub needle: String,
}

#[derive(Default)]
pub struct Scanner {
    needles: Vec<Needle>,
    /// Built on first use, after every needle is added.
    automaton: std::sync::OnceLock<AhoCorasick>,
}

impl Scanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// An identifier (citizen ID, document number, card number): its text and encodings.
    pub fn identifier(&mut self, label: &str, value: &str) {
        self.encodings(label, value.as_bytes());
    }

    /// A name: composed (NFC), decomposed (NFD) and without diacritics, each with its encodings.
    pub fn name(&mut self, label: &str, name: &str) {
        let composed: String = name.nfc().collect();
        let decomposed: String = name.nfd().collect();
        for (form, text) in [
            ("NFC", composed),
            ("NFD", decomposed),
            ("no diacritics", without_diacritics(name)),
        ] {
            self.encodings(&format!("{label} ({form})"), text.as_bytes());
        }
    }

    fn encodings(&mut self, label: &str, bytes: &[u8]) {
        // Forms may coincide (base64 and base64url of digits): each is reported under its name.
        let mut add = |form: &str, needle: Vec<u8>| {
            self.needles.push(Needle {
                label: format!("{label}, {form}"),
                bytes: needle,
            })
        };
        add("as is", bytes.to_vec());
        add("hex", hex::encode(bytes).into_bytes());
        add("HEX", hex::encode_upper(bytes).into_bytes());
        for offset in 0..3 {
            add(
                &format!("base64 at offset {offset}"),
                base64_core(&STANDARD_NO_PAD, bytes, offset),
            );
            add(
                &format!("base64url at offset {offset}"),
                base64_core(&URL_SAFE_NO_PAD, bytes, offset),
            );
        }
    }

    /// The forms of every secret found in `haystack`.
    pub fn scan_bytes(&self, place: &str, haystack: &[u8]) -> Vec<Finding> {
        let automaton = self.automaton.get_or_init(|| {
            AhoCorasick::new(self.needles.iter().map(|n| &n.bytes)).expect("needles compile")
        });
        let mut found = vec![false; self.needles.len()];
        for hit in automaton.find_overlapping_iter(haystack) {
            found[hit.pattern().as_usize()] = true;
        }
        self.needles
            .iter()
            .zip(found)
            .filter(|(_, found)| *found)
            .map(|(n, _)| Finding {
                place: place.to_owned(),
                needle: n.label.clone(),
            })
            .collect()
    }

    /// Every regular file under `root` (recursively), except the paths `skip` accepts.
    pub fn scan_tree(&self, root: &Path, skip: impl Fn(&Path) -> bool) -> (usize, Vec<Finding>) {
        let mut files = 0;
        let mut findings = Vec::new();
        for path in files_under(root) {
            if skip(&path) {
                continue;
            }
            // Files may vanish while a server runs (temporary files); what is gone holds nothing.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            files += 1;
            findings.extend(self.scan_bytes(&path.display().to_string(), &bytes));
        }
        (files, findings)
    }
}

/// Base64 of `bytes` as it appears inside a longer encoded stream where `bytes` starts `offset`
/// bytes into a 3-byte group: only the characters whose 6 bits all come from `bytes`.
fn base64_core(engine: &impl Engine, bytes: &[u8], offset: usize) -> Vec<u8> {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(bytes);
    let encoded = engine.encode(&padded).into_bytes();
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + bytes.len()) / 6;
    encoded[first..end].to_vec()
}

/// The name in plain Latin letters, as systems without Vietnamese support store it.
pub fn without_diacritics(name: &str) -> String {
    name.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            c => c,
        })
        .collect()
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form is found inside realistic surroundings, and a near miss is not.
    #[test]
    fn finds_each_form_and_nothing_else() {
        let mut scanner = Scanner::new();
        scanner.identifier("id", "001099012345");
        scanner.name("name", "Nguyễn Văn Đức");
        let name_nfd: String = "Nguyễn Văn Đức".nfd().collect();
        for (text, form) in [
            (b"log: id=001099012345 done".to_vec(), "id, as is"),
            (b"0x303031303939303132333435".to_vec(), "id, hex"),
            (format!("x{}", name_nfd).into_bytes(), "name (NFD), as is"),
            (
                b"patient Nguyen Van Duc".to_vec(),
                "name (no diacritics), as is",
            ),
        ] {
            let found = scanner.scan_bytes("t", &text);
            assert!(found.iter().any(|f| f.needle == form), "{form}: {found:?}");
        }
        // Base64 of a longer record, the secret at each alignment.
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let blob = STANDARD_NO_PAD.encode(format!("{prefix}001099012345;rest"));
            let found = scanner.scan_bytes("t", blob.as_bytes());
            assert!(
                found.iter().any(|f| f.needle.starts_with("id, base64 at")),
                "prefix {prefix:?}: {found:?}"
            );
        }
        assert!(
            scanner
                .scan_bytes("t", b"001099012346 Nguyen Van Dung")
                .is_empty()
        );
    }
}
