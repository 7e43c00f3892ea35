//! A small SQL builder that numbers placeholders `$1, $2, …` (understood by both SQLite and
//! PostgreSQL) and adds keyset paging the same way for every list.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;
use zy_model::page::{PageRequest, SortField};

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I64(i64),
    Text(String),
    /// A text value that may be NULL.
    OptText(Option<String>),
}

pub(crate) struct Sql {
    pub text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    pub fn bind_text(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Arg::Text(s.into()))
    }

    pub fn bind_opt_text(&mut self, s: Option<String>) -> &mut Self {
        self.bind(Arg::OptText(s))
    }

    /// `col IN ($n, …)`; an empty list matches nothing.
    pub fn push_in(&mut self, col: &str, values: impl IntoIterator<Item = String>) -> &mut Self {
        let values: Vec<String> = values.into_iter().collect();
        if values.is_empty() {
            return self.push("1 = 0");
        }
        self.push(col).push(" IN (");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind_text(v);
        }
        self.push(")")
    }

    /// ` AND (department_id IN (…) OR <project_col> IN (…))`: the rows a caller may see
    /// when they hold roles in some departments and some projects. `None` for both adds
    /// nothing (everything is visible).
    pub fn push_visible(
        &mut self,
        project_col: &str,
        departments: Option<&[zy_model::id::DepartmentId]>,
        projects: Option<&[zy_model::id::ProjectId]>,
    ) -> &mut Self {
        if departments.is_none() && projects.is_none() {
            return self;
        }
        self.push(" AND (")
            .push_in(
                "department_id",
                departments.unwrap_or(&[]).iter().map(|d| d.to_string()),
            )
            .push(" OR ")
            .push_in(
                project_col,
                projects.unwrap_or(&[]).iter().map(|p| p.to_string()),
            )
            .push(")")
    }

    /// A case-insensitive substring filter on `col` (`%` and `_` in the input are literal).
    pub fn push_contains(&mut self, col: &str, needle: &str) -> &mut Self {
        let escaped: String = needle
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        self.push("LOWER(").push(col).push(") LIKE ");
        self.bind_text(format!("%{escaped}%"));
        self.push(" ESCAPE '\\'")
    }

    /// Appends ` AND (key, id) > (…)` for the cursor, then ORDER BY and LIMIT (one extra
    /// row, to know whether another page follows).
    pub fn push_page(
        &mut self,
        page: &PageRequest,
        name_col: &str,
        created_col: &str,
        id_col: &str,
    ) -> &mut Self {
        let key_col = match page.sort.field {
            SortField::Name => name_col,
            SortField::CreatedAt => created_col,
        };
        let (cmp, dir) = if page.sort.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(c) = &page.after {
            self.push(" AND (")
                .push(key_col)
                .push(", ")
                .push(id_col)
                .push(") ")
                .push(cmp)
                .push(" (");
            match page.sort.field {
                SortField::Name => self.bind_text(c.k.clone()),
                SortField::CreatedAt => self.bind(Arg::I64(c.k.parse().unwrap_or(0))),
            };
            self.push(", ").bind_text(c.id.clone()).push(")");
        }
        let order = format!(
            " ORDER BY {key_col} {dir}, {id_col} {dir} LIMIT {}",
            page.limit as i64 + 1
        );
        self.push(&order)
    }

    /// Runs the query and decodes every row: on SQLite through the blocking reader (one
    /// thread hop per query), on PostgreSQL through sqlx.
    pub async fn fetch_all<T: crate::rows::Decode>(
        &self,
        store: &crate::Store,
    ) -> Result<Vec<T>, zy_model::Error> {
        match store.reader() {
            Some(reader) => reader
                .fetch_all(self.text.clone(), self.args.clone())
                .await?
                .iter()
                .map(T::decode)
                .collect(),
            None => self
                .query()
                .fetch_all(store.pool())
                .await
                .map_err(crate::db_error)?
                .iter()
                .map(T::decode)
                .collect(),
        }
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::OptText(v) => q.bind(v.as_deref()),
            };
        }
        q
    }
}

/// Common list filters: a substring of the name.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub q: Option<String>,
}

/// Cuts the extra row off and makes the next cursor from the last item kept.
pub(crate) fn finish_page<T>(
    page: &PageRequest,
    mut items: Vec<T>,
    key: impl Fn(&T) -> (String, i64, String),
) -> zy_model::page::Page<T> {
    let more = items.len() > page.limit as usize;
    items.truncate(page.limit as usize);
    let next_cursor = if more {
        items.last().map(|last| {
            let (name, created, id) = key(last);
            zy_model::page::Cursor {
                s: page.sort.field,
                d: page.sort.descending,
                k: match page.sort.field {
                    SortField::Name => name,
                    SortField::CreatedAt => created.to_string(),
                },
                id,
            }
            .encode()
        })
    } else {
        None
    };
    zy_model::page::Page { items, next_cursor }
}

/// `($1, …, $cols), ($cols+1, …), …` for `rows` rows: the VALUES list of a multi-row
/// INSERT whose parameters are bound row after row.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod value_rows_tests {
    #[test]
    fn numbers_every_parameter_once_row_after_row() {
        assert_eq!(super::value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::value_rows(1, 1), "($1)");
    }
}
