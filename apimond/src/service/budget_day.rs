//! The budget day: the calendar day in the configured time zone (`APIMON_TIMEZONE`,
//! UTC by default) that daily token budgets and "today's usage" count within. Its
//! bounds are computed once per day and cached, so the proxy's hot path only compares
//! two numbers.

use std::sync::Mutex;

use jiff::tz::TimeZone;

/// The configured zone and the bounds of the day last asked about.
pub struct BudgetDay {
    zone: TimeZone,
    name: String,
    /// [start, end) of the cached day, Unix seconds.
    cached: Mutex<(f64, f64)>,
}

impl BudgetDay {
    pub fn new(zone: TimeZone) -> BudgetDay {
        let name = zone.iana_name().unwrap_or("UTC").to_string();
        BudgetDay {
            zone,
            name,
            cached: Mutex::new((0.0, 0.0)),
        }
    }

    /// The zone's name, as configured.
    pub fn zone_name(&self) -> &str {
        &self.name
    }

    /// Start and end (Unix seconds) of the day holding `at`.
    pub fn bounds(&self, at: f64) -> (f64, f64) {
        let mut cached = self.cached.lock().expect("poisoned");
        if (cached.0..cached.1).contains(&at) {
            return *cached;
        }
        let bounds = self.compute(at);
        // Cache only the current day: a lookup of another day leaves it alone.
        let now = crate::store::now();
        if (bounds.0..bounds.1).contains(&now) {
            *cached = bounds;
        }
        bounds
    }

    fn compute(&self, at: f64) -> (f64, f64) {
        let ms = (at * 1000.0) as i64;
        let fallback = || {
            let start = (at / 86_400.0).floor() * 86_400.0;
            (start, start + 86_400.0)
        };
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return fallback();
        };
        let zoned = ts.to_zoned(self.zone.clone());
        let start = zoned.start_of_day();
        let end = zoned.tomorrow().and_then(|z| z.start_of_day());
        match (start, end) {
            (Ok(s), Ok(e)) => (
                s.timestamp().as_millisecond() as f64 / 1000.0,
                e.timestamp().as_millisecond() as f64 / 1000.0,
            ),
            _ => fallback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_day_runs_midnight_to_midnight() {
        let d = BudgetDay::new(TimeZone::UTC);
        // 2026-11-26 13:00:00 UTC
        let at = 1_795_698_000.0;
        let (s, e) = d.bounds(at);
        assert_eq!(s, 1_795_651_200.0);
        assert_eq!(e - s, 86_400.0);
    }

    #[test]
    fn a_zone_shifts_the_day_and_knows_a_short_one() {
        let d = BudgetDay::new(TimeZone::get("Asia/Shanghai").unwrap());
        let (s, _) = d.bounds(1_795_698_000.0);
        // 21:00 in Shanghai; its midnight was 16:00 UTC the day before.
        assert_eq!(s, 1_795_651_200.0 - 8.0 * 3600.0);
        assert_eq!(d.zone_name(), "Asia/Shanghai");
        // 2026-03-29 in Berlin has 23 hours (summer time starts).
        let berlin = BudgetDay::new(TimeZone::get("Europe/Berlin").unwrap());
        let (s, e) = berlin.bounds(1_774_785_600.0); // 2026-03-29 12:00 UTC
        assert_eq!(e - s, 23.0 * 3600.0);
    }
}
