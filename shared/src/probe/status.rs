//! Model and target statuses, decided here and nowhere else (SPEC §4.6).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    Ok,
    Slow,
    Fail,
}

impl ModelStatus {
    /// A passing probe over the target's `slow_ms` is slow.
    pub fn of(success: bool, total_ms: f64, slow_ms: u64) -> ModelStatus {
        match (success, total_ms > slow_ms as f64) {
            (false, _) => ModelStatus::Fail,
            (true, true) => ModelStatus::Slow,
            (true, false) => ModelStatus::Ok,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Ok => "ok",
            ModelStatus::Slow => "slow",
            ModelStatus::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Healthy,
    NoModels,
    Degraded,
    Down,
    Error,
}

impl TargetStatus {
    /// The result of a run: `error` when discovery failed, `no_models` when nothing was
    /// left to probe, else from the models' statuses.
    pub fn of_run(discovery_failed: bool, models: &[ModelStatus]) -> TargetStatus {
        if discovery_failed {
            return TargetStatus::Error;
        }
        if models.is_empty() {
            return TargetStatus::NoModels;
        }
        if models.iter().all(|m| *m == ModelStatus::Ok) {
            TargetStatus::Healthy
        } else if models.iter().all(|m| *m == ModelStatus::Fail) {
            TargetStatus::Down
        } else {
            TargetStatus::Degraded
        }
    }

    /// Severity for thresholds: healthy < no_models < degraded < down = error.
    pub fn severity(self) -> u8 {
        match self {
            TargetStatus::Healthy => 0,
            TargetStatus::NoModels => 1,
            TargetStatus::Degraded => 2,
            TargetStatus::Down | TargetStatus::Error => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Healthy => "healthy",
            TargetStatus::NoModels => "no_models",
            TargetStatus::Degraded => "degraded",
            TargetStatus::Down => "down",
            TargetStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<TargetStatus> {
        [
            TargetStatus::Healthy,
            TargetStatus::NoModels,
            TargetStatus::Degraded,
            TargetStatus::Down,
            TargetStatus::Error,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::ModelStatus::*;
    use super::*;

    #[test]
    fn target_status_follows_the_spec() {
        assert_eq!(TargetStatus::of_run(true, &[Ok]), TargetStatus::Error);
        assert_eq!(TargetStatus::of_run(false, &[]), TargetStatus::NoModels);
        assert_eq!(
            TargetStatus::of_run(false, &[Ok, Ok]),
            TargetStatus::Healthy
        );
        assert_eq!(
            TargetStatus::of_run(false, &[Ok, Slow]),
            TargetStatus::Degraded
        );
        assert_eq!(TargetStatus::of_run(false, &[Slow]), TargetStatus::Degraded);
        assert_eq!(
            TargetStatus::of_run(false, &[Ok, Fail]),
            TargetStatus::Degraded
        );
        assert_eq!(
            TargetStatus::of_run(false, &[Fail, Fail]),
            TargetStatus::Down
        );
    }

    #[test]
    fn severity_orders_healthy_no_models_degraded_then_down_and_error_equal() {
        use TargetStatus::*;
        assert!(Healthy.severity() < NoModels.severity());
        assert!(NoModels.severity() < Degraded.severity());
        assert!(Degraded.severity() < Down.severity());
        assert_eq!(Down.severity(), Error.severity());
    }

    #[test]
    fn model_status_uses_slow_ms() {
        assert_eq!(ModelStatus::of(true, 100.0, 1000), Ok);
        assert_eq!(ModelStatus::of(true, 1500.0, 1000), Slow);
        assert_eq!(ModelStatus::of(false, 10.0, 1000), Fail);
    }
}
