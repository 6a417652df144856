//! `agentry admin …`: the operator's commands, run on the server machine against the database
//! directly (no API key needed; whoever can run them can read the database anyway).

use crate::config::Config;
use crate::serve::{load_secrets, open_platform};
use agentry_core::authz::Role;
use agentry_core::ids::{OrgId, UserId};
use agentry_engine::secrets::{self, Secrets};
use agentry_engine::service::account;
use agentry_engine::service::audit::{self, Change};
use agentry_engine::service::principal::{Actor, RequestMeta};
use agentry_store::users;
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an account (the password is read from AGENTRY_NEW_PASSWORD or stdin).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Make the user a member of this org (id) …
        #[arg(long)]
        org: Option<uuid::Uuid>,
        /// … with this role.
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Set a new password (read from AGENTRY_NEW_PASSWORD or stdin); every session ends.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Create an organization with one workspace; prints its id.
    CreateOrg {
        #[arg(long)]
        name: String,
        /// Email of an existing account to make owner.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Re-wrap every organization's data key with a new master key. In file mode the key file is
    /// replaced (the old key is kept in master.key.previous so running servers keep working);
    /// with AGENTRY_MASTER_KEY, pass the new key with --new-key and deploy it afterwards.
    RotateMasterKey {
        /// The new key (64 hex characters); generated when omitted (file mode only).
        #[arg(long, env = "AGENTRY_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AGENTRY_NEW_PASSWORD") {
        return Ok(p);
    }
    eprintln!("password (then Enter):");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn load(config_file: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = Config::load(config_file.as_deref())?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    crate::logging::init(false);
    Ok(config)
}

async fn record(platform: &agentry_engine::Platform, org: OrgId, change: Change) {
    let org = agentry_core::scope::OrgScope { org_id: org };
    audit::record(
        platform,
        org,
        &Actor::System,
        &RequestMeta::default(),
        change,
    )
    .await;
}

pub async fn admin(
    config_file: Option<PathBuf>,
    command: AdminCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::CreateUser {
            email,
            name,
            org,
            role,
            data_dir,
        } => {
            let config = load(config_file, data_dir)?;
            let (platform, db) = open_platform(&config, &config.bind).await?;
            if Role::parse(&role).is_none() {
                anyhow::bail!("--role must be owner, admin, member or viewer");
            }
            let password = read_password()?;
            let membership = org.map(|o| (OrgId(o), None, role.as_str()));
            let id = account::create_user(&platform, &email, &name, Some(&password), membership)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if let Some(o) = org {
                let change = Change::new("member.create", "user", id.0)
                    .after(serde_json::json!({"email": email, "role": role}));
                record(&platform, OrgId(o), change).await;
            }
            println!("{}", id.0);
            db.close().await;
        }
        AdminCommand::ResetPassword { email, data_dir } => {
            let config = load(config_file, data_dir)?;
            let (platform, db) = open_platform(&config, &config.bind).await?;
            let user = users::find_by_email(&db, &email)
                .await?
                .with_context(|| format!("no account with the email {email}"))?;
            let hash = account::hash_password(&read_password()?)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            users::set_password(&db, UserId(user.id), &hash).await?;
            agentry_store::sessions::revoke_all(&db, UserId(user.id), None).await?;
            for m in users::memberships_of(&db, UserId(user.id)).await? {
                if m.is_org_level() {
                    let change = Change::new("account.password_reset", "user", user.id);
                    record(&platform, OrgId(m.org_id), change).await;
                }
            }
            eprintln!("password set for {email}; their sessions have ended");
            db.close().await;
        }
        AdminCommand::CreateOrg {
            name,
            owner,
            data_dir,
        } => {
            let config = load(config_file, data_dir)?;
            let (platform, db) = open_platform(&config, &config.bind).await?;
            let owner_id = match owner {
                Some(email) => Some(UserId(
                    users::find_by_email(&db, &email)
                        .await?
                        .with_context(|| format!("no account with the email {email}"))?
                        .id,
                )),
                None => None,
            };
            let scope = agentry_engine::service::orgs::create_org(&platform, &name, owner_id)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            record(
                &platform,
                scope.org_id,
                Change::new("org.create", "org", scope.org_id.0)
                    .after(serde_json::json!({"name": name})),
            )
            .await;
            println!("{}", scope.org_id.0);
            db.close().await;
        }
        AdminCommand::RotateMasterKey { new_key, data_dir } => {
            let config = load(config_file, data_dir)?;
            let old = load_secrets(&config)?;
            let env_mode = std::env::var("AGENTRY_MASTER_KEY").is_ok();
            let key = match new_key {
                Some(text) => parse_hex_key(&text)?,
                None if env_mode => anyhow::bail!(
                    "AGENTRY_MASTER_KEY is set: pass the new key with --new-key (64 hex characters)"
                ),
                None => secrets::generate_master_key()?,
            };
            let new = Secrets::from_key(key);
            let db = agentry_store::Db::connect(&config.database_url(), 2).await?;
            let report = agentry_engine::vault::rotate_master_key(&db, &old, &new).await?;
            if !env_mode {
                secrets::install_key_file(&config.data_dir, &key)?;
            }
            eprintln!(
                "re-wrapped {} data keys ({} already used the new key); new master key id {}",
                report.rewrapped,
                report.already_current,
                new.current_key_id()
            );
            if env_mode {
                eprintln!(
                    "now set AGENTRY_MASTER_KEY to the new key and AGENTRY_MASTER_KEY_PREVIOUS to the old one on every replica, restart them one by one, then drop the previous key"
                );
            }
            db.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_hex_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).context("the key must be 64 hex characters")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key must be 32 bytes (64 hex characters)"))
}
