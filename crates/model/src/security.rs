//! Security settings (MLPS level 3 / 等保三级 defaults) and the password policy built on them.
//! The security admin changes them through the API; every rule here reads only these values.

use crate::role::Role;
use crate::{t, Error};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// Minimum password length in characters.
    pub password_min_length: u32,
    /// How many of the four classes (lower, upper, digit, symbol) a password must use.
    pub password_min_classes: u32,
    /// Days after which a password must be changed; 0 disables expiry.
    pub password_max_age_days: u32,
    /// Failed logins in a row that lock an account.
    pub lockout_threshold: u32,
    /// How long a lock lasts, in minutes.
    pub lockout_minutes: u32,
    /// Idle time after which a browser or CLI session ends, in minutes.
    pub session_idle_minutes: u32,
    /// Longest a session lasts however active, in hours.
    pub session_max_hours: u32,
    /// Roles whose holders must use a second factor (TOTP).
    pub mfa_required_roles: Vec<Role>,
    /// Longest lifetime an API token may be given, in days.
    pub token_max_days: u32,
    /// Login attempts allowed per source address per minute (a burst of this many, then
    /// refilled evenly); successful logins do not count. Per server replica.
    #[serde(default = "default_login_per_address")]
    pub login_attempts_per_address_per_minute: u32,
    /// Login attempts allowed per account name per minute, whether the account exists or
    /// not; successful logins do not count. Per server replica.
    #[serde(default = "default_login_per_account")]
    pub login_attempts_per_account_per_minute: u32,
}

fn default_login_per_address() -> u32 {
    120
}

fn default_login_per_account() -> u32 {
    10
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            password_min_length: 10,
            password_min_classes: 3,
            password_max_age_days: 90,
            lockout_threshold: 5,
            lockout_minutes: 15,
            session_idle_minutes: 30,
            session_max_hours: 12,
            mfa_required_roles: vec![Role::PlatformAdmin, Role::SecurityAdmin, Role::Auditor],
            token_max_days: 365,
            login_attempts_per_address_per_minute: default_login_per_address(),
            login_attempts_per_account_per_minute: default_login_per_account(),
        }
    }
}

impl SecuritySettings {
    /// Refuses settings that would weaken the platform below any sensible floor.
    pub fn validate(&self) -> Result<(), Error> {
        let range = |field: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(Error::validation(
                    field,
                    t!("{} 须在 {} 到 {} 之间" ; "{} must be between {} and {}", field, lo, hi),
                ))
            }
        };
        range("password_min_length", self.password_min_length, 8, 128)?;
        range("password_min_classes", self.password_min_classes, 1, 4)?;
        range("password_max_age_days", self.password_max_age_days, 0, 3650)?;
        range("lockout_threshold", self.lockout_threshold, 1, 100)?;
        range("lockout_minutes", self.lockout_minutes, 1, 24 * 60)?;
        range(
            "session_idle_minutes",
            self.session_idle_minutes,
            1,
            24 * 60,
        )?;
        range("session_max_hours", self.session_max_hours, 1, 24 * 30)?;
        range("token_max_days", self.token_max_days, 1, 3650)?;
        range(
            "login_attempts_per_address_per_minute",
            self.login_attempts_per_address_per_minute,
            1,
            100_000,
        )?;
        range(
            "login_attempts_per_account_per_minute",
            self.login_attempts_per_account_per_minute,
            1,
            1_000,
        )?;
        Ok(())
    }

    /// Checks a new password against the policy; `username` may not appear in it.
    pub fn check_password(&self, password: &str, username: &str) -> Result<(), Error> {
        let len = password.chars().count();
        if len < self.password_min_length as usize {
            return Err(Error::validation(
                "password",
                t!("密码至少 {} 个字符" ; "password must be at least {} characters", self.password_min_length),
            ));
        }
        if len > 256 {
            return Err(Error::validation(
                "password",
                t!(
                    "密码最多 256 个字符",
                    "password must be at most 256 characters"
                ),
            ));
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|b| **b)
        .count() as u32;
        if classes < self.password_min_classes {
            return Err(Error::validation(
                "password",
                t!(
                    "密码须包含小写字母、大写字母、数字、符号中的至少 {} 类" ;
                    "password must use at least {} of: lower-case letters, upper-case letters, digits, symbols",
                    self.password_min_classes
                ),
            ));
        }
        if !username.is_empty() && password.to_lowercase().contains(&username.to_lowercase()) {
            return Err(Error::validation(
                "password",
                t!(
                    "密码不能包含用户名",
                    "password must not contain the user name"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_mlps_level_three() {
        let s = SecuritySettings::default();
        assert!(s.validate().is_ok());
        assert!(s.check_password("short1A!", "x").is_err());
        assert!(s.check_password("alllowercaseletters", "x").is_err());
        assert!(s.check_password("Zhengyun-2026", "wang").is_ok());
        assert!(s.check_password("Wang.Wu-2026", "wang.wu").is_err());
        assert_eq!(s.lockout_threshold, 5);
        assert_eq!(s.lockout_minutes, 15);
        assert_eq!(s.session_idle_minutes, 30);
        assert_eq!(s.password_max_age_days, 90);
    }

    #[test]
    fn login_rate_limits_have_defaults_and_bounds() {
        // Settings stored before the limits existed still load, with the defaults.
        let mut old = serde_json::to_value(SecuritySettings::default()).expect("json");
        if let Some(o) = old.as_object_mut() {
            o.remove("login_attempts_per_address_per_minute");
            o.remove("login_attempts_per_account_per_minute");
        }
        let s: SecuritySettings = serde_json::from_value(old).expect("old settings load");
        assert_eq!(s.login_attempts_per_address_per_minute, 120);
        assert_eq!(s.login_attempts_per_account_per_minute, 10);
        let zero = SecuritySettings {
            login_attempts_per_account_per_minute: 0,
            ..s.clone()
        };
        let e = zero.validate().expect_err("0 refused");
        assert_eq!(
            e.details,
            Some(serde_json::json!({ "field": "login_attempts_per_account_per_minute" }))
        );
        let huge = SecuritySettings {
            login_attempts_per_address_per_minute: 100_001,
            ..s
        };
        assert!(huge.validate().is_err());
    }
}
