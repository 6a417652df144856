//! Budgets: definitions (CRUD), their current period, and the delivery of threshold alerts
//! (Standard Webhooks signed POST, and email when SMTP is configured).

use crate::budget::{Threshold, ThresholdAction, period_start, thresholds_of};
use crate::error::{ServiceError, ServiceResult};
use crate::platform::Platform;
use crate::pricing::{format_pico, parse_usd_pico};
use crate::vault::Binding;
use agentry_core::ErrorCode;
use agentry_core::agent::FieldError;
use agentry_core::scope::OrgScope;
use agentry_store::Json;
use agentry_store::budgets::{self, AlertRow, BudgetRow, PeriodRow};
use base64::Engine as _;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub const SCOPE_KINDS: [&str; 5] = ["org", "workspace", "agent", "api_key", "end_user"];
pub const PERIODS: [&str; 3] = ["day", "week", "month"];
const MAX_THRESHOLDS: usize = 10;

/// What a user sends to create or replace a budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    pub name: String,
    pub scope: BudgetScope,
    pub period: String,
    #[serde(default = "utc")]
    pub timezone: String,
    /// A USD amount as a decimal string or number, e.g. "25.00".
    #[serde(default)]
    pub limit_usd: Option<Value>,
    #[serde(default)]
    pub limit_tokens: Option<i64>,
    #[serde(default)]
    pub thresholds: Option<Vec<Threshold>>,
    #[serde(default)]
    pub notify_url: Option<String>,
    #[serde(default)]
    pub notify_email: Option<String>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetScope {
    pub kind: String,
    /// The workspace, agent or API key id, or the end-user id; absent for `org`.
    #[serde(default)]
    pub id: Option<String>,
}

/// A budget with its current period.
#[derive(Debug, Clone)]
pub struct BudgetInfo {
    pub row: BudgetRow,
    pub thresholds: Vec<Threshold>,
    pub period_start: String,
    pub spent: i64,
    pub reserved: i64,
    /// Shown once, when the budget is created with a notify URL (or the URL changes).
    pub notify_secret: Option<String>,
}

impl BudgetInfo {
    pub fn amount(&self, value: i64) -> Value {
        if self.row.unit == "tokens" {
            json!(value)
        } else {
            json!(format_pico(value))
        }
    }
}

fn usd_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn validate(
    platform: &Platform,
    scope: OrgScope,
    input: &BudgetInput,
) -> ServiceResult<(String, String, i64, Vec<Threshold>)> {
    let mut errors = Vec::new();
    if input.name.trim().is_empty() || input.name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1-200 characters"));
    }
    if !PERIODS.contains(&input.period.as_str()) {
        errors.push(FieldError::new("period", "must be day, week or month"));
    }
    if input.timezone.parse::<chrono_tz::Tz>().is_err() {
        errors.push(FieldError::new(
            "timezone",
            "must be an IANA time zone such as UTC or Europe/Berlin",
        ));
    }
    let mut scope_ref = String::new();
    match (input.scope.kind.as_str(), &input.scope.id) {
        ("org", None) => {}
        ("org", Some(_)) => errors.push(FieldError::new(
            "scope.id",
            "must be absent for an org budget",
        )),
        ("end_user", Some(id)) if !id.is_empty() && id.len() <= 200 => scope_ref = id.clone(),
        ("workspace" | "agent" | "api_key", Some(id)) => match Uuid::parse_str(id) {
            Ok(uuid)
                if budgets::target_exists(&platform.db, scope, &input.scope.kind, uuid).await? =>
            {
                scope_ref = uuid.to_string();
            }
            _ => errors.push(FieldError::new(
                "scope.id",
                format!(
                    "no {} with this id exists in the organization",
                    input.scope.kind.replace('_', " ")
                ),
            )),
        },
        (kind, _) if !SCOPE_KINDS.contains(&kind) => errors.push(FieldError::new(
            "scope.kind",
            "must be org, workspace, agent, api_key or end_user",
        )),
        _ => errors.push(FieldError::new("scope.id", "is required for this kind")),
    }
    let (unit, limit) = match (&input.limit_usd, input.limit_tokens) {
        (Some(usd), None) => match usd_text(usd).as_deref().and_then(parse_usd_pico) {
            Some(p) if p > 0 => ("usd".to_string(), p),
            _ => {
                errors.push(FieldError::new(
                    "limit_usd",
                    "must be a positive USD amount such as \"25.00\" (at most 12 decimals)",
                ));
                (String::new(), 0)
            }
        },
        (None, Some(t)) if t > 0 => ("tokens".to_string(), t),
        (None, Some(_)) => {
            errors.push(FieldError::new("limit_tokens", "must be positive"));
            (String::new(), 0)
        }
        _ => {
            errors.push(FieldError::new(
                "limit_usd",
                "give exactly one of limit_usd and limit_tokens",
            ));
            (String::new(), 0)
        }
    };
    let thresholds = input.thresholds.clone().unwrap_or_else(|| {
        vec![Threshold {
            percent: 100,
            action: ThresholdAction::Block,
        }]
    });
    if thresholds.is_empty() || thresholds.len() > MAX_THRESHOLDS {
        errors.push(FieldError::new(
            "thresholds",
            format!("give 1-{MAX_THRESHOLDS} thresholds"),
        ));
    }
    for (i, t) in thresholds.iter().enumerate() {
        if t.percent == 0 || t.percent > 1000 {
            errors.push(FieldError::new(
                format!("thresholds[{i}].percent"),
                "must be between 1 and 1000",
            ));
        }
    }
    if let Some(url) = &input.notify_url
        && let Err(e) = platform.egress.check_url(url)
    {
        errors.push(FieldError::new(
            "notify_url",
            format!("is not allowed: {e}"),
        ));
    }
    if let Some(email) = &input.notify_email
        && (!email.contains('@') || email.len() > 254)
    {
        errors.push(FieldError::new("notify_email", "must be an email address"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::validation(errors));
    }
    Ok((scope_ref, unit, limit, thresholds))
}

