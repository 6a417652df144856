//! Why the fake could not start or sign.

#[derive(Debug, thiserror::Error)]
pub enum FakeIdpError {
    #[error("fake IdP I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("fake IdP crypto error: {0}")]
    Crypto(&'static str),
}

impl FakeIdpError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "fake_idp_io",
            Self::Crypto(_) => "fake_idp_crypto",
        }
    }
}
