//! The `ListObjectsV2` answer (XML): the objects of one page and where the next one starts.
//! Pure, and fuzzed: a server's answer is outside input.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::ObjectInfo;

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<ObjectInfo>,
    /// Set when the listing goes on: the `continuation-token` of the next request.
    pub next: Option<String>,
}

/// Reads one `ListBucketResult`; the error says what is wrong with it.
pub fn parse(xml: &[u8]) -> Result<Page, String> {
    let mut reader = Reader::from_reader(xml);
    let mut page = Page::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut truncated = false;
    let mut token = None;
    let mut current: Option<ObjectInfo> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| format!("not XML: {e}"))? {
            Event::Start(tag) => {
                let name = tag.name().0.to_owned();
                if name == "Contents" && path.len() == 1 {
                    current = Some(ObjectInfo::default());
                }
                path.push(name);
                text.clear();
                if path.len() > 8 {
                    return Err("nested too deeply".into());
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| format!("bad reference: {e}"))? {
                    Some(c) => c.to_string(),
                    None => {
                        let entity = format!("&{};", r.xml10_content());
                        quick_xml::escape::unescape(&entity)
                            .map_err(|e| format!("bad reference: {e}"))?
                            .into_owned()
                    }
                };
                text.push_str(&resolved);
            }
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    ["ListBucketResult", "IsTruncated"] => truncated = value.trim() == "true",
                    ["ListBucketResult", "NextContinuationToken"] => token = Some(value),
                    ["ListBucketResult", "Contents"] => {
                        let object = current.take().ok_or("an object closed twice")?;
                        if object.key.is_empty() {
                            return Err("an object without a key".into());
                        }
                        page.objects.push(object);
                    }
                    ["ListBucketResult", "Contents", field] => {
                        let object = current.as_mut().ok_or("a field outside an object")?;
                        match *field {
                            "Key" => object.key = value,
                            "Size" => {
                                object.size = value.trim().parse().map_err(|_| format!("bad size `{value}`"))?;
                            }
                            "ETag" => object.etag = Some(value.trim().trim_matches('"').to_owned()),
                            _ => {}
                        }
                    }
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err("the document ends inside an element".into());
    }
    page.next = match (truncated, token) {
        (true, Some(token)) if !token.is_empty() => Some(token),
        (true, _) => return Err("a truncated listing without a continuation token".into()),
        (false, _) => None,
    };
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_objects_and_the_next_page() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<Contents><Key>pg/wals/a &amp; b</Key><Size>16328</Size><ETag>&quot;0f3a&quot;</ETag></Contents>
<Contents><Key>pg/base/x/backup.info</Key><Size>1117</Size></Contents>
<NextContinuationToken>abc+/=</NextContinuationToken></ListBucketResult>"#;
        let page = parse(xml).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "pg/wals/a & b");
        assert_eq!(page.objects[0].size, 16328);
        assert_eq!(page.objects[0].etag.as_deref(), Some("0f3a"));
        assert_eq!(page.next.as_deref(), Some("abc+/="));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        for bad in [
            &b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"[..],
            b"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
            b"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
            b"<ListBucketResult><Contents>",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
