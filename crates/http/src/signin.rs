//! Sign-in throttling, shared by the API and the dashboard. Attempts are limited per (account,
//! client address) and per client address. There is deliberately no per-account limit across all
//! addresses: an attacker could then lock the real owner out just by guessing from elsewhere.

use crate::AppState;
use crate::error::ApiError;
use agentry_core::ErrorCode;
use agentry_ratelimit::RouteClass;

pub async fn throttle(state: &AppState, email: &str, ip: Option<&str>) -> Result<(), ApiError> {
    let ip = ip.unwrap_or("unknown");
    let account = agentry_store::users::normalize_email(email);
    let checks = [
        (RouteClass::SignInIp, format!("signin-ip:{ip}")),
        (
            RouteClass::SignInAccountIp,
            format!("signin:{account}|{ip}"),
        ),
    ];
    for (class, key) in checks {
        let decision = state.limiter.check(state.policies.get(class), &key).await;
        if !decision.allowed {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many sign-in attempts; wait a little and try again",
            )
            .with_headers(decision.headers()));
        }
    }
    Ok(())
}
