//! Integration tests: the client against the in-process fake provider (`agentry-fakeidp`), with
//! reqwest as the "browser" that follows nothing and reads the redirect.

#![allow(clippy::unwrap_used)]

mod flow;
mod guard;
mod harness;
mod id_token;
