//! Time: stored as microseconds since the Unix epoch (one integer type in both databases),
//! shown in Asia/Shanghai (UTC+8, no daylight saving since 1991) unless configured.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(from = "DateTime<FixedOffset>")]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
    pub fn secs_since(self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0) / 1_000_000
    }
    /// RFC 3339 in the platform's display zone (Asia/Shanghai), with milliseconds.
    /// Hand-rolled because lists render two timestamps per row and chrono's general
    /// formatter was a measurable part of a page's cost; `chrono_rfc3339` is the reference.
    pub fn to_rfc3339(self) -> String {
        const OFFSET_MICROS: i64 = 8 * 3600 * 1_000_000;
        let local = self.0.saturating_add(OFFSET_MICROS);
        let secs = local.div_euclid(1_000_000);
        let millis = local.rem_euclid(1_000_000) / 1000;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        if !(0..=9999).contains(&y) {
            return self.chrono_rfc3339();
        }
        let sod = secs.rem_euclid(86_400);
        let mut b = *b"0000-00-00T00:00:00.000+08:00";
        let mut put = |at: usize, v: i64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, y, 4);
        put(5, m, 2);
        put(8, d, 2);
        put(11, sod / 3600, 2);
        put(14, sod / 60 % 60, 2);
        put(17, sod % 60, 2);
        put(20, millis, 3);
        String::from_utf8_lossy(&b).into_owned()
    }

    /// The same rendering through chrono (reference and fallback for far-off years).
    pub fn chrono_rfc3339(self) -> String {
        let utc = Utc.timestamp_micros(self.0).single().unwrap_or_default();
        utc.with_timezone(&shanghai())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    }
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s).ok().map(Self::from)
    }
}

impl From<DateTime<FixedOffset>> for Timestamp {
    fn from(d: DateTime<FixedOffset>) -> Self {
        Timestamp(d.timestamp_micros())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::DateTime,
            )))
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// civil_from_days).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn shanghai() -> FixedOffset {
    const CST: i32 = 8 * 3600;
    FixedOffset::east_opt(CST).unwrap_or(chrono::Offset::fix(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_in_shanghai_and_parse_back() {
        let t = Timestamp(1_700_000_000_123_000);
        let s = t.to_rfc3339();
        assert!(s.ends_with("+08:00"), "{s}");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
    }

    proptest::proptest! {
        #[test]
        fn fast_formatting_matches_chrono(micros in -62_000_000_000_000_000i64..253_000_000_000_000_000i64) {
            let t = Timestamp(micros);
            proptest::prop_assert_eq!(t.to_rfc3339(), t.chrono_rfc3339());
        }
    }
}
