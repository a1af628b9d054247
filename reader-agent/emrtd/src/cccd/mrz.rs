//! MRZ text from an OCR device, and the BAC key material from it or from the QR code.
//!
//! OCR devices type the TD1 MRZ as three lines of 30 characters or as one line of 90; lines
//! may end in CR LF and carry stray spaces at their ends. Every check digit is verified (a
//! misread character would otherwise cost a failed BAC and, on some cards, a retry counter).

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::date::Date;
use super::expiry::CardExpiry;
use super::id_number::CitizenId;
use crate::bac::{BacError, BacKey, check_digit};
use crate::lds::dg1::{Dg1Error, TD1_LEN, Td1};

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MrzTextError {
    #[error(
        "expected 3 lines of 30 characters or one of 90, got {lines} lines, {chars} characters"
    )]
    Shape { lines: usize, chars: usize },
    #[error(transparent)]
    Mrz(#[from] Dg1Error),
}

/// What BAC needs: document number, date of birth and date of expiry (`YYMMDD`, or `<<<<<<`
/// for a card without expiry). Debug shows nothing; wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct BacKeyMaterial {
    document_number: String,
    date_of_birth: String,
    date_of_expiry: String,
}

impl Drop for BacKeyMaterial {
    fn drop(&mut self) {
        self.document_number.zeroize();
        self.date_of_birth.zeroize();
        self.date_of_expiry.zeroize();
    }
}

impl fmt::Debug for BacKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BacKeyMaterial(<redacted>)")
    }
}

impl BacKeyMaterial {
    /// From a checked MRZ.
    pub fn from_mrz(mrz: &Td1) -> Self {
        BacKeyMaterial {
            document_number: mrz.document_number(),
            date_of_birth: mrz.date_of_birth().to_owned(),
            date_of_expiry: mrz.date_of_expiry_field().to_owned(),
        }
    }

    /// From what the desk knows without the MRZ: the ID (its last 9 digits are the document
    /// number), the date of birth, and the expiry computed by [`super::expiry::card_expiry`].
    pub fn from_citizen(id: &CitizenId, date_of_birth: Date, expiry: CardExpiry) -> Self {
        BacKeyMaterial {
            document_number: id.document_number().to_owned(),
            date_of_birth: date_of_birth.to_yymmdd(),
            date_of_expiry: expiry.mrz_field(),
        }
    }

    pub fn document_number(&self) -> &str {
        &self.document_number
    }

    /// `YYMMDD`.
    pub fn date_of_birth(&self) -> &str {
        &self.date_of_birth
    }

    /// `YYMMDD` or `<<<<<<`.
    pub fn date_of_expiry(&self) -> &str {
        &self.date_of_expiry
    }

    /// The MRZ information BAC hashes (ICAO 9303-11, 4.3.2): each field with its check digit,
    /// e.g. for a virtual card to be configured with.
    pub fn mrz_information(&self) -> Zeroizing<String> {
        let mut number = self.document_number.clone();
        while number.len() < 9 {
            number.push('<');
        }
        let mut out = Zeroizing::new(String::new());
        for field in [number.as_str(), &self.date_of_birth, &self.date_of_expiry] {
            out.push_str(field);
            out.push(char::from(b'0' + check_digit(field).unwrap_or(0)));
        }
        number.zeroize();
        out
    }

    /// The BAC document key.
    pub fn bac_key(&self) -> Result<BacKey, BacError> {
        BacKey::new(
            &self.document_number,
            &self.date_of_birth,
            &self.date_of_expiry,
        )
    }
}

/// Parses OCR text: 3 lines of 30 characters, or one line of 90; surrounding whitespace
/// and CR/LF ignored.
pub fn parse_text(text: &str) -> Result<Td1, MrzTextError> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let chars = lines.iter().map(|l| l.chars().count()).sum();
    let shape_ok = match lines.len() {
        1 => lines[0].len() == TD1_LEN,
        3 => lines.iter().all(|l| l.len() == TD1_LEN / 3),
        _ => false,
    };
    if !shape_ok {
        return Err(MrzTextError::Shape {
            lines: lines.len(),
            chars,
        });
    }
    Ok(Td1::parse(lines.concat().as_bytes())?)
}

