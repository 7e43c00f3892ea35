//! Printing results: aligned tables for people (CJK characters count double width), or
//! the server's JSON unchanged with `--json` for scripts.

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

/// A cell's text: strings as they are, null as "-", other values as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "是 yes".into()
            } else {
                "否 no".into()
            }
        }
        other => other.to_string(),
    }
}

/// Prints rows under headers; `cols` are (header, JSON field) pairs.
pub fn table(items: &[Value], cols: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|it| cols.iter().map(|(_, f)| cell(&it[*f])).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|(h, _)| h.width()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.width()).min(60);
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let shown: String = if c.width() > 60 {
                c.chars().take(57).collect::<String>() + "…"
            } else {
                c.clone()
            };
            out.push_str(&shown);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i].saturating_sub(shown.width()) + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(cols.iter().map(|(h, _)| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

/// Prints one object as `field: value` lines.
pub fn record(v: &Value, fields: &[(&str, &str)]) {
    let w = fields.iter().map(|(h, _)| h.width()).max().unwrap_or(0);
    for (h, f) in fields {
        println!("{h}{}  {}", " ".repeat(w - h.width()), cell(&v[*f]));
    }
}

pub fn json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// One object: as `field: value` lines, or the JSON with `--json`.
pub fn one(v: &Value, fields: &[(&str, &str)], as_json: bool) {
    if as_json {
        json(v)
    } else {
        record(v, fields)
    }
}
