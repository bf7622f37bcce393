//! `apimonctl backup FILE`: a consistent snapshot of the daemon's database, streamed
//! over the control socket in chunks and written here (0600), checked against the
//! daemon's SHA-256. The secret key stays where it is: the command says where.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::rpc::params::BackupRead;
use shared::rpc::reply::SecretKeyLocation;

use crate::error::CliError;
use crate::output::Out;
use crate::transport::Conn;

/// The file being written: removed unless the backup completes.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    file.with_file_name(name)
}

pub async fn backup(conn: &mut Conn, file: &Path, out: &Out) -> Result<ExitCode, CliError> {
    if file.exists() {
        return Err(CliError::Usage(format!(
            "{} exists; choose a new file name (a backup never overwrites one)",
            file.display()
        )));
    }
    let rpc = conn.rpc("backup")?;
    let partial = Partial {
        path: partial_path(file),
        done: false,
    };
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial.path)
        .map_err(|e| CliError::Other(format!("cannot create {}: {e}", partial.path.display())))?;
    let started = rpc.backup_start().await?;
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    loop {
        let chunk = rpc
            .backup_read(BackupRead {
                backup_id: started.backup_id.clone(),
                offset,
            })
            .await?;
        if chunk.offset != offset {
            return Err(CliError::Other(format!(
                "apimond sent bytes from {} when {offset} was asked for",
                chunk.offset
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&chunk.data)
            .map_err(|e| {
                CliError::Other(format!("apimond sent a chunk that is not base64: {e}"))
            })?;
        hasher.update(&bytes);
        writer.write_all(&bytes).map_err(|e| {
            CliError::Other(format!("cannot write {}: {e}", partial.path.display()))
        })?;
        offset += bytes.len() as u64;
        match chunk.next_offset {
            Some(n) if n == offset => {}
            Some(n) => {
                return Err(CliError::Other(format!(
                    "apimond's next chunk starts at {n}, expected {offset}"
                )));
            }
            None => break,
        }
    }
    let sha256 = hex::encode(hasher.finalize());
    if offset != started.size || sha256 != started.sha256 {
        return Err(CliError::Other(format!(
            "the backup arrived damaged ({offset} of {} bytes, SHA-256 {sha256} instead of {}); try again",
            started.size, started.sha256
        )));
    }
    writer
        .sync_all()
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", partial.path.display())))?;
    std::fs::rename(&partial.path, file)
        .map_err(|e| CliError::Other(format!("cannot write {}: {e}", file.display())))?;
    let mut partial = partial;
    partial.done = true;

    let key_hint = match &started.secret_key {
        SecretKeyLocation::File { path } => format!(
            "the channel keys in it are sealed with the key in {path} on the daemon's machine, \
             which is not in the backup: keep a copy of that file apart from the backup \
             (without it the keys cannot be read; anyone with both can read them)"
        ),
        SecretKeyLocation::Environment { variable } => format!(
            "the channel keys in it are sealed with the key given as {variable}, which is not \
             in the backup: keep that value apart from the backup"
        ),
    };
    if out.json {
        out.print_json(&json!({
            "file": file.display().to_string(),
            "size": started.size,
            "sha256": started.sha256,
            "schema_version": started.schema_version,
            "taken_at": started.taken_at,
            "secret_key": started.secret_key,
        }));
    } else {
        println!(
            "wrote {} ({} bytes, schema version {}, SHA-256 {})",
            file.display(),
            started.size,
            started.schema_version,
            started.sha256
        );
        println!("{key_hint}");
        println!(
            "restore with the daemon stopped: apimond --restore {}",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
