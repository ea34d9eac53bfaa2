//! One linear pass over a message's header section, before any signature is looked at:
//! whether every field name is clean (printable, no space before the colon: mail-parser
//! reads `Subject :` as Subject while DKIM sees another field, so a signed mail could carry
//! an unsigned twin), and how often each field occurs.

use std::collections::HashMap;

/// What the header section holds.
#[derive(Debug, Default)]
pub(crate) struct HeaderScan {
    /// A field name with spaces, controls or no colon: nothing about the mail is checked.
    pub malformed: bool,
    /// Fields by lowercase name, and how many times each occurs.
    counts: HashMap<String, usize>,
    /// How many fields there are in all.
    pub fields: usize,
}

impl HeaderScan {
    /// Scans the header section of `raw` (up to the first empty line).
    pub(crate) fn of(raw: &[u8]) -> HeaderScan {
        let mut scan = HeaderScan::default();
        for line in raw.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // A folded continuation of the field above; with none above, mail-parser
                // reads it as a field of its own and DKIM as another name.
                if scan.fields == 0 {
                    scan.malformed = true;
                }
                continue;
            }
            scan.fields += 1;
            match line.iter().position(|&b| b == b':') {
                Some(end) if end > 0 && line[..end].iter().all(|&b| b.is_ascii_graphic()) => {
                    let name = String::from_utf8_lossy(&line[..end]).to_ascii_lowercase();
                    *scan.counts.entry(name).or_default() += 1;
                }
                _ => scan.malformed = true,
            }
        }
        scan
    }

    /// How many times the field `name` (lowercase) occurs.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// The signatures a DKIM or ARC check would hash the body for.
    pub(crate) fn signatures(&self) -> usize {
        self.count("dkim-signature") + self.count("arc-message-signature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_counted_and_bad_ones_noticed() {
        let scan = HeaderScan::of(
            b"From: a@b.test\r\nDKIM-Signature: v=1;\r\n h=from\r\nSubject: x\r\n\r\nSubject : body\r\n",
        );
        assert!(!scan.malformed);
        assert_eq!(
            (scan.count("from"), scan.count("subject"), scan.signatures()),
            (1, 1, 1)
        );
        for bad in [
            &b"From: a@b.test\r\nSubject : twin\r\n\r\n"[..],
            b"From: a@b.test\r\nDKIM-Signature : v=1\r\n\r\n",
            b"no colon here\r\n\r\n",
            b": empty name\r\n\r\n",
            b"Sub\x01ject: control\r\n\r\n",
            b" In-Reply-To: <x@y>\r\nFrom: a@b.test\r\n\r\n",
            b"\tCc: spy@evil.test\r\nFrom: a@b.test\r\n\r\n",
        ] {
            assert!(
                HeaderScan::of(bad).malformed,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
