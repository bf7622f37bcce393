//! Secrets at rest: channel keys and stored tokens are sealed with XChaCha20-Poly1305
//! under a 32-byte key kept in `DATA_DIR/secret.key` (0600) or given as
//! `APIMON_SECRET_KEY`. A fingerprint of the key is stored in the database so a wrong
//! key stops the start instead of failing every probe.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::StoreError;

pub const KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 24;

/// Parses a key given as 64 hex characters.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

pub struct SecretBox {
    key: [u8; 32],
    cipher: XChaCha20Poly1305,
    fingerprint: String,
}

impl Drop for SecretBox {
    fn drop(&mut self) {
        // Do not leave the key in freed memory.
        self.key.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.key);
    }
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    pub fn from_key(key: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"apimon secret key fingerprint v1\0");
        h.update(key);
        let fingerprint = hex::encode(&h.finalize()[..8]);
        Self {
            key,
            cipher: XChaCha20Poly1305::new(&key.into()),
            fingerprint,
        }
    }

    /// A second box with the same key (the writer thread owns its own).
    pub fn from_key_of(other: &SecretBox) -> Self {
        Self::from_key(other.key)
    }

    /// Uses the key given by the environment, else the key file, creating it (0600) when
    /// there is none. `sealed_data` says the database already holds apimon's sealed
    /// values: then a missing key file is refused rather than replaced by a key they were
    /// never sealed with (a fresh install or a Go database to upgrade gets a new one).
    pub fn load_or_create(
        data_dir: &Path,
        given: Option<&str>,
        sealed_data: bool,
    ) -> Result<Self, StoreError> {
        if let Some(text) = given {
            let key = parse_key(text).ok_or_else(|| {
                StoreError::Config("APIMON_SECRET_KEY must be 64 hexadecimal characters".into())
            })?;
            return Ok(Self::from_key(key));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_key(&text).ok_or_else(|| {
                    StoreError::Config(format!(
                        "{} is not a valid key (64 hexadecimal characters); restore it from a backup",
                        path.display()
                    ))
                })?;
                Ok(Self::from_key(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let db = data_dir.join(super::DB_FILE);
                if sealed_data {
                    return Err(StoreError::Config(format!(
                        "{} exists but {} is missing; set APIMON_SECRET_KEY to the original key \
                         or restore secret.key",
                        db.display(),
                        path.display()
                    )));
                }
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| StoreError::Config(e.to_string()))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| StoreError::io(&path, e))?;
                file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(|e| StoreError::io(&path, e))?;
                Ok(Self::from_key(key))
            }
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals `plain`; `context` binds the ciphertext to its use (a key sealed for one
    /// column cannot be swapped into another).
    pub fn seal(&self, context: &str, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<String, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Corrupt(format!(
                "sealed {context} is too short"
            )));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "cannot decrypt {context}: the secret key does not match"
                ))
            })?;
        String::from_utf8(plain).map_err(|_| StoreError::Corrupt(format!("{context} is not text")))
    }

    /// Text form for TEXT columns.
    pub fn seal_text(&self, context: &str, plain: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.seal(context, plain))
    }

    pub fn open_text(&self, context: &str, sealed: &str) -> Result<String, StoreError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| StoreError::Corrupt(format!("sealed {context} is not base64")))?;
        self.open(context, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_and_are_bound_to_their_context() {
        let b = SecretBox::from_key([7; 32]);
        let sealed = b.seal("target api_key", "sk-live-123");
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"));
        assert_eq!(b.open("target api_key", &sealed).unwrap(), "sk-live-123");
        assert!(b.open("setting", &sealed).is_err());
        let other = SecretBox::from_key([8; 32]);
        assert!(other.open("target api_key", &sealed).is_err());
        assert_ne!(b.fingerprint(), other.fingerprint());
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(dir.path(), None, false).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SecretBox::load_or_create(dir.path(), None, false).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
    }
}
