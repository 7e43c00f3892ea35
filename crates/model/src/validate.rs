//! Input rules shared by the API and the CLI. Each check returns a validation error that
//! names the field and says what is allowed.

use crate::{t, Error};

/// At most `n` characters of `s`, for echoing bad input back safely.
pub fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A display name (department, project, user's full name): 1–64 characters after trimming,
/// no control characters. Any script is welcome.
pub fn name(field: &str, value: &str) -> Result<String, Error> {
    let v = value.trim();
    let len = v.chars().count();
    if len == 0 {
        return Err(Error::validation(
            field,
            t!("{}不能为空" ; "{} must not be empty", field),
        ));
    }
    if len > 64 {
        return Err(Error::validation(
            field,
            t!("{}最多 64 个字符（当前 {} 个）" ; "{} must be at most 64 characters (it has {})", field, len),
        ));
    }
    if v.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        return Err(Error::validation(
            field,
            t!("{}不能包含控制字符或不可见的格式字符" ; "{} must not contain control or invisible formatting characters", field),
        ));
    }
    Ok(v.to_string())
}

/// Invisible format characters that make a name look other than it is: bidirectional
/// embeddings, overrides and isolates (a name shown reversed), zero-width spaces, the byte
/// order mark, the soft hyphen (a name that looks empty). The zero-width joiner stays:
/// emoji sequences use it.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// The name given to a batch: each member is called `<name><suffix>` (`web-001`, …), so the
/// name must leave room for a suffix of `suffix_len` characters within the 64 of [`name`].
/// With `suffix_len` 0 (a batch of one, no suffix) this is [`name`].
pub fn batch_name(field: &str, value: &str, suffix_len: usize) -> Result<String, Error> {
    let v = name(field, value)?;
    let len = v.chars().count();
    let room = 64usize.saturating_sub(suffix_len);
    if suffix_len > 0 && len > room {
        return Err(Error::validation(
            field,
            t!("批量创建时会追加 {} 个字符的序号后缀，{}最多 {} 个字符（当前 {} 个）" ;
               "several are created at once, so a {}-character suffix is appended: {} must be at most {} characters (it has {})",
               suffix_len, field, room, len),
        )
        .with_details(serde_json::json!({ "field": field, "max_length": room, "suffix_length": suffix_len })));
    }
    Ok(v)
}

/// Free text such as a description: at most 1024 characters; newlines and tabs allowed.
pub fn description(field: &str, value: &str) -> Result<String, Error> {
    let len = value.chars().count();
    if len > 1024 {
        return Err(Error::validation(
            field,
            t!("{}最多 1024 个字符" ; "{} must be at most 1024 characters", field),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::validation(
            field,
            t!("{}不能包含控制字符" ; "{} must not contain control characters", field),
        ));
    }
    Ok(value.to_string())
}

/// A login name: 3–32 characters of a–z, 0–9, `.`, `_`, `-`, starting with a letter.
pub fn username(value: &str) -> Result<String, Error> {
    let v = value.trim();
    let ok = (3..=32).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Error::validation(
            "username",
            t!("用户名须为 3–32 位小写字母、数字或 . _ -，并以字母开头", "username must be 3–32 characters of a–z, 0–9, '.', '_' or '-', starting with a letter"),
        ));
    }
    Ok(v.to_string())
}

/// An optional e-mail address: a plain sanity check, at most 254 characters.
pub fn email(value: &str) -> Result<String, Error> {
    let v = value.trim();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(a, b)| {
            !a.is_empty() && b.contains('.') && !b.starts_with('.') && !b.ends_with('.')
        })
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::validation(
            "email",
            t!("电子邮件地址格式不正确", "e-mail address is not valid"),
        ));
    }
    Ok(v.to_string())
}

/// An optional phone number: digits, spaces, `+` and `-`, 5–20 characters.
pub fn phone(value: &str) -> Result<String, Error> {
    let v = value.trim();
    let ok = (5..=20).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' '));
    if !ok {
        return Err(Error::validation(
            "phone",
            t!("电话号码格式不正确", "phone number is not valid"),
        ));
    }
    Ok(v.to_string())
}

/// A free-text search filter: at most 64 characters.
pub fn search(value: &str) -> Result<String, Error> {
    if value.chars().count() > 64 || value.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(t!(
            "搜索条件 q 最多 64 个字符且不能含控制字符",
            "search filter q must be at most 64 characters without control characters"
        )));
    }
    Ok(value.to_string())
}

/// A department code used in reports and bills: 1–16 of A–Z, 0–9, `-`, `_`.
pub fn code(value: &str) -> Result<String, Error> {
    let v = value.trim();
    let ok = (1..=16).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Error::validation(
            "code",
            t!(
                "编码须为 1–16 位大写字母、数字、- 或 _",
                "code must be 1–16 characters of A–Z, 0–9, '-' or '_'"
            ),
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chinese_names_are_welcome_and_blank_ones_are_not() {
        assert_eq!(
            name("name", "  宜宾市卫生和计划生育委员会 ")
                .ok()
                .as_deref(),
            Some("宜宾市卫生和计划生育委员会")
        );
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(name("name", &"长".repeat(65)).is_err());
    }

    #[test]
    fn names_cannot_hide_or_reverse_text() {
        assert!(name("name", "\u{feff}\u{200b}").is_err(), "looks empty");
        assert!(
            name("name", "\u{202e}evil\u{202d}").is_err(),
            "shows reversed"
        );
        assert!(name("name", "a\u{2066}b").is_err());
        assert!(
            name("name", "家庭👨\u{200d}👩\u{200d}👧").is_ok(),
            "emoji sequences"
        );
    }

    #[test]
    fn batch_names_leave_room_for_their_suffix() {
        let at_max = "长".repeat(64);
        assert!(batch_name("name", &at_max, 0).is_ok());
        let e = batch_name("name", &at_max, 4).expect_err("64 + 4 characters");
        assert_eq!(
            e.details,
            Some(serde_json::json!({ "field": "name", "max_length": 60, "suffix_length": 4 }))
        );
        assert!(batch_name("name", &"长".repeat(60), 4).is_ok());
    }

    #[test]
    fn usernames_are_plain_ascii() {
        assert!(username("zhang.san").is_ok());
        assert!(username("张三").is_err());
        assert!(username("Admin").is_err());
        assert!(username("ab").is_err());
    }

    proptest! {
        #[test]
        fn validation_never_panics_on_any_unicode(s in "\\PC*") {
            let _ = name("name", &s);
            let _ = description("description", &s);
            let _ = username(&s);
            let _ = email(&s);
            let _ = phone(&s);
        }
    }
}
