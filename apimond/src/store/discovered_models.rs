//! The model list discovery found for each target (`targets.discovered_models`), and
//! what changed since the last discovery.

use rusqlite::params;

use super::{Result, Store};

impl Store {
    /// Stores the discovered model list; returns the models added and removed since the
    /// last discovery (both empty on the first one).
    pub async fn set_discovered_models(
        &self,
        target_id: i64,
        models: Vec<String>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        self.write(move |txn, _| {
            let old: String = txn.query_row(
                "SELECT discovered_models FROM targets WHERE id = ?1",
                [target_id],
                |r| r.get(0),
            )?;
            let old: Vec<String> = serde_json::from_str(&old).unwrap_or_default();
            let (added, removed) = if old.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (
                    models
                        .iter()
                        .filter(|m| !old.contains(m))
                        .cloned()
                        .collect(),
                    old.iter()
                        .filter(|m| !models.contains(m))
                        .cloned()
                        .collect(),
                )
            };
            txn.execute(
                "UPDATE targets SET discovered_models = ?2 WHERE id = ?1",
                params![
                    target_id,
                    serde_json::to_string(&models).expect("plain data")
                ],
            )?;
            Ok((added, removed))
        })
        .await
    }

    pub async fn discovered_models(&self, target_id: i64) -> Result<Vec<String>> {
        self.read(move |conn, _| {
            let text: String = conn.query_row(
                "SELECT discovered_models FROM targets WHERE id = ?1",
                [target_id],
                |r| r.get(0),
            )?;
            Ok(serde_json::from_str(&text).unwrap_or_default())
        })
        .await
    }

    /// Every target's discovered list at once (the proxy's routing view reads them all).
    pub async fn all_discovered_models(
        &self,
    ) -> Result<std::collections::HashMap<i64, Vec<String>>> {
        self.read(move |conn, _| {
            let mut stmt = conn.prepare_cached("SELECT id, discovered_models FROM targets")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = std::collections::HashMap::new();
            for row in rows {
                let (id, text) = row?;
                out.insert(id, serde_json::from_str(&text).unwrap_or_default());
            }
            Ok(out)
        })
        .await
    }
}
