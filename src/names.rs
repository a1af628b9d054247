//! Comparing a patient's name as the desk typed it with the name on record.
//!
//! Vietnamese text arrives in several equivalent forms: precomposed or decomposed (NFC/NFD), and
//! with the tone mark on different vowels of the same syllable under the old and new placement
//! rules ("hòa" and "hoà", "thúy" and "thuý"). A name matches when, per word, the letters with
//! their shape marks (circumflex, breve, horn, đ) are the same, case ignored, and the word carries
//! the same tone, wherever it sits.

use unicode_normalization::UnicodeNormalization;

/// The five tone marks as combining characters (grave, acute, tilde, hook above, dot below).
const TONE_MARKS: [char; 5] = ['\u{300}', '\u{301}', '\u{303}', '\u{309}', '\u{323}'];

/// A name reduced to a form in which equivalent spellings are equal.
pub fn match_key(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for word in name.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        let mut tone = None;
        for c in word.nfd().flat_map(char::to_lowercase) {
            if TONE_MARKS.contains(&c) {
                tone = Some(c);
            } else {
                key.push(c);
            }
        }
        // The tone goes after the word, so its position inside the syllable no longer matters.
        key.extend(tone);
    }
    key.nfc().collect()
}

/// How a claimed name compares with the recorded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    Same,
    /// Different, but the first letter agrees (the gateway's code 061).
    FirstCharacterRight,
    Different,
}

pub fn compare(claimed: &str, recorded: &str) -> NameMatch {
    let (claimed, recorded) = (match_key(claimed), match_key(recorded));
    if claimed == recorded {
        NameMatch::Same
    } else if claimed.chars().next().is_some() && claimed.chars().next() == recorded.chars().next()
    {
        NameMatch::FirstCharacterRight
    } else {
        NameMatch::Different
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_placement_and_normal_forms_are_equal() {
        assert_eq!(compare("Nguyễn Thị Hòa", "NGUYỄN THỊ HOÀ"), NameMatch::Same);
        assert_eq!(compare("Lê Thúy", "lê thuý"), NameMatch::Same);
        let nfd: String = "Trần Văn Đức".nfd().collect();
        assert_eq!(compare(&nfd, "  trần  văn đức "), NameMatch::Same);
    }

    #[test]
    fn different_letters_or_tones_differ() {
        // Shape marks matter: "Đức" is not "Dức", "Hòa" is not "Hóa" (another tone).
        assert_eq!(
            compare("Trần Văn Dức", "Trần Văn Đức"),
            NameMatch::FirstCharacterRight
        );
        assert_eq!(
            compare("Nguyễn Thị Hóa", "Nguyễn Thị Hòa"),
            NameMatch::FirstCharacterRight
        );
        assert_eq!(compare("Phạm Minh", "Nguyễn Minh"), NameMatch::Different);
        assert_eq!(compare("", "Nguyễn Minh"), NameMatch::Different);
    }
}
