//! Bilingual user-facing text. Chinese first: every message a person may read exists in
//! zh-CN and en, and the response picks one from the request's `Accept-Language`.

use std::borrow::Cow;

/// A message in both languages the console and CLI speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub zh: Cow<'static, str>,
    pub en: Cow<'static, str>,
}

/// The language a response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// Picks a language from an `Accept-Language` header: English only when the client
    /// prefers it, zh-CN otherwise (the platform's default).
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(h) = header else { return Lang::Zh };
        for part in h.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Lang::Zh;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::Zh
    }
}

impl Text {
    pub fn new(zh: impl Into<Cow<'static, str>>, en: impl Into<Cow<'static, str>>) -> Self {
        Text {
            zh: zh.into(),
            en: en.into(),
        }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Zh => &self.zh,
            Lang::En => &self.en,
        }
    }
}

/// `t!("中文", "English")` or `t!("{}已存在" ; "{} already exists", name)`.
#[macro_export]
macro_rules! t {
    ($zh:literal, $en:literal) => {
        $crate::Text::new($zh, $en)
    };
    ($zh:literal ; $en:literal, $($arg:tt)*) => {
        $crate::Text::new(format!($zh, $($arg)*), format!($en, $($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_the_default_and_english_must_be_asked_for() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("fr-FR, de")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("zh-CN,en;q=0.5")), Lang::Zh);
    }
}
