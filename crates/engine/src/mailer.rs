//! Outgoing email (invitations, password resets). SMTP when `AGENTRY_SMTP_URL` is set
//! (`smtp://user:pass@host:587` with STARTTLS, `smtps://…:465` with TLS); for development and
//! tests, `AGENTRY_MAIL_DIR` writes each message as an `.eml` file instead. Without either, no
//! email is sent and the admin is shown the link in the dashboard/API response.

use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP URL is not valid: {0}")]
    BadUrl(String),
    #[error("an email address is not valid: {0}")]
    BadAddress(String),
    #[error("sending the email failed: {0}")]
    Send(String),
}

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Files {
        transport: AsyncFileTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the SMTP URL: it holds the password.
        match self {
            Mailer::Smtp { .. } => f.write_str("Mailer::Smtp"),
            Mailer::Files { .. } => f.write_str("Mailer::Files"),
        }
    }
}

impl Mailer {
    pub fn smtp(url: &str, from: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::BadUrl(e.to_string().replace(url, "<redacted>")))?
            .build();
        Ok(Mailer::Smtp {
            transport,
            from: from
                .parse()
                .map_err(|_| MailError::BadAddress(from.into()))?,
        })
    }

    pub fn files(dir: PathBuf, from: &str) -> Result<Self, MailError> {
        std::fs::create_dir_all(&dir).map_err(|e| MailError::Send(e.to_string()))?;
        Ok(Mailer::Files {
            transport: AsyncFileTransport::new(dir),
            from: from
                .parse()
                .map_err(|_| MailError::BadAddress(from.into()))?,
        })
    }

    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::BadAddress(to.into()))?;
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Files { from, .. } => from.clone(),
        };
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .body(body.to_string())
            .map_err(|e| MailError::Send(e.to_string()))?;
        match self {
            Mailer::Smtp { transport, .. } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
            Mailer::Files { transport, .. } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string())),
        }
    }
}
