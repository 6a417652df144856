//! The instance's master key and what it protects: provider API keys encrypted at rest with
//! AES-256-GCM (fresh random nonce per encryption, AAD binding each ciphertext to its org and
//! row), and API keys stored as HMAC-SHA256 digests.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::Sha256;
use std::path::Path;

const MASTER_KEY_FILE: &str = "master.key";
const PREVIOUS_KEY_FILE: &str = "master.key.previous";
const CIPHERTEXT_VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("AGENTRY_MASTER_KEY must be 32 bytes as 64 hex characters or base64")]
    BadMasterKey,
    #[error("cannot read or create the master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("random number generator failed")]
    Random,
    #[error("a stored secret could not be decrypted (wrong master key or tampered data)")]
    Decrypt,
    #[error(
        "a data key is wrapped by a master key this server does not have; set AGENTRY_MASTER_KEY_PREVIOUS during a rotation"
    )]
    UnknownMasterKey,
}

/// Holds the master key (and, during a rotation, the previous ones). The master key only
/// wraps the per-organization data keys of the [`crate::vault::Vault`]; cloning shares nothing
/// mutable.
#[derive(Clone)]
pub struct Secrets {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

#[derive(Clone)]
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl MasterKey {
    fn new(key: [u8; 32]) -> Self {
        Self {
            id: master_key_id(&key),
            cipher: Aes256Gcm::new(&key.into()),
        }
    }
}

/// A short public name for a master key (stored next to what it wraps): the first 8 bytes of a
/// SHA-256 over a label and the key, in hex. It identifies the key without revealing it.
fn master_key_id(key: &[u8; 32]) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"agentry master key id v1");
    h.update(key);
    hex::encode(&h.finalize()[..8])
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets(key id {}, ***)", self.current.id)
    }
}

impl Secrets {
    /// Uses `AGENTRY_MASTER_KEY` when given, else the key file in the data dir, creating it
    /// (mode 0600) on first start. Previous keys (during a rotation) come from
    /// `AGENTRY_MASTER_KEY_PREVIOUS` (comma-separated) and the `master.key.previous` file.
    pub fn load(
        env_key: Option<&str>,
        env_previous: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, SecretsError> {
        let key = match env_key {
            Some(k) => parse_key(k).ok_or(SecretsError::BadMasterKey)?,
            None => load_or_create_key_file(&data_dir.join(MASTER_KEY_FILE))?,
        };
        let mut secrets = Self::from_key(key);
        for text in env_previous.unwrap_or("").split(',') {
            if !text.trim().is_empty() {
                secrets.add_previous(parse_key(text).ok_or(SecretsError::BadMasterKey)?);
            }
        }
        if let Ok(text) = std::fs::read_to_string(data_dir.join(PREVIOUS_KEY_FILE)) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                secrets.add_previous(parse_key(line).ok_or(SecretsError::BadMasterKey)?);
            }
        }
        Ok(secrets)
    }

    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            current: MasterKey::new(key),
            previous: Vec::new(),
        }
    }

    /// Accepts `key` for unwrapping (not for wrapping): a rotation in progress.
    pub fn add_previous(&mut self, key: [u8; 32]) {
        let key = MasterKey::new(key);
        if key.id != self.current.id && self.previous.iter().all(|k| k.id != key.id) {
            self.previous.push(key);
        }
    }

    /// The id of the key new wrappings are made with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Wraps (encrypts) with the current master key, bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, SecretsError> {
        seal(&self.current.cipher, plaintext, aad)
    }

    /// Unwraps a value wrapped by the master key called `key_id` (current or previous).
    pub fn decrypt(&self, stored: &str, key_id: &str, aad: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == key_id)
            .ok_or(SecretsError::UnknownMasterKey)?;
        open(&key.cipher, stored, aad)
    }
}

/// AES-256-GCM with a fresh random 96-bit nonce; `v1:` + base64(nonce ‖ ciphertext ‖ tag).
pub(crate) fn seal(
    cipher: &Aes256Gcm,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<String, SecretsError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|_| SecretsError::Random)?;
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SecretsError::Decrypt)?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ciphertext);
    Ok(format!("{CIPHERTEXT_VERSION}:{}", B64.encode(blob)))
}

pub(crate) fn open(cipher: &Aes256Gcm, stored: &str, aad: &[u8]) -> Result<Vec<u8>, SecretsError> {
    let encoded = stored
        .strip_prefix(CIPHERTEXT_VERSION)
        .and_then(|s| s.strip_prefix(':'))
        .ok_or(SecretsError::Decrypt)?;
    let blob = B64.decode(encoded).map_err(|_| SecretsError::Decrypt)?;
    if blob.len() < 12 {
        return Err(SecretsError::Decrypt);
    }
    let (nonce, ciphertext) = blob.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| SecretsError::Decrypt)
}

