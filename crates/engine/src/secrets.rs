//! The instance's master key and what it protects: provider API keys encrypted at rest with
//! AES-256-GCM (fresh random nonce per encryption, AAD binding each ciphertext to its org and
//! row), and API keys stored as HMAC-SHA256 digests.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;

const MASTER_KEY_FILE: &str = "master.key";
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
}

/// Holds the master key. Cloning shares nothing mutable.
#[derive(Clone)]
pub struct Secrets {
    cipher: Aes256Gcm,
    hmac_key: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
}

impl Secrets {
    /// Uses `AGENTRY_MASTER_KEY` when given, else the key file in the data dir, creating it
    /// (mode 0600) on first start.
    pub fn load(env_key: Option<&str>, data_dir: &Path) -> Result<Self, SecretsError> {
        let key = match env_key {
            Some(k) => parse_key(k).ok_or(SecretsError::BadMasterKey)?,
            None => load_or_create_key_file(&data_dir.join(MASTER_KEY_FILE))?,
        };
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| {
            // HMAC accepts keys of any length; this branch cannot be taken.
            unreachable!("hmac key")
        });
        mac.update(b"agentry api-key digest v1");
        let hmac_key: [u8; 32] = mac.finalize().into_bytes().into();
        Self {
            cipher: Aes256Gcm::new(&key.into()),
            hmac_key,
        }
    }

    /// Encrypts `plaintext`, bound to `aad` (e.g. org id + row id): a ciphertext copied to
    /// another row or org fails to decrypt.
    pub fn encrypt(&self, plaintext: &str, aad: &[u8]) -> Result<String, SecretsError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| SecretsError::Random)?;
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad,
                },
            )
            .map_err(|_| SecretsError::Decrypt)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{CIPHERTEXT_VERSION}:{}", B64.encode(blob)))
    }

    pub fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<String, SecretsError> {
        let encoded = stored
            .strip_prefix(CIPHERTEXT_VERSION)
            .and_then(|s| s.strip_prefix(':'))
            .ok_or(SecretsError::Decrypt)?;
        let blob = B64.decode(encoded).map_err(|_| SecretsError::Decrypt)?;
        if blob.len() < 12 {
            return Err(SecretsError::Decrypt);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SecretsError::Decrypt)?;
        String::from_utf8(plaintext).map_err(|_| SecretsError::Decrypt)
    }

    /// The digest under which an API key is stored and looked up.
    pub fn api_key_digest(&self, key: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hmac_key)
            .unwrap_or_else(|_| unreachable!("hmac key"));
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
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
        let a = s.encrypt("sk-secret", b"org1/p1").unwrap();
        let b = s.encrypt("sk-secret", b"org1/p1").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("sk-secret"));
        assert_eq!(s.decrypt(&a, b"org1/p1").unwrap(), "sk-secret");
        assert!(s.decrypt(&a, b"org2/p1").is_err());
        let other = Secrets::from_key([8; 32]);
        assert!(other.decrypt(&a, b"org1/p1").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile_dir();
        let first = Secrets::load(None, &dir).unwrap();
        let enc = first.encrypt("x", b"").unwrap();
        let second = Secrets::load(None, &dir).unwrap();
        assert_eq!(second.decrypt(&enc, b"").unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
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
        let s = Secrets::from_key([1; 32]);
        assert_eq!(s.api_key_digest(&k), s.api_key_digest(&k));
        assert_ne!(s.api_key_digest(&k), s.api_key_digest("agt_other"));
    }
}