/// A fresh webhook secret for a budget's URL: (the secret, shown once; its sealed form).
async fn seal_new_secret(
    platform: &Platform,
    scope: OrgScope,
    id: Uuid,
    url: &str,
) -> ServiceResult<(String, String)> {
    let secret = new_webhook_secret()?;
    let sealed = platform
        .vault
        .seal(scope, &secret_binding(id, url), &secret)
        .await
        .map_err(|e| ServiceError::internal("sealing the webhook secret", e))?;
    Ok((secret, sealed))
}

fn secret_binding(id: Uuid, url: &str) -> Binding<'_> {
    Binding {
        purpose: "budget_webhook_secret",
        row: id,
        context: url,
    }
}

/// A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
fn new_webhook_secret() -> ServiceResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServiceError::internal("random webhook secret", e))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

async fn info(
    platform: &Platform,
    row: BudgetRow,
    secret: Option<String>,
) -> ServiceResult<BudgetInfo> {
    let start = period_start(&row.period, &row.timezone, Utc::now());
    let period = budgets::period(&platform.db, row.id, &start).await?;
    let PeriodRow {
        spent, reserved, ..
    } = period.unwrap_or(PeriodRow {
        budget_id: row.id,
        period_start: start.clone(),
        spent: 0,
        reserved: 0,
    });
    Ok(BudgetInfo {
        thresholds: thresholds_of(&row),
        row,
        period_start: start,
        spent,
        reserved,
        notify_secret: secret,
    })
}

pub async fn create(
    platform: &Platform,
    scope: OrgScope,
    input: BudgetInput,
) -> ServiceResult<BudgetInfo> {
    let (scope_ref, unit, limit, thresholds) = validate(platform, scope, &input).await?;
    let id = Uuid::now_v7();
    let (secret, sealed) = match &input.notify_url {
        Some(url) => {
            let (secret, sealed) = seal_new_secret(platform, scope, id, url).await?;
            (Some(secret), Some(sealed))
        }
        None => (None, None),
    };
    let now = Utc::now();
    let row = BudgetRow {
        id,
        org_id: scope.org_id.0,
        name: input.name.trim().to_string(),
        scope_kind: input.scope.kind.clone(),
        scope_ref,
        period: input.period.clone(),
        timezone: input.timezone.clone(),
        unit,
        limit_amount: limit,
        thresholds: Json(serde_json::to_value(&thresholds).unwrap_or(Value::Null)),
        notify_url: input.notify_url.clone(),
        notify_secret_encrypted: sealed,
        notify_email: input.notify_email.clone(),
        created_at: now,
        updated_at: now,
    };
    budgets::create(&platform.db, &row).await?;
    info(platform, row, secret).await
}

pub async fn update(
    platform: &Platform,
    scope: OrgScope,
    id: Uuid,
    input: BudgetInput,
) -> ServiceResult<BudgetInfo> {
    let current = get_row(platform, scope, id).await?;
    let (scope_ref, unit, limit, thresholds) = validate(platform, scope, &input).await?;
    // The secret is bound to the URL: a new URL gets a new secret (shown once).
    let (secret, sealed) = match &input.notify_url {
        Some(url) if current.notify_url.as_deref() == Some(url.as_str()) => {
            (None, current.notify_secret_encrypted.clone())
        }
        Some(url) => {
            let (secret, sealed) = seal_new_secret(platform, scope, id, url).await?;
            (Some(secret), Some(sealed))
        }
        None => (None, None),
    };
    let row = BudgetRow {
        name: input.name.trim().to_string(),
        scope_kind: input.scope.kind.clone(),
        scope_ref,
        period: input.period.clone(),
        timezone: input.timezone.clone(),
        unit,
        limit_amount: limit,
        thresholds: Json(serde_json::to_value(&thresholds).unwrap_or(Value::Null)),
        notify_url: input.notify_url.clone(),
        notify_secret_encrypted: sealed,
        notify_email: input.notify_email.clone(),
        updated_at: Utc::now(),
        ..current
    };
    budgets::update(&platform.db, &row).await?;
    info(platform, row, secret).await
}

