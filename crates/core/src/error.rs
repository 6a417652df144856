//! The one table of error codes. API errors and run failures both use these codes; the HTTP
//! layer maps them to a status with [`ErrorCode::http_status`]. `docs/errors.md` documents every
//! code, and a test keeps the two in step.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $variant:ident => ($code:literal, $status:literal, $doc:literal), )*) => {
        /// A stable, documented error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( #[doc = $doc] $variant, )*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The HTTP status an API error with this code answers with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// One sentence on what the code means.
            pub fn description(self) -> &'static str {
                match self { $( ErrorCode::$variant => $doc, )* }
            }

            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidJson => ("invalid_json", 400, "The request body is not valid JSON."),
    InvalidRequest => ("invalid_request", 400, "The request is malformed (bad header, query string or path parameter)."),
    Unauthorized => ("unauthorized", 401, "No valid bearer token or session was given."),
    InvalidCredentials => ("invalid_credentials", 401, "The email and password (or the code) do not match an active account."),
    MfaRequired => ("mfa_required", 401, "The password was right; now send the code from the authenticator app."),
    Forbidden => ("forbidden", 403, "The credentials are valid but may not perform this action."),
    CsrfRejected => ("csrf_rejected", 403, "A cookie-authenticated request came from another site; send it from the dashboard or use an API key."),
    WorkspaceNotFound => ("workspace_not_found", 404, "No workspace with this id exists in the organization (or you are not a member of it)."),
    OrgNotFound => ("org_not_found", 404, "No organization with this id exists (or you are not a member of it)."),
    UserNotFound => ("user_not_found", 404, "No member with this id exists in the organization."),
    InvitationNotFound => ("invitation_not_found", 404, "No pending invitation with this id or token exists."),
    SessionNotFound => ("session_not_found", 404, "No session with this id exists for this user."),
    SsoProviderNotFound => ("sso_provider_not_found", 404, "No sign-in provider with this id or slug exists."),
    TokenInvalid => ("token_invalid", 400, "The invitation or reset token is missing, malformed, used, or expired."),
    UserExists => ("user_exists", 409, "An account with this email already exists."),
    MemberExists => ("member_exists", 409, "This person is already a member with a role here."),
    LastOwner => ("last_owner", 409, "The organization must keep at least one owner."),
    SsoProviderExists => ("sso_provider_exists", 409, "A sign-in provider with this slug already exists."),
    ProviderKeyRequired => ("provider_key_required", 422, "The provider's base URL changed; its API key must be entered again for the new URL."),
    WeakPassword => ("weak_password", 422, "The password is too short, too long, or one of the most common passwords."),
    SsoFailed => ("sso_failed", 502, "Signing in through the identity provider failed; details say at which step."),
    ConcurrencyLimited => ("concurrency_limited", 429, "The organization already has as many runs in progress as it may; retry when some finish."),
    RouteNotFound => ("route_not_found", 404, "No API route matches this path."),
    AgentNotFound => ("agent_not_found", 404, "No agent with this slug exists in the workspace."),
    RunNotFound => ("run_not_found", 404, "No run with this id exists in the workspace."),
    ProviderNotFound => ("provider_not_found", 404, "No provider with this name exists in the organization."),
    ApiKeyNotFound => ("api_key_not_found", 404, "No API key with this id exists in the organization."),
    MethodNotAllowed => ("method_not_allowed", 405, "The route exists but not with this HTTP method."),
    AgentExists => ("agent_exists", 409, "An agent with this slug already exists in the workspace."),
    ProviderExists => ("provider_exists", 409, "A provider with this name already exists in the organization."),
    IdempotencyKeyReused => ("idempotency_key_reused", 409, "The Idempotency-Key was already used for a different request."),
    RunNotCancellable => ("run_not_cancellable", 409, "The run has already ended and cannot be cancelled."),
    PayloadTooLarge => ("payload_too_large", 413, "The request body exceeds the size limit."),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The request body must be sent as application/json."),
    ValidationFailed => ("validation_failed", 422, "A field has an invalid value; details name the field."),
    UnknownTool => ("unknown_tool", 422, "The agent names a tool that does not exist; details list the tools that do."),
    UnknownProvider => ("unknown_provider", 422, "The agent's model names a provider that does not exist; details list the providers that do."),
    RateLimited => ("rate_limited", 429, "Too many requests; retry after the time in the Retry-After header."),
    Internal => ("internal", 500, "An unexpected error on our side; the request id finds it in the logs."),
    Unavailable => ("unavailable", 503, "The server is starting, shutting down, or cannot reach its database."),
    ProviderAuthFailed => ("provider_auth_failed", 502, "The model provider refused the credentials (HTTP 401/403)."),
    ProviderUnavailable => ("provider_unavailable", 502, "The model provider could not be reached or kept failing after bounded retries."),
    ProviderRateLimited => ("provider_rate_limited", 502, "The model provider kept answering 429 beyond the retry budget."),
    ProviderBadResponse => ("provider_bad_response", 502, "The model provider answered with something that is not a valid completion."),
    ProviderRejected => ("provider_rejected", 502, "The model provider rejected the request (HTTP 4xx other than auth and rate limits)."),
    ProviderTimeout => ("provider_timeout", 504, "The model provider did not answer within the configured timeouts."),
    ProviderContextOverflow => ("provider_context_overflow", 422, "The conversation is longer than the model's context window (and no larger fallback model is configured)."),
    ProviderQuotaExhausted => ("provider_quota_exhausted", 402, "The provider account has no quota or credit left; add credit at the provider."),
    ProviderContentFiltered => ("provider_content_filtered", 422, "The provider's content filter refused the request or the answer."),
    ProviderCircuitOpen => ("provider_circuit_open", 503, "The provider and model failed repeatedly; calls are paused until a probe succeeds (and no fallback model answered)."),
    BudgetExceeded => ("budget_exceeded", 402, "A budget's limit for the current period is reached; details name the budget."),
    BudgetNotFound => ("budget_not_found", 404, "No budget with this id exists in the organization."),
    PriceNotFound => ("price_not_found", 404, "No price override with this id exists in the organization."),
    OutputSchemaMismatch => ("output_schema_mismatch", 422, "The model's answer did not match the agent's output schema after the allowed repair turns."),
    GuardrailBlocked => ("guardrail_blocked", 422, "A guardrail rule blocked the input, a tool result or the answer; the run trace names the rule."),
    MaxStepsExceeded => ("max_steps_exceeded", 422, "The agent used all of its max_steps without giving a final answer."),
    RunCancelled => ("run_cancelled", 409, "The run was cancelled."),
    WorkflowNotFound => ("workflow_not_found", 404, "No workflow with this slug (or version) exists in the workspace."),
    WorkflowExists => ("workflow_exists", 409, "A workflow with this name already exists in the workspace; PUT a new version instead."),
    WorkflowInvalid => ("workflow_invalid", 422, "The workflow definition has errors; details list each with its node, field and (for YAML) line."),
    WorkflowRunNotFound => ("workflow_run_not_found", 404, "No workflow run with this id exists in the workspace."),
    WorkflowRunNotRetryable => ("workflow_run_not_retryable", 409, "Only a failed (dead-lettered) run can be retried, and only once."),
    WorkflowInputInvalid => ("workflow_input_invalid", 422, "The run input does not match the workflow's input schema; details name each violation."),
    WorkflowLimitExceeded => ("workflow_limit_exceeded", 422, "The run hit a limit (steps, state or node output size, sub-workflow depth, map fan-out); the message names it."),
    NodeFailed => ("node_failed", 422, "A workflow node failed after its retries and has no error route; the run is dead-lettered and can be retried from that node."),
    ApprovalNotFound => ("approval_not_found", 404, "No approval with this id exists in the workspace."),
    ApprovalAlreadyDecided => ("approval_already_decided", 409, "The approval was already decided (by someone else, or by its timeout); the first decision stands."),
    ApprovalExpired => ("approval_expired", 410, "The approval's deadline passed; its timeout outcome applies."),
    TriggerNotFound => ("trigger_not_found", 404, "No trigger with this id exists in the workspace."),
    WebhookRejected => ("webhook_rejected", 401, "The webhook delivery's signature or timestamp did not verify against the trigger's secrets."),
    TriggerPaused => ("trigger_paused", 409, "The trigger is paused; resume it to accept deliveries again (senders may retry later)."),
    AgentUnavailable => ("agent_unavailable", 422, "The run's agent version or provider no longer exists."),
    DelegationDepthExceeded => ("delegation_depth_exceeded", 422, "A crew delegation would go deeper than the crew's max_depth; the manager sees this as the tool result."),
    DelegationLimitExceeded => ("delegation_limit_exceeded", 422, "A crew manager asked for more delegations in one run than its max_delegations; the manager sees this as the tool result."),
    DelegationLoop => ("delegation_loop", 422, "A delegation would start an agent that is already in the chain of runs above it; the message names the chain."),
    DelegationFailed => ("delegation_failed", 422, "A member agent's child run failed or was cancelled; the message names the child run and its error."),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
