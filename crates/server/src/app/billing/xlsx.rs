//! A bill as an Office Open XML workbook (`.xlsx`), written here without a dependency: a
//! ZIP archive of stored (uncompressed) entries with CRC-32, holding the five parts a
//! spreadsheet program needs and one worksheet of inline strings and numbers. Amounts are
//! written as yuan numbers with two decimals, converted from fen as text (no float).

use super::*;

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, e) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *e = c;
    }
    let mut c = 0xFFFF_FFFFu32;
    for b in data {
        c = table[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// A ZIP archive of stored entries (names are ASCII here).
fn zip(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed to extract
            h.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u16.to_le_bytes()); // time
            h.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend_from_slice(&header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend_from_slice(&header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn esc(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\t' || *c == '\n')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) enum Cell {
    Text(String),
    Num(String),
}

fn col(i: usize) -> String {
    let mut n = i + 1;
    let mut s = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn sheet(rows: &[Vec<Cell>]) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        x.push_str(&format!(r#"<row r="{}">"#, r + 1));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", col(c), r + 1);
            match cell {
                Cell::Text(t) if t.is_empty() => {}
                Cell::Text(t) => x.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t>{}</t></is></c>"#,
                    esc(t)
                )),
                Cell::Num(n) => x.push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#)),
            }
        }
        x.push_str("</row>");
    }
    x.push_str("</sheetData></worksheet>");
    x
}

/// The bill as an `.xlsx` workbook: one row per line, the adjustments, the total.
pub fn bill_xlsx(b: &Bill) -> Vec<u8> {
    use Cell::*;
    let hdr = [
        "月份 month",
        "部门 department",
        "项目 project",
        "云服务商 provider",
        "资源ID resource_id",
        "类型 kind",
        "名称 name",
        "运行秒 running_secs",
        "停机或占用秒 stopped_secs",
        "vCPU秒",
        "内存MiB秒",
        "磁盘GiB秒",
        "GPU秒",
        "金额元 amount_yuan",
    ];
    let mut rows: Vec<Vec<Cell>> = vec![hdr.iter().map(|h| Text((*h).to_string())).collect()];
    for l in &b.lines {
        rows.push(vec![
            Text(b.month.clone()),
            Text(b.department_name.clone()),
            Text(l.project_name.clone()),
            Text(l.provider_name.clone()),
            Text(l.resource_id.clone()),
            Text(l.kind.as_str().into()),
            Text(l.name.clone()),
            Num(l.running_secs.to_string()),
            Num(l.stopped_secs.to_string()),
            Num(l.vcpu_secs.to_string()),
            Num(l.memory_mib_secs.to_string()),
            Num(l.disk_gib_secs.to_string()),
            Num(l.gpu_secs.to_string()),
            Num(l.amount.yuan()),
        ]);
    }
    for a in &b.adjustments {
        let mut r: Vec<Cell> = vec![
            Text(b.month.clone()),
            Text(b.department_name.clone()),
            Text(String::new()),
            Text(String::new()),
            Text(a.id.to_string()),
            Text("adjustment".into()),
            Text(a.reason.clone()),
        ];
        r.extend((0..6).map(|_| Text(String::new())));
        r.push(Num(a.amount.yuan()));
        rows.push(r);
    }
    let mut total: Vec<Cell> = vec![Text(b.month.clone()), Text(b.department_name.clone())];
    total.extend((0..4).map(|_| Text(String::new())));
    total.push(Text("合计 total".into()));
    total.extend((0..6).map(|_| Text(String::new())));
    total.push(Num(b.total.yuan()));
    rows.push(total);
    workbook(&[(format!("账单 {}", b.month), rows)])
}

/// A workbook of the given sheets (name, rows); names are cut to Excel's 31 characters.
pub(crate) fn workbook(sheets: &[(String, Vec<Vec<Cell>>)]) -> Vec<u8> {
    let mut ct = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>"#,
    );
    let mut list = String::new();
    let mut wb_rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (name, rows)) in sheets.iter().enumerate() {
        let n = i + 1;
        ct.push_str(&format!(
            r#"<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
        ));
        let short: String = name.chars().take(31).collect();
        list.push_str(&format!(
            r#"<sheet name="{}" sheetId="{n}" r:id="rId{n}"/>"#,
            esc(&short)
        ));
        wb_rels.push_str(&format!(
            r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        ));
        files.push((
            format!("xl/worksheets/sheet{n}.xml"),
            sheet(rows).into_bytes(),
        ));
    }
    ct.push_str("</Types>");
    wb_rels.push_str("</Relationships>");
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    let wb = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{list}</sheets></workbook>"#
    );
    let mut all: Vec<(&str, Vec<u8>)> = vec![
        ("[Content_Types].xml", ct.into_bytes()),
        ("_rels/.rels", rels.as_bytes().to_vec()),
        ("xl/workbook.xml", wb.into_bytes()),
        ("xl/_rels/workbook.xml.rels", wb_rels.into_bytes()),
    ];
    for (name, data) in &files {
        all.push((name.as_str(), data.clone()));
    }
    zip(&all)
}

/// A one-sheet workbook of text cells, as this module writes them (for the reader's tests).
#[cfg(test)]
pub(crate) fn test_workbook(rows: &[&[&str]]) -> Vec<u8> {
    let rows: Vec<Vec<Cell>> = rows
        .iter()
        .map(|r| r.iter().map(|c| Cell::Text((*c).to_string())).collect())
        .collect();
    zip(&[("xl/worksheets/sheet1.xml", sheet(&rows).into_bytes())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_column_names_are_right() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            (col(0), col(13), col(25), col(26), col(27)),
            ("A".into(), "N".into(), "Z".into(), "AA".into(), "AB".into())
        );
    }
}
