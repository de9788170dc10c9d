//! Core types for Microsoft Entra credentials.
//!
//! This crate knows nothing about Azure hosts. It holds what every credential shares:
//!
//! * [`TokenCredential`], the object-safe trait every credential implements, with
//!   [`TokenRequestOptions`];
//! * [`AccessToken`] and [`Secret`], whose `Debug` and `Display` never show the value;
//! * [`Error`] and [`ErrorKind`]: *unavailable* (a chain moves on) versus *authentication
//!   failed* (a chain stops), plus configuration, argument and transport errors;
//! * [`cache::TokenCache`], the one token cache: single-flight loads, refresh ahead of expiry,
//!   a failed refresh keeps serving the valid token;
//! * the HTTP seam ([`http::HttpClient`], [`http::Pipeline`]) with a body cap, a per-request
//!   timeout and the [`retry::RetryPolicy`] applied once for every client;
//! * injection points for time ([`Clock`], [`Sleeper`]) and the environment ([`Env`]), so tests
//!   never wait for real time or mutate the process environment;
//! * [`scope`]: scope-to-resource conversion, scope and tenant validation, the multi-tenant
//!   rule;
//! * [`fs`]: bounded, checked reads of the files a credential is pointed at (no FIFO, device
//!   or oversized file, descriptor checks instead of path checks);
//! * [`redact`]: removing the secrets of a request from text its response quotes back;
//! * [`trace`]: the `get_token` span every credential opens (credential, source, cache
//!   outcome, outcome, duration), and how to turn it on.
//!
//! # Features
//! * `hyper`: [`http::HyperClient`], a plain-HTTP client on hyper 1 with no TLS stack, used by
//!   `identity-msi`.
//! * `blocking`: [`blocking::BlockingCredential`], a blocking `get_token` for programs without
//!   an async runtime.
//! * `test-util`: fakes for tests ([`test_util`]), including a tracing capture for asserting
//!   spans and the absence of secrets (pulls in `tracing-subscriber`).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
pub mod blocking;
pub mod cache;
mod clock;
mod credential;
pub mod deadline;
mod env;
mod error;
pub mod fs;
pub mod http;
pub mod redact;
pub mod retry;
mod runtime;
pub mod scope;
pub mod time;
mod token;
pub mod trace;
pub mod wire;

#[cfg(feature = "test-util")]
pub mod test_util;

pub use clock::{
    COARSE_LAG, Clock, Sleeper, SystemClock, TokioSleeper, from_unix_seconds, system_clock,
    tokio_sleeper,
};
pub use credential::{BoxFuture, TokenCredential, TokenRequest, TokenRequestOptions};
pub use env::Env;
pub use error::{
    Error, ErrorKind, TROUBLESHOOTING_CREDENTIALS, display_chain, troubleshooting_section,
};
pub use runtime::Runtime;
pub use token::{AccessToken, Secret, TokenType};
