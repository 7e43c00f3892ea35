//! Money: integer fen (分, 1/100 yuan) in a newtype, never a float. Sums are checked; the
//! one rounding rule of the platform (half away from zero, once per bill line) lives in
//! `zy-rating`, which turns exact fractions into `Money`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount in fen (分). `Money(12345)` is ¥123.45. Negative amounts are credits
/// (adjustment lines that give money back).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn fen(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Saturating sum (a bill would need 92 quadrillion yuan to saturate).
    pub fn sum<I: IntoIterator<Item = Money>>(items: I) -> Money {
        Money(items.into_iter().fold(0i64, |a, m| a.saturating_add(m.0)))
    }

    /// Yuan with two decimals, as finance writes it: `-12.05`, `0.00`, `1234.50`.
    pub fn yuan(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", a / 100, a % 100)
    }

    /// Parses yuan with at most two decimals (`12`, `12.3`, `-0.05`); no floats involved.
    pub fn parse_yuan(s: &str) -> Option<Money> {
        let s = s.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty()
            || frac.len() > 2
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = int.parse().ok()?;
        let mut cents: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        if frac.len() == 1 {
            cents *= 10;
        }
        let v = whole.checked_mul(100)?.checked_add(cents)?;
        Some(Money(if neg { -v } else { v }))
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, o: Money) -> Money {
        Money(self.0.saturating_add(o.0))
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, o: Money) -> Money {
        Money(self.0.saturating_sub(o.0))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        Money::sum(iter)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "¥{}", self.yuan())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn yuan_is_written_with_two_decimals() {
        assert_eq!(Money(12345).yuan(), "123.45");
        assert_eq!(Money(-5).yuan(), "-0.05");
        assert_eq!(Money(0).yuan(), "0.00");
        assert_eq!(Money(100).to_string(), "¥1.00");
    }

    #[test]
    fn parse_yuan_refuses_what_is_not_an_amount() {
        assert_eq!(Money::parse_yuan("12.3"), Some(Money(1230)));
        assert_eq!(Money::parse_yuan("-0.05"), Some(Money(-5)));
        assert_eq!(Money::parse_yuan("7"), Some(Money(700)));
        for bad in [
            "",
            "1.234",
            "1e3",
            "NaN",
            "1,00",
            ".5",
            "--1",
            "99999999999999999999",
        ] {
            assert_eq!(Money::parse_yuan(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn yuan_round_trips(f in -1_000_000_000_000i64..1_000_000_000_000) {
            prop_assert_eq!(Money::parse_yuan(&Money(f).yuan()), Some(Money(f)));
        }
    }
}
