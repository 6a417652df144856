//! The identity pages of the dashboard in a real headless Chromium: the owner signs in with
//! email and password, invites someone and reads the one-time link off the page, the invitee
//! accepts it and lands in the dashboard, the owner changes their role, creates an API key (shown
//! once), revokes it (checked over HTTP), and finds all of it in the audit log.
//! Skipped loudly when the browser is missing, like `browser.rs`.

use crate::browser::Browser;
use crate::harness::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};
use std::time::Duration;

const INVITEE: &str = "newbie@example.com";
const INVITEE_PASSWORD: &str = "a quiet violet tractor at noon";

/// A bearer request to the API; returns the status.
async fn api_status(app: &TestApp, key: &str, path: &str) -> u16 {
    app.http
        .get(app.url(path))
        .bearer_auth(key)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_accept_change_role_and_manage_api_keys_in_chromium() {
    let Some(browser) = Browser::start().await else {
        eprintln!(
            "NOTE: chromium/chromedriver not installed: the identity browser test was SKIPPED"
        );
        return;
    };
    let app = TestApp::spawn().await;

    // The owner signs in with email and password and invites someone.
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.goto(&app.url("/ui/members")).await;
    assert!(browser.text("body").await.contains(ADMIN_EMAIL));
    browser.type_into("#invite-email", INVITEE).await;
    browser.click("#invite-role option[value='member']").await;
    browser.click("#invite-form button[type=submit]").await;
    let link = browser
        .wait_for_text("#one-time-secret", "/ui/invite?token=inv_")
        .await;
    assert!(
        link.starts_with(&app.url("/ui/invite?token=")),
        "the link is built from the public URL: {link}"
    );
    let pending = browser.text("table.invitations").await;
    assert!(pending.contains(INVITEE), "{pending}");
    // Shown once: a reload no longer has it.
    browser.goto(&app.url("/ui/members")).await;
    assert!(!browser.exists("#one-time-secret").await);
    assert!(!browser.text("body").await.contains("inv_"));

    // The invitee, in a signed-out browser, accepts with a name and a password.
    browser.sign_out().await;
    browser.goto(&link).await;
    assert!(browser.text("body").await.contains(INVITEE));
    browser.type_into("#name", "New Person").await;
    browser.type_into("#password", INVITEE_PASSWORD).await;
    browser.type_into("#password_again", INVITEE_PASSWORD).await;
    browser
        .click("#accept-invitation button[type=submit]")
        .await;
    browser.wait_for_url("/ui/agents").await;
    assert_eq!(browser.text("header .me").await, INVITEE);
    // A member sees no API keys or audit log in the navigation.
    let nav = browser.text("header nav").await;
    assert!(nav.contains("Members") && !nav.contains("API keys") && !nav.contains("Audit log"));
    // The link worked once.
    browser.goto(&link).await;
    assert!(browser.text("#link-invalid").await.contains("not valid"));

    // Back as the owner: make the new member a viewer.
    browser.goto(&app.url("/ui/agents")).await;
    browser.sign_out().await;
    browser.sign_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.goto(&app.url("/ui/members")).await;
    let row = format!("tr[data-email='{INVITEE}']");
    assert!(browser.text(&row).await.contains("New Person"));
    assert_eq!(browser.text(&format!("{row} .org-role")).await, "member");
    browser.click(&format!("{row} details summary")).await;
    browser
        .click(&format!("{row} select[name=role] option[value='viewer']"))
        .await;
    browser
        .click(&format!("{row} form[action$='/role'] button[type=submit]"))
        .await;
    browser
        .wait_for_text(".notice", &format!("{INVITEE} is now viewer"))
        .await;
    assert_eq!(browser.text(&format!("{row} .org-role")).await, "viewer");

    // An API key: shown once, works, revoked after a confirmation, then refused.
    browser.goto(&app.url("/ui/api-keys")).await;
    browser.type_into("#key-name", "browser-key").await;
    browser.click("#key-role option[value='viewer']").await;
    browser.click("#create-key button[type=submit]").await;
    let key = browser.wait_for_text("#one-time-secret", "agt_").await;
    assert!(key.starts_with("agt_") && key.len() > 30, "{key}");
    assert_eq!(api_status(&app, &key, "/api/v1/agents").await, 200);
    browser.goto(&app.url("/ui/api-keys")).await;
    assert!(!browser.exists("#one-time-secret").await);
    let listed = browser.text("tr[data-name='browser-key']").await;
    assert!(
        listed.contains(&key[..12]) && !listed.contains(&key),
        "{listed}"
    );
    browser.click("tr[data-name='browser-key'] a.button").await;
    browser.wait_for_url("/revoke").await;
    assert!(browser.text("body").await.contains("browser-key"));
    browser.click("#confirm-revoke button[type=submit]").await;
    browser.wait_for_text(".notice", "was revoked").await;
    assert!(!browser.exists("tr[data-name='browser-key']").await);
    assert_eq!(api_status(&app, &key, "/api/v1/agents").await, 401);

    // Everything is in the audit log.
    browser.goto(&app.url("/ui/audit")).await;
    let log = browser.text("table.audit").await;
    for action in [
        "invitation.create",
        "invitation.accept",
        "member.role_change",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(
            log.contains(action),
            "{action} missing from the audit log:\n{log}"
        );
    }
    browser.goto(&app.url("/ui/audit?action=member.*")).await;
    let log = browser.text("table.audit").await;
    assert!(log.contains("member.role_change") && !log.contains("api_key.revoke"));
}
