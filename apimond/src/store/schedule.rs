//! The schedule kept on the `targets` table: whether each target runs, how often, and
//! when it is next due.

use rusqlite::params;

use super::{Result, Store};

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

    /// Every target's schedule: (id, enabled, interval_min, next_due_at).
    pub async fn schedule(&self) -> Result<Vec<(i64, bool, i64, Option<f64>)>> {
        self.read(|conn, _| {
            let mut stmt =
                conn.prepare("SELECT id, enabled, interval_min, next_due_at FROM targets")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