/// The digest under which an API key (or session, invitation, reset token) is stored. A plain
/// SHA-256: these secrets carry ≥ 128 random bits, so a salt or slow hash adds nothing (ASVS
/// 6.5.2), and unlike an HMAC under the master key it survives a master-key rotation.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Generates a new master key, for `agentry admin rotate-master-key`.
pub fn generate_master_key() -> Result<[u8; 32], SecretsError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| SecretsError::Random)?;
    Ok(key)
}

/// Replaces the key file with `new` and keeps the old key in `master.key.previous`, so a server
/// still running with the old key can keep reading until it restarts.
pub fn install_key_file(data_dir: &Path, new: &[u8; 32]) -> Result<(), SecretsError> {
    let path = data_dir.join(MASTER_KEY_FILE);
    let io = |source| SecretsError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    let old = std::fs::read_to_string(&path).map_err(io)?;
    let previous_path = data_dir.join(PREVIOUS_KEY_FILE);
    let mut previous = std::fs::read_to_string(&previous_path).unwrap_or_default();
    previous.push_str(old.trim());
    previous.push('\n');
    let tmp = data_dir.join(format!("{MASTER_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, hex::encode(new).as_bytes()).map_err(io)?;
    let tmp_prev = data_dir.join(format!("{PREVIOUS_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&tmp_prev);
    write_private(&tmp_prev, previous.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp_prev, &previous_path).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

pub fn encode_key(key: &[u8; 32]) -> String {
    hex::encode(key)
}

/// A new API key: `agt_` followed by 32 random bytes (256 bits) in hex.
pub fn generate_api_key() -> Result<String, SecretsError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SecretsError::Random)?;
    Ok(format!("agt_{}", hex::encode(bytes)))
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        B64.decode(text).ok()?
    };
    bytes.try_into().ok()
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; 32], SecretsError> {
    let io = |source| SecretsError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text).ok_or(SecretsError::BadMasterKey),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|_| SecretsError::Random)?;
            write_private(path, hex::encode(key).as_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_is_bound_to_its_aad_and_nonces_differ() {
        let s = Secrets::from_key([7; 32]);
        let id = s.current_key_id().to_string();
        let a = s.encrypt(b"sk-secret", b"org1/p1").unwrap();
        let b = s.encrypt(b"sk-secret", b"org1/p1").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("sk-secret"));
        assert_eq!(s.decrypt(&a, &id, b"org1/p1").unwrap(), b"sk-secret");
        assert!(s.decrypt(&a, &id, b"org2/p1").is_err());
        let other = Secrets::from_key([8; 32]);
        assert!(other.decrypt(&a, &id, b"org1/p1").is_err());
    }

    #[test]
    fn previous_keys_still_unwrap_during_a_rotation() {
        let old = Secrets::from_key([1; 32]);
        let wrapped = old.encrypt(b"dek", b"aad").unwrap();
        let mut new = Secrets::from_key([2; 32]);
        assert!(matches!(
            new.decrypt(&wrapped, old.current_key_id(), b"aad"),
            Err(SecretsError::UnknownMasterKey)
        ));
        new.add_previous([1; 32]);
        assert_eq!(
            new.decrypt(&wrapped, old.current_key_id(), b"aad").unwrap(),
            b"dek"
        );
        assert_ne!(new.current_key_id(), old.current_key_id());
    }

    #[test]
    fn key_file_is_created_private_reused_and_rotated() {
        let dir = tempfile_dir();
        let first = Secrets::load(None, None, &dir).unwrap();
        let enc = first.encrypt(b"x", b"").unwrap();
        let second = Secrets::load(None, None, &dir).unwrap();
        assert_eq!(
            second.decrypt(&enc, first.current_key_id(), b"").unwrap(),
            b"x"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        install_key_file(&dir, &[9; 32]).unwrap();
        let third = Secrets::load(None, None, &dir).unwrap();
        assert_ne!(third.current_key_id(), first.current_key_id());
        assert_eq!(
            third.decrypt(&enc, first.current_key_id(), b"").unwrap(),
            b"x"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("agentry-secrets-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn api_keys_are_long_and_digests_stable() {
        let k = generate_api_key().unwrap();
        assert!(k.starts_with("agt_") && k.len() == 68);
        assert_eq!(token_digest(&k), token_digest(&k));
        assert_ne!(token_digest(&k), token_digest("agt_other"));
    }
}
