//! The secrets vault: envelope encryption. Each organization has its own random data key (DEK),
//! stored wrapped by the instance's master key together with the master key's id. Secrets are
//! sealed with the org's DEK (AES-256-GCM, a fresh nonce every time) and an AAD that binds the
//! ciphertext to its org, its purpose, its row and — for provider keys — the base URL it may be
//! sent to. Rotating the master key re-wraps the DEKs only; no secret is re-encrypted and no
//! server has to stop (DEKs already unwrapped stay valid in memory).
//!
//! Stored format: `v2:<dek id>:` + base64(nonce ‖ ciphertext ‖ tag).

use crate::secrets::{self, Secrets, SecretsError};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use agentry_core::ids::OrgId;
use agentry_core::scope::OrgScope;
use agentry_store::org_keys::{self, OrgKeyRow};
use agentry_store::{Db, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The pseudo-organization whose data key protects instance-wide secrets (users' TOTP seeds).
pub const INSTANCE: OrgScope = OrgScope {
    org_id: OrgId(Uuid::nil()),
};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored secret is malformed")]
    Malformed,
}

struct DataKey {
    id: Uuid,
    cipher: Aes256Gcm,
}

/// What a secret is and where it may be used; becomes the AAD.
pub struct Binding<'a> {
    pub purpose: &'a str,
    pub row: Uuid,
    /// Extra context the secret is bound to (a provider key's base URL); empty when none.
    pub context: &'a str,
}

/// Reloads the master keys (file mode: another process may have rotated them).
pub type ReloadKeys = Box<dyn Fn() -> Result<Secrets, SecretsError> + Send + Sync>;

pub struct Vault {
    db: Db,
    master: Mutex<Secrets>,
    reload: Option<ReloadKeys>,
    keys: Mutex<HashMap<Uuid, Arc<DataKey>>>,
}

fn dek_aad(org: Uuid, dek: Uuid) -> Vec<u8> {
    let mut aad = b"agentry dek v1|".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(dek.as_bytes());
    aad
}

fn secret_aad(org: Uuid, binding: &Binding<'_>) -> Vec<u8> {
    let mut aad = b"agentry secret v2|".to_vec();
    aad.extend_from_slice(org.as_bytes());
    aad.extend_from_slice(binding.row.as_bytes());
    // Length-prefixed so ("a", "bc") and ("ab", "c") differ.
    for part in [binding.purpose, binding.context] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

impl Vault {
    pub fn new(db: Db, master: Secrets, reload: Option<ReloadKeys>) -> Self {
        Self {
            db,
            master: Mutex::new(master),
            reload,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn master(&self) -> Secrets {
        match self.master.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub async fn seal(
        &self,
        scope: OrgScope,
        binding: &Binding<'_>,
        plaintext: &str,
    ) -> Result<String, VaultError> {
        let key = self.data_key(scope).await?;
        let sealed = secrets::seal(
            &key.cipher,
            plaintext.as_bytes(),
            &secret_aad(scope.org_id.0, binding),
        )?;
        let body = sealed.strip_prefix("v1:").ok_or(VaultError::Malformed)?;
        Ok(format!("v2:{}:{body}", key.id.simple()))
    }

    pub async fn open(
        &self,
        scope: OrgScope,
        binding: &Binding<'_>,
        stored: &str,
    ) -> Result<String, VaultError> {
        let rest = stored.strip_prefix("v2:").ok_or(VaultError::Malformed)?;
        let (dek_id, body) = rest.split_once(':').ok_or(VaultError::Malformed)?;
        let key = self.data_key(scope).await?;
        if Uuid::parse_str(dek_id).ok() != Some(key.id) {
            return Err(SecretsError::Decrypt.into());
        }
        let plain = secrets::open(
            &key.cipher,
            &format!("v1:{body}"),
            &secret_aad(scope.org_id.0, binding),
        )?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }

    /// The org's data key: from memory, else unwrapped from its row, else created.
    async fn data_key(&self, scope: OrgScope) -> Result<Arc<DataKey>, VaultError> {
        if let Some(k) = self.cached(scope) {
            return Ok(k);
        }
        let row = match org_keys::get(&self.db, scope).await? {
            Some(row) => row,
            None => {
                let id = Uuid::now_v7();
                let dek = secrets::generate_master_key()?;
                let master = self.master();
                let row = OrgKeyRow {
                    id,
                    org_id: scope.org_id.0,
                    wrapped_key: master.encrypt(&dek, &dek_aad(scope.org_id.0, id))?,
                    master_key_id: master.current_key_id().to_string(),
                    created_at: chrono::Utc::now(),
                };
                org_keys::insert_if_absent(&self.db, &row).await?;
                // Another replica may have won the race; use whatever is stored.
                org_keys::get(&self.db, scope)
                    .await?
                    .ok_or(VaultError::Malformed)?
            }
        };
        let dek = self.unwrap_row(&row)?;
        let key = Arc::new(DataKey {
            id: row.id,
            cipher: Aes256Gcm::new(&dek.into()),
        });
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(scope.org_id.0, key.clone());
        }
        Ok(key)
    }

    fn cached(&self, scope: OrgScope) -> Option<Arc<DataKey>> {
        self.keys.lock().ok()?.get(&scope.org_id.0).cloned()
    }

    fn unwrap_row(&self, row: &OrgKeyRow) -> Result<[u8; 32], VaultError> {
        let aad = dek_aad(row.org_id, row.id);
        let bytes = match self
            .master()
            .decrypt(&row.wrapped_key, &row.master_key_id, &aad)
        {
            // Rotated by another process since we started: learn the new keys once, retry.
            Err(SecretsError::UnknownMasterKey) if self.reload.is_some() => {
                let fresh = self.reload.as_ref().map(|r| r()).transpose()?;
                let fresh = fresh.ok_or(SecretsError::UnknownMasterKey)?;
                let bytes = fresh.decrypt(&row.wrapped_key, &row.master_key_id, &aad)?;
                if let Ok(mut m) = self.master.lock() {
                    *m = fresh;
                }
                bytes
            }
            other => other?,
        };
        bytes.try_into().map_err(|_| VaultError::Malformed)
    }
}

/// Outcome of a master-key rotation.
#[derive(Debug, Default)]
pub struct RotationReport {
    pub rewrapped: usize,
    pub already_current: usize,
}

/// Re-wraps every organization's data key with `new` (a key `old` must be able to unwrap
/// them: the current or a previous master key). Idempotent: run it again after a failure.
pub async fn rotate_master_key(
    db: &Db,
    old: &Secrets,
    new: &Secrets,
) -> Result<RotationReport, VaultError> {
    let mut report = RotationReport::default();
    for row in org_keys::all(db).await? {
        if row.master_key_id == new.current_key_id() {
            report.already_current += 1;
            continue;
        }
        let aad = dek_aad(row.org_id, row.id);
        let dek = old.decrypt(&row.wrapped_key, &row.master_key_id, &aad)?;
        let wrapped = new.encrypt(&dek, &aad)?;
        if org_keys::rewrap(db, row.id, &row.wrapped_key, &wrapped, new.current_key_id()).await? {
            report.rewrapped += 1;
        }
    }
    Ok(report)
}
