//! deb822 control data (Release, Packages, .deb `control`): paragraphs of `Name: value`
//! fields separated by blank lines, values continued on lines that start with whitespace.

use super::Error;

/// One paragraph, borrowing from the text it came from.
#[derive(Debug, Clone)]
pub struct Paragraph<'a> {
    /// The paragraph exactly as written (for copying into dpkg's status file).
    pub text: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The value of a field (case-insensitive name), trimmed; continuation lines kept.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The value of a required field.
    pub fn require(&self, name: &str) -> Result<&'a str, Error> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            let who = self
                .get("Package")
                .map(|p| format!("package {p}"))
                .unwrap_or_else(|| "a paragraph".to_owned());
            Error::Control(format!("{who} has no {name} field"))
        })
    }
}

/// Splits `text` into paragraphs.
pub fn paragraphs(text: &str) -> Result<Vec<Paragraph<'_>>, Error> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut fields: Vec<(&str, usize, usize)> = Vec::new(); // name, value start, value end
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.trim().is_empty() {
            finish(text, &mut start, &mut fields, line_start, &mut out);
            continue;
        }
        if bare.starts_with('#') {
            continue;
        }
        if bare.starts_with([' ', '\t']) {
            let last = fields
                .last_mut()
                .ok_or_else(|| Error::Control(format!("continuation line without a field: `{}`", bare.trim())))?;
            last.2 = line_start + bare.len();
            continue;
        }
        let (name, _) = bare
            .split_once(':')
            .ok_or_else(|| Error::Control(format!("line is neither `Name: value` nor a continuation: `{bare}`")))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::Control(format!("bad field name in `{bare}`")));
        }
        start.get_or_insert(line_start);
        let value_start = line_start + name.len() + 1;
        fields.push((name, value_start, line_start + bare.len()));
    }
    finish(text, &mut start, &mut fields, pos, &mut out);
    Ok(out)
}

/// Closes the paragraph that began at `start`, if any.
fn finish<'a>(
    text: &'a str,
    start: &mut Option<usize>,
    fields: &mut Vec<(&'a str, usize, usize)>,
    end: usize,
    out: &mut Vec<Paragraph<'a>>,
) {
    if let Some(s) = start.take() {
        let fields = fields
            .drain(..)
            .map(|(n, a, b)| (n, text.get(a..b).unwrap_or_default().trim()))
            .collect();
        out.push(Paragraph {
            text: text.get(s..end).unwrap_or_default(),
            fields,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paragraphs_and_keeps_continuations() {
        let text = "Package: a\nVersion: 1\nDescription: short\n long line\n .\n\n\nPackage: b\nversion: 2\n";
        let ps = paragraphs(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\n long line\n ."));
        assert_eq!(
            ps[0].text,
            "Package: a\nVersion: 1\nDescription: short\n long line\n .\n"
        );
        assert_eq!(ps[1].get("Version"), Some("2"));
        assert!(
            ps[1]
                .require("Filename")
                .unwrap_err()
                .to_string()
                .contains("package b has no Filename")
        );
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        assert!(paragraphs(" orphan\n").unwrap_err().to_string().contains("orphan"));
        assert!(
            paragraphs("no colon here\n")
                .unwrap_err()
                .to_string()
                .contains("no colon here")
        );
    }
}
