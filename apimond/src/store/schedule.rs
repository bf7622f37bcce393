//! The schedule kept on the `targets` table: whether each target runs, how often, and
//! when it is next due.

use rusqlite::params;

use super::{Result, Store};

/// One target's place in the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleEntry {
    pub target_id: i64,
    pub enabled: bool,
    /// Minutes between runs.
    pub interval_min: i64,
    /// Unix seconds; none until the scheduler first places the target.
    pub next_due: Option<f64>,
}

impl Store {
    pub async fn set_next_due(&self, target_id: i64, due: f64) -> Result<()> {
        self.write(move |txn, _| {
            txn.execute(
                "UPDATE targets SET next_due_at = ?2 WHERE id = ?1",
                params![target_id, due],
            )?;
            Ok(())
        })
        .await
    }

    /// Every target's schedule.
    pub async fn schedule(&self) -> Result<Vec<ScheduleEntry>> {
        self.read(|conn, _| {
            let mut stmt =
                conn.prepare("SELECT id, enabled, interval_min, next_due_at FROM targets")?;
            let rows = stmt.query_map([], |r| {
                Ok(ScheduleEntry {
                    target_id: r.get(0)?,
                    enabled: r.get(1)?,
                    interval_min: r.get(2)?,
                    next_due: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
