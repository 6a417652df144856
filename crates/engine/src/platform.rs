//! The shared state behind every service function and worker.

use crate::config::EngineConfig;
use crate::models::ModelCache;
use crate::notifier::Notifier;
use crate::secrets::Secrets;
use agentry_store::Db;
use agentry_tools::ToolRegistry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the binary assembles to build a [`Platform`].
pub struct PlatformParts {
    pub db: Db,
    pub secrets: Secrets,
    /// Re-reads the master keys after a rotation by another process (file mode).
    pub reload_keys: Option<crate::vault::ReloadKeys>,
    /// Outbound HTTP rules (SSRF guard) for every user-chosen URL: provider base URLs, OIDC.
    pub egress: agentry_tools::guard::GuardConfig,
    /// Allow plain-http identity providers (development and tests only).
    pub sso_allow_http: bool,
    pub mailer: Option<crate::mailer::Mailer>,
    pub tools: ToolRegistry,
    pub config: EngineConfig,
    pub http: reqwest::Client,
}

/// One per process, shared as `Arc<Platform>`.
pub struct Platform {
    pub db: Db,
    /// The SSRF-guarded client (checks provider base URLs; the OIDC client wraps it).
    pub egress: agentry_tools::guard::GuardedHttpClient,
    pub oidc: agentry_oidc::OidcHttp,
    pub mailer: Option<crate::mailer::Mailer>,
    pub vault: crate::vault::Vault,
    pub tools: ToolRegistry,
    pub config: EngineConfig,
    pub notifier: Notifier,
    pub(crate) models: ModelCache,
    pub(crate) response_cache: crate::response_cache::ResponseCache,
    /// This installation's random id (read once from the database).
    instance_id: tokio::sync::OnceCell<uuid::Uuid>,
    /// Circuit breakers per (org's provider, model); this process's view of provider health.
    pub breakers: agentry_llm::CircuitBreakers,
    /// Each org's first workspace (the default one), which cannot be deleted: read once.
    default_workspaces: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, uuid::Uuid>>,
    /// Parsed and validated workflow versions (immutable, so cached without invalidation).
    workflow_defs: std::sync::Mutex<
        std::collections::HashMap<(uuid::Uuid, i64), Arc<agentry_workflow::ValidatedWorkflow>>,
    >,
    /// Identifies this process in job leases.
    pub worker_id: String,
    workers_running: AtomicBool,
    /// Flips to true once on shutdown; workers, SSE streams and waiting requests watch it.
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Platform {
    pub fn new(parts: PlatformParts) -> Result<Arc<Self>, crate::ServiceError> {
        let egress = agentry_tools::guard::GuardedHttpClient::new(parts.egress.clone())
            .map_err(|e| crate::ServiceError::internal("building the outbound HTTP client", e))?;
        let oidc = agentry_oidc::OidcHttp::new(parts.egress)
            .map_err(|e| crate::ServiceError::internal("building the OIDC client", e))?
            .allow_insecure_http(parts.sso_allow_http);
        Ok(Arc::new(Self {
            egress,
            oidc,
            mailer: parts.mailer,
            models: ModelCache::new(parts.http),
            response_cache: match &parts.config.redis_url {
                Some(url) => crate::response_cache::ResponseCache::redis(url).map_err(|e| {
                    crate::ServiceError::internal("the response cache's Redis connection", e)
                })?,
                None => Default::default(),
            },
            instance_id: tokio::sync::OnceCell::new(),
            breakers: agentry_llm::CircuitBreakers::new(agentry_llm::BreakerConfig::default()),
            default_workspaces: Default::default(),
            workflow_defs: Default::default(),
            vault: crate::vault::Vault::new(parts.db.clone(), parts.secrets, parts.reload_keys),
            db: parts.db,
            tools: parts.tools,
            config: parts.config,
            notifier: Notifier::default(),
            worker_id: format!("{}-{}", hostname(), uuid::Uuid::now_v7()),
            workers_running: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
        }))
    }

    /// Starts the shutdown: workers stop claiming and drain, event streams and waiting requests
    /// end so the HTTP server can finish.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once shutdown has begun.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    pub(crate) fn subscribe_shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// True while this process's workers are taking work (or when it runs none by design).
    pub fn workers_healthy(&self) -> bool {
        !self.config.run_workers || self.workers_running.load(Ordering::Relaxed)
    }

    /// A workflow version, parsed and validated once per process (versions never change).
    pub(crate) async fn workflow_definition(
        &self,
        workflow_id: uuid::Uuid,
        version: i64,
    ) -> Result<Arc<agentry_workflow::ValidatedWorkflow>, crate::ServiceError> {
        if let Ok(cache) = self.workflow_defs.lock()
            && let Some(found) = cache.get(&(workflow_id, version))
        {
            return Ok(found.clone());
        }
        let row = agentry_store::workflows::version_for_execution(&self.db, workflow_id, version)
            .await?
            .ok_or_else(|| {
                crate::ServiceError::new(
                    agentry_core::ErrorCode::WorkflowNotFound,
                    format!("workflow version {version} no longer exists"),
                )
            })?;
        let validated = Arc::new(crate::service::workflows::load_definition(
            &row.definition.0,
        )?);
        if let Ok(mut cache) = self.workflow_defs.lock() {
            if cache.len() > 1000 {
                cache.clear();
            }
            cache.insert((workflow_id, version), validated.clone());
        }
        Ok(validated)
    }

    /// The org's default (first) workspace.
    pub async fn default_workspace(
        &self,
        org: agentry_core::scope::OrgScope,
    ) -> Result<Option<agentry_core::ids::WorkspaceId>, agentry_store::StoreError> {
        let cached = self
            .default_workspaces
            .lock()
            .ok()
            .and_then(|m| m.get(&org.org_id.0).copied());
        if let Some(ws) = cached {
            return Ok(Some(agentry_core::ids::WorkspaceId(ws)));
        }
        let first = agentry_store::orgs::workspaces(&self.db, org)
            .await?
            .first()
            .map(|w| w.id);
        if let (Some(ws), Ok(mut m)) = (first, self.default_workspaces.lock()) {
            m.insert(org.org_id.0, ws);
        }
        Ok(first.map(agentry_core::ids::WorkspaceId))
    }

    pub(crate) fn set_workers_running(&self, running: bool) {
        self.workers_running.store(running, Ordering::Relaxed);
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "agentry".into())
}

impl Platform {
    /// This installation's random id, shared by its replicas (created on first use).
    pub async fn instance_id(&self) -> Result<uuid::Uuid, agentry_store::StoreError> {
        self.instance_id
            .get_or_try_init(|| agentry_store::org_settings::instance_id(&self.db))
            .await
            .copied()
    }
}
