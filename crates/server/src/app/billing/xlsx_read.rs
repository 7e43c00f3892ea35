//! Reading a provider's XLSX workbook for reconciliation: the first worksheet's cells as
//! CSV text, so one parser (and one column mapping) serves both formats. An XLSX file is
//! a ZIP of XML parts; this reads the ZIP's central directory, inflates the two parts it
//! needs (`xl/sharedStrings.xml` and the first worksheet) with bounded sizes, and walks
//! their `<c>` cells. Formulas are read by their cached values, as Excel saved them.

use zy_model::{t, Error};

/// Largest part inflated (a guard against ZIP bombs).
const MAX_PART: usize = 64 * 1024 * 1024;

fn bad(why: &str) -> Error {
    Error::validation(
        "xlsx_base64",
        t!("不是可读取的 XLSX 文件：{}" ; "not a readable XLSX file: {}", why),
    )
}

fn u16_at(b: &[u8], i: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], i: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
}

/// A ZIP entry: its name, compression method and compressed bytes.
type Entry<'a> = (String, usize, &'a [u8]);

/// The ZIP entries.
fn entries(zip: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    // The end-of-central-directory record is in the last 64 KiB + 22 bytes.
    let from = zip.len().saturating_sub(65_557);
    let eocd = (from..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| zip[i..].starts_with(&[0x50, 0x4b, 0x05, 0x06]))
        .ok_or_else(|| bad("no ZIP directory"))?;
    let count = u16_at(zip, eocd + 10).ok_or_else(|| bad("short directory"))?;
    let mut at = u32_at(zip, eocd + 16).ok_or_else(|| bad("short directory"))?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        if !zip
            .get(at..)
            .is_some_and(|r| r.starts_with(&[0x50, 0x4b, 0x01, 0x02]))
        {
            return Err(bad("damaged directory"));
        }
        let field = |o: usize| u16_at(zip, at + o).ok_or_else(|| bad("damaged directory"));
        let method = field(10)?;
        let size = u32_at(zip, at + 20).ok_or_else(|| bad("damaged directory"))?;
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let local = u32_at(zip, at + 42).ok_or_else(|| bad("damaged directory"))?;
        let name = zip
            .get(at + 46..at + 46 + name_len)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(|| bad("damaged directory"))?;
        // The data follows the local header, whose name and extra lengths may differ.
        let lname = u16_at(zip, local + 26).ok_or_else(|| bad("damaged entry"))?;
        let lextra = u16_at(zip, local + 28).ok_or_else(|| bad("damaged entry"))?;
        let start = local + 30 + lname + lextra;
        let data = zip
            .get(start..start + size)
            .ok_or_else(|| bad("damaged entry"))?;
        out.push((name, method, data));
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

fn part(zip: &[u8], name: impl Fn(&str) -> bool) -> Result<Option<String>, Error> {
    let mut found: Vec<_> = entries(zip)?
        .into_iter()
        .filter(|(n, _, _)| name(n))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let Some((_, method, data)) = found.into_iter().next() else {
        return Ok(None);
    };
    let raw = match method {
        0 => data.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, MAX_PART)
            .map_err(|_| bad("a part cannot be inflated or is too large"))?,
        _ => return Err(bad("unsupported compression")),
    };
    String::from_utf8(raw)
        .map(Some)
        .map_err(|_| bad("a part is not UTF-8"))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The text of every `<t>` element inside `xml` (a shared string or an inline string may
/// be split into runs).
fn texts(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<t") {
        let after = &rest[i + 2..];
        // `<t>` or `<t xml:space="preserve">`, not `<tc…>` or the like.
        if !(after.starts_with('>') || after.starts_with(' ')) {
            rest = after;
            continue;
        }
        let Some(open_end) = after.find('>') else {
            break;
        };
        if after[..open_end].ends_with('/') {
            rest = &after[open_end + 1..];
            continue;
        }
        let body = &after[open_end + 1..];
        let Some(close) = body.find("</t>") else {
            break;
        };
        out.push_str(&unescape(&body[..close]));
        rest = &body[close + 4..];
    }
    out
}

fn shared_strings(xml: &str) -> Vec<String> {
    xml.split("<si>")
        .skip(1)
        .map(|si| texts(si.split("</si>").next().unwrap_or("")))
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    tag[i..].split('"').next()
}

/// `C7` → column index 2.
fn column(r: &str) -> usize {
    r.chars()
        .take_while(char::is_ascii_alphabetic)
        .fold(0, |n, c| {
            n * 26 + (c.to_ascii_uppercase() as usize - 'A' as usize + 1)
        })
        .saturating_sub(1)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The first worksheet of an XLSX file as CSV text (one line per row, empty cells kept).
pub fn first_sheet_as_csv(xlsx: &[u8]) -> Result<String, Error> {
    let strings = part(xlsx, |n| n == "xl/sharedStrings.xml")?
        .map(|x| shared_strings(&x))
        .unwrap_or_default();
    let sheet = part(xlsx, |n| {
        n.starts_with("xl/worksheets/") && n.ends_with(".xml") && !n.contains("/_rels/")
    })?
    .ok_or_else(|| bad("no worksheet"))?;
    let mut csv = String::new();
    for row in sheet.split("<row").skip(1) {
        let row = row.split("</row>").next().unwrap_or("");
        let mut cells: Vec<String> = Vec::new();
        for c in row.split("<c").skip(1) {
            let Some(tag_end) = c.find('>') else { continue };
            let tag = &c[..tag_end];
            if !(tag.is_empty() || tag.starts_with(' ')) {
                continue;
            }
            let idx = attr(tag, "r").map(column).unwrap_or(cells.len());
            let body = if tag.ends_with('/') {
                ""
            } else {
                c[tag_end + 1..].split("</c>").next().unwrap_or("")
            };
            let v = body
                .split("<v>")
                .nth(1)
                .and_then(|v| v.split("</v>").next())
                .map(unescape);
            let value = match attr(tag, "t") {
                Some("s") => v
                    .and_then(|k| k.trim().parse::<usize>().ok())
                    .and_then(|k| strings.get(k).cloned())
                    .unwrap_or_default(),
                Some("inlineStr") => texts(body),
                _ => v.unwrap_or_default(),
            };
            if idx > 16_384 {
                return Err(bad("a cell lies beyond the last column"));
            }
            if cells.len() <= idx {
                cells.resize(idx + 1, String::new());
            }
            cells[idx] = value;
        }
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ZIP with each part deflated, as spreadsheet programs write them.
    fn deflated_zip(files: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut dir = Vec::new();
        for (name, text) in files {
            let data = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 6);
            let offset = out.len() as u32;
            let mut h = vec![0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0];
            h.extend_from_slice(&0u32.to_le_bytes()); // crc: not checked by the reader
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(text.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(&data);
            let mut d = vec![0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0];
            d.extend_from_slice(&0u32.to_le_bytes());
            d.extend_from_slice(&(data.len() as u32).to_le_bytes());
            d.extend_from_slice(&(text.len() as u32).to_le_bytes());
            d.extend_from_slice(&(name.len() as u16).to_le_bytes());
            d.extend_from_slice(&[0; 12]);
            d.extend_from_slice(&offset.to_le_bytes());
            d.extend_from_slice(name.as_bytes());
            dir.extend_from_slice(&d);
        }
        let at = out.len() as u32;
        out.extend_from_slice(&dir);
        let mut e = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0];
        e.extend_from_slice(&(files.len() as u16).to_le_bytes());
        e.extend_from_slice(&(files.len() as u16).to_le_bytes());
        e.extend_from_slice(&(dir.len() as u32).to_le_bytes());
        e.extend_from_slice(&at.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e);
        out
    }

    #[test]
    fn a_deflated_workbook_reads_as_csv_with_shared_and_inline_strings() {
        let strings = r#"<sst><si><t>资源ID</t></si><si><t>用量小时</t></si><si><r><t>金</t></r><r><t xml:space="preserve">额</t></r></si><si><t>vm-1, "a"</t></si></sst>"#;
        let sheet = r#"<worksheet><sheetData>
            <row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>
            <row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2"><v>720</v></c><c r="C2"><f>B2*0.5</f><v>360.00</v></c></row>
            <row r="3"><c r="A3" t="inlineStr"><is><t>vol-&amp;2</t></is></c><c r="C3"><v>12.5</v></c></row>
        </sheetData></worksheet>"#;
        let x = deflated_zip(&[
            ("[Content_Types].xml", "<Types/>"),
            ("xl/sharedStrings.xml", strings),
            ("xl/worksheets/sheet1.xml", sheet),
        ]);
        let csv = first_sheet_as_csv(&x).expect("csv");
        assert_eq!(
            csv,
            "资源ID,用量小时,金额\n\"vm-1, \"\"a\"\"\",720,360.00\nvol-&2,,12.5\n"
        );
    }

    #[test]
    fn what_is_not_a_workbook_gets_a_clear_error() {
        for junk in [&b""[..], b"PK\x03\x04 not really", b"plain text, not a zip"] {
            let e = first_sheet_as_csv(junk).expect_err("refused");
            assert_eq!(e.code, zy_model::ErrorCode::ValidationFailed);
        }
        let no_sheet = deflated_zip(&[("xl/sharedStrings.xml", "<sst/>")]);
        assert!(first_sheet_as_csv(&no_sheet).is_err());
    }

    #[test]
    fn our_own_bill_export_reads_back() {
        let zip = super::super::xlsx::test_workbook(&[&["资源ID", "金额"], &["vm-9", "1.23"]]);
        assert_eq!(
            first_sheet_as_csv(&zip).expect("csv"),
            "资源ID,金额\nvm-9,1.23\n"
        );
    }
}
