//! The `app_settings` table: settings changed in the admin panel. Secret values
//! (tokens, the panel password) are sealed.

use std::collections::HashMap;

use rusqlite::params;

use super::{Result, SecretBox, Store, now};

const SEALED_PREFIX: &str = "sealed:";

fn context(key: &str) -> String {
    format!("app_settings.{key}")
}

/// One change: `None` removes the stored value (the default applies again).
#[derive(Debug)]
pub struct SettingChange {
    pub key: &'static str,
    pub value: Option<String>,
    pub secret: bool,
}

impl Store {
    /// Every stored setting, secret ones opened.
    pub async fn load_settings(&self) -> Result<HashMap<String, String>> {
        self.read(|conn, secrets| {
            let mut stmt = conn.prepare("SELECT key, value FROM app_settings")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = HashMap::new();
            for row in rows {
                let (key, value) = row?;
                let value = match value.strip_prefix(SEALED_PREFIX) {
                    Some(sealed) => secrets.open_text(&context(&key), sealed)?,
                    None => value,
                };
                out.insert(key, value);
            }
            Ok(out)
        })
        .await
    }

    /// Applies all changes in one transaction.
    pub async fn save_settings(&self, changes: Vec<SettingChange>) -> Result<()> {
        let had_secret = changes.iter().any(|c| c.secret);
        self.write(move |txn, secrets| {
            let ts = now();
            for c in &changes {
                match &c.value {
                    None => {
                        txn.execute("DELETE FROM app_settings WHERE key = ?1", [c.key])?;
                    }
                    Some(v) => put(txn, secrets, c.key, v, c.secret, ts)?,
                }
            }
            Ok(())
        })
        .await?;
        if had_secret {
            self.checkpoint().await?;
        }
        Ok(())
    }
}

/// Stores one setting, sealed when `secret`: the one place that knows the stored form.
pub(super) fn put(
    txn: &rusqlite::Connection,
    secrets: &SecretBox,
    key: &str,
    value: &str,
    secret: bool,
    ts: f64,
) -> Result<()> {
    let stored = if secret {
        format!("{SEALED_PREFIX}{}", secrets.seal_text(&context(key), value))
    } else {
        value.to_string()
    };
    txn.execute(
        "INSERT INTO app_settings(key, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, stored, ts],
    )?;
    Ok(())
}