async fn get_row(platform: &Platform, scope: OrgScope, id: Uuid) -> ServiceResult<BudgetRow> {
    budgets::get(&platform.db, scope, id).await?.ok_or_else(|| {
        ServiceError::new(ErrorCode::BudgetNotFound, format!("no budget with id {id}"))
    })
}

pub async fn get(
    platform: &Platform,
    scope: OrgScope,
    id: Uuid,
) -> ServiceResult<(BudgetInfo, Vec<AlertRow>)> {
    let row = get_row(platform, scope, id).await?;
    let alerts = budgets::alerts(&platform.db, scope, id).await?;
    Ok((info(platform, row, None).await?, alerts))
}

pub async fn list(platform: &Platform, scope: OrgScope) -> ServiceResult<Vec<BudgetInfo>> {
    let mut out = Vec::new();
    for row in budgets::list(&platform.db, scope).await? {
        out.push(info(platform, row, None).await?);
    }
    Ok(out)
}

pub async fn delete(platform: &Platform, scope: OrgScope, id: Uuid) -> ServiceResult<BudgetRow> {
    let row = get_row(platform, scope, id).await?;
    budgets::delete(&platform.db, scope, id).await?;
    Ok(row)
}

/// Delivers one threshold alert (the `budget_alert` job). Failures are recorded on the alert;
/// a delivery is tried three times with a short pause.
pub async fn deliver_alert(platform: &Platform, alert_id: Uuid) -> ServiceResult<()> {
    let Some(alert) = budgets::alert_for_job(&platform.db, alert_id).await? else {
        return Ok(());
    };
    let Some(budget) = budgets::get_for_job(&platform.db, alert.budget_id).await? else {
        return Ok(());
    };
    let scope = OrgScope {
        org_id: budget.org_id.into(),
    };
    let amount = |v: i64| {
        if budget.unit == "tokens" {
            json!(v)
        } else {
            json!(format_pico(v))
        }
    };
    let payload = json!({
        "type": "budget.threshold",
        "timestamp": Utc::now().to_rfc3339(),
        "data": {
            "budget_id": budget.id,
            "name": budget.name,
            "scope": {"kind": budget.scope_kind, "id": budget.scope_ref},
            "period": budget.period,
            "period_start": alert.period_start,
            "unit": budget.unit,
            "limit": amount(budget.limit_amount),
            "spent": amount(alert.spent),
            "threshold_percent": alert.threshold,
            "action": alert.action,
        }
    });
    let mut errors = Vec::new();
    if let (Some(url), Some(sealed)) = (&budget.notify_url, &budget.notify_secret_encrypted) {
        let secret = platform
            .vault
            .open(scope, &secret_binding(budget.id, url), sealed)
            .await
            .map_err(|e| ServiceError::internal("webhook secret", e))?;
        if let Err(e) = post_webhook(platform, url, &secret, &alert.id.to_string(), &payload).await
        {
            errors.push(format!("webhook: {e}"));
        }
    }
    if let Some(to) = &budget.notify_email {
        match &platform.mailer {
            Some(mailer) => {
                let subject = format!(
                    "Budget '{}' reached {}% ({})",
                    budget.name, alert.threshold, alert.action
                );
                let body = format!(
                    "The budget '{}' has used {} of its {} limit of {} for the period starting {}.\nAction: {}.",
                    budget.name,
                    amount(alert.spent),
                    budget.period,
                    amount(budget.limit_amount),
                    alert.period_start,
                    alert.action
                );
                if let Err(e) = mailer.send(to, &subject, &body).await {
                    errors.push(format!("email: {e}"));
                }
            }
            None => errors.push("email: no SMTP server is configured".to_string()),
        }
    }
    let (state, error) = if errors.is_empty() {
        ("delivered", None)
    } else {
        ("failed", Some(errors.join("; ")))
    };
    budgets::set_alert_delivery(&platform.db, alert.id, state, error.as_deref()).await?;
    Ok(())
}

async fn post_webhook(
    platform: &Platform,
    url: &str,
    secret: &str,
    id: &str,
    payload: &Value,
) -> Result<(), String> {
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
        }
        let timestamp = Utc::now().timestamp();
        let signature = agentry_triggers::webhook::sign(secret, id, timestamp, &body)
            .map_err(|e| e.to_string())?;
        let mut request = agentry_tools::guard::GuardedRequest::post(url, body.clone());
        let headers = [
            ("content-type", "application/json".to_string()),
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        for (name, value) in headers {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
                request.headers.insert(name, v);
            }
        }
        match platform.egress.send(request).await {
            Ok(r) if (200..300).contains(&r.status) => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
