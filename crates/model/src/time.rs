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
    /// RFC 3339 in the platform's display zone (Asia/Shanghai).
    pub fn to_rfc3339(self) -> String {
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
}
