//! A bill as a printable PDF (A4) with Chinese text, written here without a dependency.
//! The text uses the standard Chinese CID font `STSong-Light` (Adobe-GB1) with the
//! `UniGB-UCS2-H` encoding, which PDF readers supply themselves (poppler through
//! poppler-data and the system's CJK fonts, Acrobat through its Asian font pack), so
//! nothing is embedded and the file stays small; strings are UTF-16BE, one `Tj` per cell.

use super::*;

const LINES_PER_PAGE: usize = 48;

/// UTF-16BE hex of a string; characters outside the BMP (not in UCS-2) become `?`.
pub(crate) fn hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for c in s.chars() {
        let u = u32::from(c);
        let u = if u > 0xFFFF || c.is_control() {
            u32::from('?')
        } else {
            u
        };
        out.push_str(&format!("{u:04X}"));
    }
    out
}

/// A page's content: text cells at (x, y) in points with a font size.
struct Page(Vec<(f32, f32, f32, String)>);

impl Page {
    fn text(&mut self, x: f32, y: f32, size: f32, s: &str) {
        self.0.push((x, y, size, s.to_string()));
    }
    fn stream(&self) -> String {
        let mut c = String::new();
        for (x, y, size, s) in &self.0 {
            c.push_str(&format!("BT /F1 {size} Tf {x} {y} Td <{}> Tj ET\n", hex(s)));
        }
        c
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars()
            .take(n.saturating_sub(1))
            .chain(std::iter::once('…'))
            .collect()
    }
}

/// The bill as PDF bytes.
pub fn bill_pdf(b: &Bill) -> Vec<u8> {
    let state = match b.state {
        BillState::Draft => "草稿（未月结）draft",
        BillState::Closed => "已月结 closed",
        BillState::Confirmed => "部门已确认 confirmed",
        BillState::Paid => "已支付 paid",
    };
    let mut rows: Vec<[String; 5]> = b
        .lines
        .iter()
        .map(|l| {
            [
                clip(&l.project_name, 14),
                clip(&l.name, 18),
                match l.kind {
                    ResourceKind::Instance => "云主机".into(),
                    ResourceKind::Volume => "云硬盘".into(),
                },
                format!(
                    "{}.{:02}",
                    l.running_secs / 3600,
                    l.running_secs % 3600 * 100 / 3600
                ),
                l.amount.yuan(),
            ]
        })
        .collect();
    for a in &b.adjustments {
        rows.push([
            "调整 adjustment".into(),
            clip(&a.reason, 18),
            String::new(),
            String::new(),
            a.amount.yuan(),
        ]);
    }
    let chunks: Vec<&[[String; 5]]> = if rows.is_empty() {
        vec![&rows[..]]
    } else {
        rows.chunks(LINES_PER_PAGE).collect()
    };
    let n_pages = chunks.len();
    let cols = [40.0f32, 170.0, 330.0, 390.0, 480.0];
    let mut pages = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut p = Page(Vec::new());
        p.text(
            40.0,
            800.0,
            16.0,
            &format!("政云 · 部门账单 Bill {}", b.month),
        );
        p.text(
            40.0,
            778.0,
            11.0,
            &format!("部门 Department：{}", b.department_name),
        );
        p.text(40.0, 762.0, 11.0, &format!("状态 State：{state}"));
        p.text(400.0, 762.0, 9.0, &format!("第 {} / {} 页", i + 1, n_pages));
        let heads = [
            "项目 project",
            "资源 resource",
            "类型 kind",
            "运行小时 h",
            "金额（元）",
        ];
        for (x, h) in cols.iter().zip(heads) {
            p.text(*x, 736.0, 9.0, h);
        }
        let mut y = 720.0;
        for r in chunk.iter() {
            for (x, v) in cols.iter().zip(r.iter()) {
                p.text(*x, y, 9.0, v);
            }
            y -= 14.0;
        }
        if i + 1 == n_pages {
            y -= 8.0;
            p.text(
                40.0,
                y,
                11.0,
                &format!("用量 Usage：{}", b.usage_total.yuan()),
            );
            p.text(
                200.0,
                y,
                11.0,
                &format!("调整 Adjustments：{}", b.adjustments_total.yuan()),
            );
            p.text(400.0, y, 12.0, &format!("合计 Total：{}", b.total.yuan()));
        }
        pages.push(p.stream());
    }
    document(&pages)
}

/// A PDF (A4 pages) of the given content streams, with the Chinese font as `/F1`.
pub(crate) fn document(pages: &[String]) -> Vec<u8> {
    let n_pages = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, 4 CID font, 5 descriptor, then page + content pairs.
    let mut objs: Vec<Vec<u8>> = Vec::new();
    let kids: Vec<String> = (0..n_pages).map(|i| format!("{} 0 R", 6 + 2 * i)).collect();
    objs.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objs.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n_pages} >>",
            kids.join(" ")
        )
        .into_bytes(),
    );
    objs.push(b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [4 0 R] >>".to_vec());
    objs.push(b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /FontDescriptor 5 0 R /DW 1000 /W [1 95 500] >>".to_vec());
    objs.push(b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>".to_vec());
    for (i, content) in pages.iter().enumerate() {
        objs.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                7 + 2 * i
            )
            .into_bytes(),
        );
        let mut s = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        s.extend_from_slice(content.as_bytes());
        s.extend_from_slice(b"\nendstream");
        objs.push(s);
    }
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_ucs2_and_long_names_are_clipped() {
        assert_eq!(hex("政A"), "653F0041");
        assert_eq!(hex("😀"), "003F");
        assert_eq!(clip("一二三四五", 3), "一二…");
    }
}
