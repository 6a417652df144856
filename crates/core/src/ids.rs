//! Typed identifiers. All ids are UUIDv7: time-ordered, so primary-key indexes stay append-mostly
//! and cursors can sort by id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(/// An organization: the unit of tenancy.
    OrgId);
id_type!(/// A workspace inside an organization.
    WorkspaceId);
id_type!(/// An agent (all versions share the id).
    AgentId);
id_type!(/// One run of an agent.
    RunId);
id_type!(/// A model provider registered by an organization.
    ProviderId);
id_type!(/// An API key.
    ApiKeyId);
id_type!(/// A job in the durable queue.
    JobId);
id_type!(/// A person who signs in.
    UserId);
id_type!(/// A signed-in browser session.
    SessionId);
id_type!(/// An entry of the audit log.
    AuditId);
