//! Script checksums: `b3n1:<64 lowercase hex>`.
//!
//! Owns the text normalization that makes a checksum independent of the
//! checkout (UTF-8 BOM, CRLF or CR line endings) and the tagged blake3 digest
//! over the normalized text. The tag names the algorithm *and* the
//! normalization, so either can change later under a new tag without
//! invalidating checksums already recorded in ledgers.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::error::ParseError;

/// The tag of the current algorithm: blake3 over normalization 1 (BOM
/// stripped, CRLF and lone CR turned into LF).
pub const ALGORITHM: &str = "b3n1";

/// A tagged checksum of a script's text, e.g. `b3n1:af13…` (64 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(String);

impl Checksum {
    /// The checksum of `text`: blake3 over [`normalize`]`(text)`, so a copy
    /// with CRLF line endings or a BOM gives the same checksum as the LF copy.
    pub fn of(text: &str) -> Checksum {
        let hash = blake3::hash(normalize(text).as_bytes());
        Checksum(format!("{ALGORITHM}:{}", hash.to_hex()))
    }

    /// The full tagged form, e.g. `b3n1:af13…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Checksum {
    type Err = ParseError;

    /// Accepts only the current tag followed by 64 lowercase hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            ParseError::new(format!(
                "invalid checksum `{s}`; expected `{ALGORITHM}:` followed by 64 lowercase \
                 hex digits"
            ))
        };
        let (tag, hex) = s.split_once(':').ok_or_else(invalid)?;
        if tag != ALGORITHM {
            return Err(ParseError::new(format!(
                "unknown checksum algorithm `{tag}` in `{s}`; this shiftlog knows `{ALGORITHM}`"
            )));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid());
        }
        Ok(Checksum(s.to_owned()))
    }
}

impl serde::Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Normalizes script text the way checksums see it: strips one leading UTF-8
/// BOM and turns CRLF and lone CR into LF. Borrows when nothing changes.
pub fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            out.push('\n');
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LF: &str = "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n";

    #[test]
    fn crlf_and_lf_copies_have_the_same_checksum() {
        let crlf = LF.replace('\n', "\r\n");
        assert_eq!(Checksum::of(&crlf), Checksum::of(LF));
    }

    #[test]
    fn bom_and_lone_cr_do_not_change_the_checksum() {
        let with_bom = format!("\u{feff}{LF}");
        let old_mac = LF.replace('\n', "\r");
        assert_eq!(Checksum::of(&with_bom), Checksum::of(LF));
        assert_eq!(Checksum::of(&old_mac), Checksum::of(LF));
        assert_eq!(normalize("a\r\r\nb\rc"), "a\n\nb\nc");
    }

    #[test]
    fn content_changes_change_the_checksum() {
        assert_ne!(Checksum::of(LF), Checksum::of(&LF.replace("1", "2")));
        assert_ne!(Checksum::of("a\n"), Checksum::of("a\n\n"));
    }

    #[test]
    fn checksum_is_tagged_blake3_and_round_trips() {
        let sum = Checksum::of("");
        assert_eq!(
            sum.as_str(),
            "b3n1:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(sum.as_str().parse::<Checksum>(), Ok(sum.clone()));
        assert_eq!(sum.to_string(), sum.as_str());
    }

    #[test]
    fn checksum_parse_rejects_bad_tags_and_hex() {
        let hex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        assert!(format!("sha256:{hex}").parse::<Checksum>().is_err());
        assert!(
            format!("b3n1:{}", hex.to_uppercase())
                .parse::<Checksum>()
                .is_err()
        );
        assert!(format!("b3n1:{}", &hex[1..]).parse::<Checksum>().is_err());
        assert!(hex.parse::<Checksum>().is_err());
    }
}
