//! The `proxy_keys` table: keys the proxy accepts, stored as the SHA-256 hex digest of
//! the whole key (the Go program's format, so its keys keep working) with their first
//! 12 characters, permissions and limits.

use rusqlite::{Connection, Row, params};

use super::{Result, Store, StoreError, now, optional};

/// One proxy key as stored. The digest is not the key, but it is still left out of
/// `Debug`: nothing needs to see it.
#[derive(Clone, PartialEq)]
pub struct ProxyKeyRecord {
    pub id: i64,
    pub name: String,
    /// SHA-256 hex digest of the whole key, lower case.
    pub key_hash: String,
    /// The key's first 12 characters, to recognise it by.
    pub key_prefix: String,
    /// Channels this key may use; empty = all.
    pub allowed_target_ids: Vec<i64>,
    /// `channel/model` names this key may use; empty = all.
    pub allowed_models: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub created_at: f64,
    pub updated_at: f64,
    pub revoked_at: Option<f64>,
    pub expires_at: Option<f64>,
    pub rpm_limit: Option<u32>,
    pub daily_token_budget: Option<u64>,
    pub last_used_at: Option<f64>,
    pub last_used_target_id: Option<i64>,
}

impl std::fmt::Debug for ProxyKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyKeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("key_prefix", &self.key_prefix)
            .field("enabled", &self.enabled)
            .field("revoked_at", &self.revoked_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The editable part of a key: what create sets and a PATCH may change.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyKeyFields {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub allowed_target_ids: Vec<i64>,
    pub allowed_models: Vec<String>,
    pub expires_at: Option<f64>,
    pub rpm_limit: Option<u32>,
    pub daily_token_budget: Option<u64>,
}

/// Why a key write was refused without writing anything.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyWriteRefusal {
    /// An allowed target id that names no target.
    UnknownTarget(i64),
    /// The key was revoked; revocation is final.
    Revoked,
}

const COLUMNS: &str = "id, name, key_hash, key_prefix, allowed_target_ids, allowed_models, \
    description, enabled, created_at, COALESCE(updated_at, created_at), revoked_at, expires_at, \
    rpm_limit, daily_token_budget, last_used_at, last_used_target_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<ProxyKeyRecord>> {
    let targets: String = r.get(4)?;
    let models: String = r.get(5)?;
    let id: i64 = r.get(0)?;
    let parsed = serde_json::from_str::<Vec<i64>>(&targets)
        .and_then(|t| serde_json::from_str::<Vec<String>>(&models).map(|m| (t, m)));
    let (allowed_target_ids, allowed_models) = match parsed {
        Ok(v) => v,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "proxy key {id}: allowed targets or models: {e}"
            ))));
        }
    };
    Ok(Ok(ProxyKeyRecord {
        id,
        name: r.get(1)?,
        key_hash: r.get(2)?,
        key_prefix: r.get(3)?,
        allowed_target_ids,
        allowed_models,
        description: r.get(6)?,
        enabled: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        revoked_at: r.get(10)?,
        expires_at: r.get(11)?,
        rpm_limit: r.get(12)?,
        daily_token_budget: r.get::<_, Option<i64>>(13)?.map(|n| n.max(0) as u64),
        last_used_at: r.get(14)?,
        last_used_target_id: r.get(15)?,
    }))
}

fn load(conn: &Connection, id: i64) -> Result<Option<ProxyKeyRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM proxy_keys WHERE id = ?1");
    optional(conn.query_row(&sql, [id], from_row))?.transpose()
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The first allowed target id that names no target, if any.
fn missing_target(conn: &Connection, ids: &[i64]) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM targets WHERE id = ?1")?;
    for id in ids {
        if !stmt.exists([id])? {
            return Ok(Some(*id));
        }
    }
    Ok(None)
}