/// OCR text straight to BAC key material.
pub fn key_material(text: &str) -> Result<BacKeyMaterial, MrzTextError> {
    Ok(BacKeyMaterial::from_mrz(&parse_text(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cccd::expiry::card_expiry;
    use crate::lds::build::{self, Td1Fields};

    fn lines(mrz: &str) -> String {
        format!("{}\r\n{}\r\n{}\r\n", &mrz[..30], &mrz[30..60], &mrz[60..])
    }

    #[test]
    fn three_lines_or_one() {
        let mrz = build::td1_mrz(&Td1Fields::cccd_example());
        for text in [
            lines(&mrz),
            mrz.clone(),
            format!("  {mrz}\n"),
            lines(&mrz).replace("\r\n", " \n "),
        ] {
            let key = key_material(&text).unwrap();
            assert_eq!(key.document_number(), "099012345");
            assert_eq!(key.date_of_birth(), "990115");
            assert_eq!(key.date_of_expiry(), "240115");
        }
    }

    #[test]
    fn no_expiry_card() {
        let mrz = build::td1_mrz(&Td1Fields {
            date_of_expiry: None,
            ..Td1Fields::cccd_example()
        });
        let key = key_material(&mrz).unwrap();
        assert_eq!(key.date_of_expiry(), "<<<<<<");
        assert!(key.bac_key().is_ok());
    }

    #[test]
    fn same_key_from_mrz_and_from_qr_data() {
        // The desk's two routes to BAC agree: MRZ text, or ID + birth date + computed expiry.
        let id = CitizenId::parse("001099012345").unwrap();
        let born = Date::new(1999, 1, 15).unwrap();
        let expiry = card_expiry(born, Date::new(2021, 7, 10).unwrap()).unwrap();
        assert_eq!(expiry, CardExpiry::On(Date::new(2024, 1, 15).unwrap()));
        let from_qr = BacKeyMaterial::from_citizen(&id, born, expiry);
        let from_mrz = key_material(&build::td1_mrz(&Td1Fields::cccd_example())).unwrap();
        assert_eq!(from_qr, from_mrz);
        let never = BacKeyMaterial::from_citizen(&id, born, CardExpiry::Never);
        assert_eq!(never.date_of_expiry(), "<<<<<<");
        assert_eq!(*never.mrz_information(), "09901234599901155<<<<<<0");
        // ICAO 9303-11 Appendix D's MRZ information from its three fields.
        let icao = key_material(&build::td1_mrz(&Td1Fields {
            document_number: "L898902C",
            date_of_birth: "690806",
            date_of_expiry: Some("940623"),
            ..Td1Fields::cccd_example()
        }));
        assert_eq!(*icao.unwrap().mrz_information(), "L898902C<369080619406236");
    }

    #[test]
    fn refuses_misread_text() {
        let mrz = build::td1_mrz(&Td1Fields::cccd_example());
        assert!(matches!(
            key_material(&mrz[..89]),
            Err(MrzTextError::Shape {
                lines: 1,
                chars: 89
            })
        ));
        assert!(matches!(
            key_material(&format!("{}\n{}", &mrz[..30], &mrz[30..])),
            Err(MrzTextError::Shape { lines: 2, .. })
        ));
        // A line of 31 characters and one of 29.
        assert!(matches!(
            key_material(&format!("{}\n{}\n{}", &mrz[..31], &mrz[31..60], &mrz[60..])),
            Err(MrzTextError::Shape { .. })
        ));
        // An OCR confusion (O for 0) in the date of birth.
        let misread = mrz.replacen("990115", "99O115", 1);
        assert!(matches!(key_material(&misread), Err(MrzTextError::Mrz(_))));
        // Multi-byte characters of the right count are not MRZ characters.
        let accented = format!("{}Ữ", &mrz[..89]);
        assert!(key_material(&accented).is_err());
    }

    #[test]
    fn debug_hides_key_material() {
        let key = key_material(&build::td1_mrz(&Td1Fields::cccd_example())).unwrap();
        assert_eq!(format!("{key:?}"), "BacKeyMaterial(<redacted>)");
    }
}
