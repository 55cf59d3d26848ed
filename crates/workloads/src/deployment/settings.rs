//! A Deployment's spec with the API's defaults applied (strategy RollingUpdate 25%/25%,
//! revisionHistoryLimit 10, progressDeadlineSeconds 600, replicas 1), and upstream's
//! surge/unavailable arithmetic (`ResolveFenceposts`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    Recreate,
    RollingUpdate { max_surge: IntOrString, max_unavailable: IntOrString },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub replicas: i32,
    pub min_ready_seconds: i32,
    /// `None`: keep every old ReplicaSet.
    pub revision_history_limit: Option<i32>,
    /// `None`: no deadline (and no Progressing condition).
    pub progress_deadline_seconds: Option<i32>,
    pub paused: bool,
    pub strategy: Strategy,
}

fn quarter() -> IntOrString {
    IntOrString::String("25%".into())
}

impl Settings {
    pub fn of(deployment: &Deployment) -> Settings {
        let spec = deployment.spec.clone().unwrap_or_default();
        let strategy = spec.strategy.unwrap_or_default();
        let strategy = match strategy.type_.as_deref() {
            Some("Recreate") => Strategy::Recreate,
            _ => {
                let rolling = strategy.rolling_update.unwrap_or_default();
                Strategy::RollingUpdate {
                    max_surge: rolling.max_surge.unwrap_or_else(quarter),
                    max_unavailable: rolling.max_unavailable.unwrap_or_else(quarter),
                }
            }
        };
        Settings {
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            revision_history_limit: Some(spec.revision_history_limit.unwrap_or(10)).filter(|l| *l != i32::MAX),
            progress_deadline_seconds: Some(spec.progress_deadline_seconds.unwrap_or(600)).filter(|d| *d != i32::MAX),
            paused: spec.paused.unwrap_or(false),
            strategy,
        }
    }

    pub fn is_rolling_update(&self) -> bool {
        matches!(self.strategy, Strategy::RollingUpdate { .. })
    }

    /// (surge, unavailable) for `replicas` (upstream's `ResolveFenceposts`).
    pub fn fenceposts(&self) -> (i32, i32) {
        match &self.strategy {
            Strategy::Recreate => (0, 0),
            Strategy::RollingUpdate { max_surge, max_unavailable } => {
                let surge = scaled_value(max_surge, self.replicas, true);
                let unavailable = scaled_value(max_unavailable, self.replicas, false);
                if surge == 0 && unavailable == 0 {
                    (0, 1)
                } else {
                    (surge, unavailable)
                }
            }
        }
    }

    pub fn max_surge(&self) -> i32 {
        if self.is_rolling_update() {
            self.fenceposts().0
        } else {
            0
        }
    }

    pub fn max_unavailable(&self) -> i32 {
        if !self.is_rolling_update() || self.replicas == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas)
    }
}

/// `intstr.GetScaledValueFromIntOrPercent`: an int as is, "N%" of `total` rounded up or down.
/// A malformed value counts as 0 (validation rejects it upstream).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(text) => {
            let Some(percent) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return text.parse().unwrap_or(0);
            };
            let product = percent * i64::from(total);
            let value = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            value as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn rolling(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Settings {
        let deployment = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Settings::of(&deployment)
    }

    #[test]
    fn fencepost_table() {
        use IntOrString::{Int, String as Text};
        let cases = [
            (10, Text("25%".into()), Text("25%".into()), (3, 2), 2),
            (3, Text("25%".into()), Text("25%".into()), (1, 0), 0),
            (1, Int(0), Int(0), (0, 1), 1),
            (4, Int(1), Int(0), (1, 0), 0),
            (4, Int(0), Text("50%".into()), (0, 2), 2),
            (2, Int(0), Int(5), (0, 5), 2),
            (0, Int(1), Int(1), (1, 1), 0),
        ];
        for (replicas, surge, unavailable, fenceposts, max_unavailable) in cases {
            let settings = rolling(replicas, surge.clone(), unavailable.clone());
            assert_eq!(settings.fenceposts(), fenceposts, "{replicas} {surge:?} {unavailable:?}");
            assert_eq!(settings.max_unavailable(), max_unavailable, "{replicas} {surge:?} {unavailable:?}");
        }
    }

    #[test]
    fn defaults() {
        let settings = Settings::of(&Deployment::default());
        assert_eq!(settings.replicas, 1);
        assert_eq!(settings.revision_history_limit, Some(10));
        assert_eq!(settings.progress_deadline_seconds, Some(600));
        assert_eq!(settings.strategy, Strategy::RollingUpdate { max_surge: quarter(), max_unavailable: quarter() });
        let recreate = Deployment {
            spec: Some(DeploymentSpec {
                strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Settings::of(&recreate).max_surge(), 0);
        assert_eq!(Settings::of(&recreate).max_unavailable(), 0);
    }

    #[test]
    fn percentages_round_as_upstream() {
        assert_eq!(scaled_value(&IntOrString::String("33%".into()), 10, true), 4);
        assert_eq!(scaled_value(&IntOrString::String("33%".into()), 10, false), 3);
        assert_eq!(scaled_value(&IntOrString::String("x".into()), 10, false), 0);
    }
}