fn write_fields(conn: &Connection, id: i64, f: &ProxyKeyFields, ts: f64) -> Result<()> {
    conn.execute(
        "UPDATE proxy_keys SET name = ?2, description = ?3, enabled = ?4, \
         allowed_target_ids = ?5, allowed_models = ?6, expires_at = ?7, rpm_limit = ?8, \
         daily_token_budget = ?9, updated_at = ?10 WHERE id = ?1",
        params![
            id,
            f.name,
            f.description,
            f.enabled,
            json(&f.allowed_target_ids),
            json(&f.allowed_models),
            f.expires_at,
            f.rpm_limit,
            f.daily_token_budget.map(|n| n.min(i64::MAX as u64) as i64),
            ts,
        ],
    )?;
    Ok(())
}

impl Store {
    /// Every key, revoked ones included, oldest first.
    pub async fn list_proxy_keys(&self) -> Result<Vec<ProxyKeyRecord>> {
        self.read(|conn, _| {
            let sql = format!("SELECT {COLUMNS} FROM proxy_keys ORDER BY id");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([], from_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_proxy_key(&self, id: i64) -> Result<Option<ProxyKeyRecord>> {
        self.read(move |conn, _| load(conn, id)).await
    }

    /// Inserts a key given by its digest and prefix. The allowed targets are checked
    /// in the same transaction, so a target deleted meanwhile cannot slip in.
    pub async fn create_proxy_key(
        &self,
        key_hash: String,
        key_prefix: String,
        fields: ProxyKeyFields,
    ) -> Result<Result<ProxyKeyRecord, KeyWriteRefusal>> {
        self.write(move |txn, _| {
            if let Some(id) = missing_target(txn, &fields.allowed_target_ids)? {
                return Ok(Err(KeyWriteRefusal::UnknownTarget(id)));
            }
            let ts = now();
            txn.execute(
                "INSERT INTO proxy_keys (name, key_hash, key_prefix, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![fields.name, key_hash, key_prefix, ts],
            )?;
            let id = txn.last_insert_rowid();
            write_fields(txn, id, &fields, ts)?;
            Ok(Ok(load(txn, id)?.ok_or(StoreError::NotFound)?))
        })
        .await
    }

    /// Loads a key, lets `edit` change its fields and writes them, in one transaction;
    /// `NotFound` for an unknown id. A revoked key cannot be edited.
    pub async fn update_proxy_key<F>(
        &self,
        id: i64,
        edit: F,
    ) -> Result<Result<ProxyKeyRecord, KeyWriteRefusal>>
    where
        F: FnOnce(&mut ProxyKeyFields) + Send + 'static,
    {
        self.write(move |txn, _| {
            let k = load(txn, id)?.ok_or(StoreError::NotFound)?;
            if k.revoked_at.is_some() {
                return Ok(Err(KeyWriteRefusal::Revoked));
            }
            let mut fields = ProxyKeyFields {
                name: k.name,
                description: k.description,
                enabled: k.enabled,
                allowed_target_ids: k.allowed_target_ids,
                allowed_models: k.allowed_models,
                expires_at: k.expires_at,
                rpm_limit: k.rpm_limit,
                daily_token_budget: k.daily_token_budget,
            };
            let before = fields.allowed_target_ids.clone();
            edit(&mut fields);
            // Only ids newly added must exist: a key keeps working for the targets it
            // had when one of them is deleted.
            let added: Vec<i64> = fields
                .allowed_target_ids
                .iter()
                .copied()
                .filter(|t| !before.contains(t))
                .collect();
            if let Some(t) = missing_target(txn, &added)? {
                return Ok(Err(KeyWriteRefusal::UnknownTarget(t)));
            }
            write_fields(txn, id, &fields, now())?;
            Ok(Ok(load(txn, id)?.ok_or(StoreError::NotFound)?))
        })
        .await
    }

    /// Marks a key revoked (the first revocation's time is kept). `NotFound` for an
    /// unknown id.
    pub async fn revoke_proxy_key(&self, id: i64) -> Result<ProxyKeyRecord> {
        self.write(move |txn, _| {
            let ts = now();
            let n = txn.execute(
                "UPDATE proxy_keys SET revoked_at = COALESCE(revoked_at, ?2), updated_at = ?2 \
                 WHERE id = ?1",
                params![id, ts],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            load(txn, id)?.ok_or(StoreError::NotFound)
        })
        .await
    }
}
