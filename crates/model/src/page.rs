//! Cursor paging. A page is at most [`MAX_LIMIT`] items; the cursor is opaque to clients
//! (base64url JSON of the sort key and id of the last item) and tied to the sort it was
//! made for, so a cursor from one sort cannot silently be used with another.

use crate::{t, Error};
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// A field lists can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    Name,
    CreatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Sort {
    /// Parses `name`, `-name`, `created_at`, `-created_at`.
    pub fn parse(s: Option<&str>) -> Result<Sort, Error> {
        let s = s.unwrap_or("name");
        let (descending, f) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = match f {
            "name" => SortField::Name,
            "created_at" => SortField::CreatedAt,
            _ => {
                return Err(Error::invalid(t!(
                    "排序字段 {:?} 无效：可用 name、-name、created_at、-created_at" ;
                    "sort {:?} is not valid: use name, -name, created_at or -created_at",
                    crate::validate::clip(s, 40)
                )))
            }
        };
        Ok(Sort { field, descending })
    }
}

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Which sort this cursor belongs to.
    pub s: SortField,
    pub d: bool,
    /// The sort key of the last item (name, or created-at micros as text).
    pub k: String,
    /// The id of the last item, breaking ties.
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str, sort: Sort) -> Result<Cursor, Error> {
        let bad = || {
            Error::invalid(t!(
                "分页游标无效或已过期，请从第一页重新获取",
                "The page cursor is not valid; start again from the first page"
            ))
        };
        if s.len() > 2048 {
            return Err(bad());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.s != sort.field || c.d != sort.descending || uuid::Uuid::parse_str(&c.id).is_err() {
            return Err(bad());
        }
        if c.s == SortField::CreatedAt && c.k.parse::<i64>().is_err() {
            return Err(bad());
        }
        Ok(c)
    }
}

/// Validated paging parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub sort: Sort,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn parse(
        limit: Option<i64>,
        cursor: Option<&str>,
        sort: Option<&str>,
    ) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=MAX_LIMIT as i64).contains(&l) => l as u32,
            Some(_) => {
                return Err(Error::invalid(t!(
                    "每页条数 limit 须在 1 到 {} 之间" ; "limit must be between 1 and {}",
                    MAX_LIMIT
                )))
            }
        };
        let sort = Sort::parse(sort)?;
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(Cursor::decode(c, sort)?),
        };
        Ok(PageRequest { limit, sort, after })
    }
}

/// One page of results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_limits_are_refused() {
        for l in [0, -1, 1001, i64::MAX, i64::MIN] {
            assert!(PageRequest::parse(Some(l), None, None).is_err(), "{l}");
        }
        assert_eq!(
            PageRequest::parse(Some(1000), None, None)
                .map(|p| p.limit)
                .ok(),
            Some(1000)
        );
    }

    #[test]
    fn a_cursor_only_works_with_its_own_sort() {
        let c = Cursor {
            s: SortField::Name,
            d: false,
            k: "卫计委".into(),
            id: uuid::Uuid::now_v7().to_string(),
        };
        let enc = c.encode();
        let by_name = Sort::parse(Some("name")).ok();
        let by_name_desc = Sort::parse(Some("-name")).ok();
        assert_eq!(by_name.map(|s| Cursor::decode(&enc, s).ok()), Some(Some(c)));
        assert!(by_name_desc
            .map(|s| Cursor::decode(&enc, s).is_err())
            .unwrap_or(false));
        assert!(PageRequest::parse(None, Some("not-a-cursor!!"), None).is_err());
    }
}
