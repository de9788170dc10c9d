//! Azure Arc-enabled servers (docs/protocol.md §2.4): a challenge flow against the local agent.
//!
//! * Host: the Arc agent on the machine (usually `http://localhost:40342`).
//! * Environment: [`IDENTITY_ENDPOINT`] (the token URL)
//!   and [`IMDS_ENDPOINT`] (only its presence matters), with no `IDENTITY_HEADER`.
//! * Request: `GET {IDENTITY_ENDPOINT}?api-version=2020-06-01&resource=<resource>[&<id>]` with
//!   `Metadata: true`. The agent answers 401 with `WWW-Authenticate: Basic realm=<key file>`;
//!   the same GET is sent again with `Authorization: Basic <key file contents>` (verbatim,
//!   not base64-encoded: the agent wrote it for this purpose).
//! * Identities: system-assigned; user-assigned by `client_id`, `object_id` or `msi_res_id`.
//!   The token response must echo the requested identity (case-insensitively), otherwise the
//!   token is refused: older agents silently return the system identity (fail closed).
//! * Retries: the default policy on each of the two requests.
//! * Errors: the key (and `Basic <key>` as a whole), echoed by the agent in any common
//!   encoding, is removed from every quoted message and error before it is shown or logged
//!   (the flow in `credential.rs`).
//!
//! The key file is checked before it is read (docs/protocol.md §9 #4). First the challenge:
//! it must use the `Basic` scheme with a `realm`, the realm must name a file directly in the
//! agent's token directory (Linux `/var/opt/azcmagent/tokens`, Windows
//! `%ProgramData%\AzureConnectedMachineAgent\Tokens`; the builder's `arc_key_directory`
//! replaces it) and end in `.key`. Then the file, race-free (checks on a path and a later
//! open could each see a different file):
//!
//! 1. it is **opened first**, without following a symlink and without blocking
//!    (`identity_core::fs`), so a FIFO cannot stall the call;
//! 2. the **opened descriptor** is checked: a regular file, at most 4096 bytes, a single hard
//!    link (a hard link to a file outside the directory would pass any path check);
//! 3. the **directory**: the key directory is opened and the file's name looked up inside it
//!    (no symlink followed); it must be the same device and inode as the opened file, so the
//!    opened file is the one in the key directory, not one reached through a path swapped in
//!    meanwhile (outside Unix the file's canonical parent must be the key directory);
//! 4. at most 4096 bytes are read from that descriptor.
//!
//! Anything else is refused without reading the file. On other platforms Arc is unavailable.
//! The file is read with blocking I/O: it is at most 4 KiB on a local disk.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use identity_core::fs::{FileError, ReadOptions};
use identity_core::http::{Request, Response, clone_request};
use identity_core::{Env, Error};

use crate::NAME;
pub use crate::detect::IMDS_ENDPOINT;
use crate::detect::{Detected, IDENTITY_ENDPOINT, ManagedIdentitySource, PROGRAM_DATA, Settings};
use crate::source::{
    Answer, Call, First, ManagedIdentityId, Source, endpoint, metadata_get, standard_classify,
};
use crate::wire::TokenResponse;

/// The api-version sent.
pub const API_VERSION: &str = "2020-06-01";
/// The largest key file accepted.
pub const MAX_KEY_FILE_BYTES: u64 = 4096;
/// The agent's key directory on Linux.
pub const LINUX_KEY_DIRECTORY: &str = "/var/opt/azcmagent/tokens";

const REMEDY: &str = "check that the Azure Connected Machine agent (himds) is running and that this process may read its token directory";

#[derive(Debug)]
pub(crate) struct AzureArc {
    endpoint: Result<String, Error>,
    key_directory: Result<PathBuf, Error>,
}

/// Detector: `IDENTITY_ENDPOINT` and `IMDS_ENDPOINT` non-empty (App Service, checked
/// first, took the environments that also have `IDENTITY_HEADER`).
pub(crate) fn detect(settings: &Settings) -> Option<Detected> {
    let url = settings.env.non_empty(IDENTITY_ENDPOINT)?;
    settings.env.non_empty(IMDS_ENDPOINT)?;
    Some(Ok(with_endpoint(settings, url, IDENTITY_ENDPOINT)))
}

/// The agent's token endpoint when the agent is found by its executable rather than by
/// `IDENTITY_ENDPOINT` (see `detect.rs`).
pub const AGENT_ENDPOINT: &str = "http://localhost:40342/metadata/identity/oauth2/token";

/// The Arc source on `url` (the builder's `endpoint` wins), whose value came from
/// `variable` (named in configuration errors).
pub(crate) fn with_endpoint(settings: &Settings, url: &str, variable: &str) -> Box<dyn Source> {
    Box::new(AzureArc {
        endpoint: endpoint(
            settings.endpoint_or(url),
            variable,
            ManagedIdentitySource::AzureArc,
        ),
        key_directory: match &settings.arc_key_directory {
            Some(dir) => Ok(dir.clone()),
            None => platform_key_directory(&settings.env),
        },
    })
}

/// The agent's key directory for this platform.
fn platform_key_directory(env: &Env) -> Result<PathBuf, Error> {
    if cfg!(target_os = "linux") {
        Ok(PathBuf::from(LINUX_KEY_DIRECTORY))
    } else if cfg!(windows) {
        let program_data = PROGRAM_DATA.iter().find_map(|name| env.non_empty(name)).ok_or_else(|| {
            Error::unavailable(NAME, "Azure Arc needs %ProgramData% to locate the agent's key directory; it is not set")
        })?;
        Ok(Path::new(program_data)
            .join("AzureConnectedMachineAgent")
            .join("Tokens"))
    } else {
        Err(Error::unavailable(
            NAME,
            "Azure Arc managed identity is supported only on Linux and Windows",
        ))
    }
}

/// Whether the opened file (`opened`, its metadata) is the entry `name` of `directory`: the
/// directory is opened (following links in its configured path, as canonicalising it
/// would), `name` is looked up inside the opened directory without following a symlink, and
/// the device and inode must be the opened file's. With the single hard link that
/// [`ReadOptions::strict`] requires, the opened file then lives in the key directory and
/// nowhere else, whatever was renamed or swapped along the path in the meantime.
#[cfg(unix)]
fn in_directory(directory: &Path, name: &std::ffi::OsStr, opened: &std::fs::Metadata) -> bool {
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::os::unix::fs::MetadataExt as _;
    let Ok(dir) = rustix::fs::open(
        directory,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let Ok(entry) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    #[allow(
        clippy::useless_conversion,
        reason = "st_dev and st_ino are not u64 on every Unix"
    )]
    let (dev, ino) = (u64::try_from(entry.st_dev), u64::try_from(entry.st_ino));
    dev.is_ok_and(|dev| dev == opened.dev()) && ino.is_ok_and(|ino| ino == opened.ino())
}

/// Outside Unix: the file's directory must canonicalise to the key directory.
#[cfg(not(unix))]
fn in_directory(directory: &Path, name: &std::ffi::OsStr, _opened: &std::fs::Metadata) -> bool {
    let (Ok(expected), Ok(actual)) = (
        std::fs::canonicalize(directory),
        std::fs::canonicalize(directory.join(name)),
    ) else {
        return false;
    };
    actual.parent() == Some(expected.as_path())
}

fn refused(why: &str) -> Error {
    Error::authentication_failed(
        NAME,
        format!(
            "the Azure Arc agent's challenge was refused: {why}; the file was not read. {REMEDY}"
        ),
    )
}

impl AzureArc {
    /// Validates the challenge and reads the key file, following docs/protocol.md §9 #4.
    fn read_key(&self, response: &Response) -> Result<String, Error> {
        let directory = self.key_directory.as_ref().map_err(Clone::clone)?;
        let header = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .ok_or_else(|| refused("the 401 answer has no WWW-Authenticate header"))?
            .to_str()
            .map_err(|_| refused("the WWW-Authenticate header is not text"))?;
        let (scheme, realm) = header
            .split_once('=')
            .ok_or_else(|| refused("the challenge is not of the form \"Basic realm=<path>\""))?;
        if !scheme.trim().eq_ignore_ascii_case("basic realm") {
            return Err(refused(
                "the challenge does not use the Basic scheme with a realm",
            ));
        }
        let path = Path::new(realm.trim());
        if path.parent() != Some(directory.as_path()) {
            return Err(refused(&format!(
                "the key file is not directly in {}",
                directory.display()
            )));
        }
        if path.extension().and_then(|e| e.to_str()) != Some("key") {
            return Err(refused("the key file does not have the .key extension"));
        }
        let name = path
            .file_name()
            .ok_or_else(|| refused("the realm names no file"))?;
        // Open first, without following a symlink and without blocking; every later check is
        // on the opened descriptor, so nothing swapped in afterwards is read.
        let (file, meta) =
            identity_core::fs::open(path, &ReadOptions::strict(MAX_KEY_FILE_BYTES)).map_err(
                |e| match e {
                    FileError::NotFound => {
                        refused("the key file does not exist or cannot be inspected")
                    }
                    FileError::Symlink => {
                        refused("the key file is a symlink (symbolic links are refused)")
                    }
                    FileError::NotRegular => refused("the key file is not a regular file"),
                    FileError::TooLarge(_) => refused(&format!(
                        "the key file is larger than {MAX_KEY_FILE_BYTES} bytes"
                    )),
                    FileError::Linked => refused(
                        "the key file has more than one hard link (it may be a link to a file elsewhere)",
                    ),
                    _ => Error::unavailable(
                        NAME,
                        format!("the Azure Arc key file cannot be opened; {REMEDY}"),
                    )
                    .with_source(e),
                },
            )?;
        if !in_directory(directory, name, &meta) {
            return Err(refused(
                "the key file is not the file of that name in the key directory",
            ));
        }
        // Bounded read: the file could have grown since the check.
        let mut key = String::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut key)
            .map_err(|_| {
                Error::authentication_failed(
                    NAME,
                    format!("the Azure Arc key file cannot be read as text; {REMEDY}"),
                )
            })?;
        if key.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(refused(&format!(
                "the key file is larger than {MAX_KEY_FILE_BYTES} bytes"
            )));
        }
        Ok(key)
    }

    /// The echo check for user-assigned identities.
    fn confirm(token: &TokenResponse, id: &ManagedIdentityId) -> Result<(), Error> {
        let (echoed, requested) = match id {
            ManagedIdentityId::SystemAssigned => return Ok(()),
            ManagedIdentityId::ClientId(v) => (&token.client_id, v),
            ManagedIdentityId::ObjectId(v) => (&token.object_id, v),
            ManagedIdentityId::ResourceId(v) => (&token.msi_res_id, v),
        };
        if echoed
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(requested))
        {
            return Ok(());
        }
        Err(Error::authentication_failed(
            NAME,
            format!(
                "Azure Arc did not confirm the requested {} identity (the response does not echo it); the agent may \
                 be too old to support user-assigned identities, or the identity is not assigned to this machine",
                id.kind_name()
            ),
        ))
    }
}

impl Source for AzureArc {
    fn kind(&self) -> ManagedIdentitySource {
        ManagedIdentitySource::AzureArc
    }

    fn remedy(&self) -> &'static str {
        REMEDY
    }

    /// The agent's 401 names the key file in `WWW-Authenticate`; the same request is sent
    /// again with `Authorization: Basic <key>`. An error status other than 401 is final (and
    /// classified); a success without the challenge is refused.
    fn challenge(&self, first: &First<'_>) -> Result<Option<Request>, Error> {
        let response = first.response;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            if response.status().is_success() {
                // An Arc agent always challenges first; a token without one means something
                // else answered on the endpoint.
                return Err(Error::authentication_failed(
                    NAME,
                    format!(
                        "the Azure Arc endpoint answered without the expected 401 challenge; {REMEDY}"
                    ),
                ));
            }
            return Ok(None);
        }
        let key = self.read_key(response)?;
        let mut value = http::HeaderValue::from_str(&format!("Basic {key}")).map_err(|_| {
            Error::authentication_failed(NAME, format!("the Azure Arc key file holds characters that cannot be sent in a header; {REMEDY}"))
        })?;
        value.set_sensitive(true);
        let mut second = clone_request(first.request);
        second
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        Ok(Some(second))
    }

    fn request(&self, call: &Call<'_>) -> Result<Request, Error> {
        metadata_get(&self.endpoint, call, API_VERSION, self.kind())
    }

    /// The standard table ([`standard_classify`]), and one more row: a token for a
    /// user-assigned identity whose response does not echo that identity
    /// (case-insensitively) is an authentication failure ("did not confirm").
    fn classify(&self, answer: Answer<'_>, call: &Call<'_>) -> Result<TokenResponse, Error> {
        let token = standard_classify(self, answer)?;
        Self::confirm(&token, call.id)?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use identity_core::ErrorKind;
    use wiremock::matchers::{header, header_exists, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "planted-arc-key-contents";

    struct Setup {
        server: MockServer,
        dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        Setup {
            server: MockServer::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    impl Setup {
        fn harness(&self, id: ManagedIdentityId) -> Harness {
            let env = identity_core::Env::from_pairs([
                (
                    IDENTITY_ENDPOINT,
                    format!("{}/metadata/identity/oauth2/token", self.server.uri()),
                ),
                (IMDS_ENDPOINT, self.server.uri()),
            ]);
            let dir = self.dir.path().to_path_buf();
            harness_with(env, id, move |b| b.arc_key_directory(dir))
        }

        fn key_path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        async fn challenge(&self, realm: String) {
            Mock::given(method("GET"))
                .and(path("/metadata/identity/oauth2/token"))
                .and(|r: &wiremock::Request| !r.headers.contains_key("authorization"))
                .respond_with(
                    ResponseTemplate::new(401).insert_header("WWW-Authenticate", realm.as_str()),
                )
                .expect(1)
                .mount(&self.server)
                .await;
        }

        async fn no_second_request(&self) {
            Mock::given(header_exists("Authorization"))
                .respond_with(token_on(CLOCK_NOW + 3600))
                .expect(0)
                .mount(&self.server)
                .await;
        }
    }

    #[tokio::test]
    async fn the_challenge_flow_sends_the_key_file_verbatim() {
        let s = setup().await;
        std::fs::write(s.key_path("abc.key"), KEY).unwrap();
        s.challenge(format!("Basic realm={}", s.key_path("abc.key").display()))
            .await;
        Mock::given(method("GET"))
            .and(path("/metadata/identity/oauth2/token"))
            .and(query_param("api-version", "2020-06-01"))
            .and(query_param("resource", "https://vault.azure.net"))
            .and(header("Metadata", "true"))
            .and(header("Authorization", format!("Basic {KEY}").as_str()))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&s.server)
            .await;
        let h = s.harness(ManagedIdentityId::SystemAssigned);
        assert_eq!(h.credential.source(), ManagedIdentitySource::AzureArc);
        h.get().await.unwrap();
    }

    #[tokio::test]
    async fn an_echoed_key_is_removed_from_errors_and_logs() {
        let s = setup().await;
        std::fs::write(s.key_path("abc.key"), KEY).unwrap();
        s.challenge(format!("Basic realm={}", s.key_path("abc.key").display()))
            .await;
        Mock::given(header_exists("Authorization"))
            .respond_with(echo_header("Authorization"))
            .expect(1)
            .mount(&s.server)
            .await;
        let h = s.harness(ManagedIdentityId::SystemAssigned);
        let e = assert_echo_not_leaked(&h, KEY).await;
        assert_eq!(e.status(), Some(400));
        assert!(e.to_string().contains("bad header ***"), "{e}");
        // "Basic <key>" as a whole, in every form, is gone too.
        for form in echoed_forms(&format!("Basic {KEY}")) {
            assert!(!format!("{e:?}").contains(&form), "{e:?}");
        }
    }

    async fn refused_without_reading(s: &Setup, realm: String, word: &str) {
        s.challenge(realm).await;
        s.no_second_request().await;
        let e = s
            .harness(ManagedIdentityId::SystemAssigned)
            .get()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        let text = e.to_string();
        assert!(text.contains(word), "{text}");
        assert!(text.contains("not read"), "{text}");
        assert!(!format!("{e:?}").contains(KEY));
    }

    #[tokio::test]
    async fn a_realm_outside_the_directory_is_refused() {
        let s = setup().await;
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("evil.key"), KEY).unwrap();
        refused_without_reading(
            &s,
            format!("Basic realm={}", other.path().join("evil.key").display()),
            "not directly in",
        )
        .await;
    }

    #[tokio::test]
    async fn a_realm_with_dot_dot_is_refused() {
        let s = setup().await;
        let realm = format!("Basic realm={}/../evil.key", s.dir.path().display());
        refused_without_reading(&s, realm, "not directly in").await;
    }

    #[tokio::test]
    async fn a_wrong_extension_is_refused() {
        let s = setup().await;
        std::fs::write(s.key_path("abc.txt"), KEY).unwrap();
        refused_without_reading(
            &s,
            format!("Basic realm={}", s.key_path("abc.txt").display()),
            ".key",
        )
        .await;
    }

    #[tokio::test]
    async fn an_oversize_key_file_is_refused() {
        let s = setup().await;
        std::fs::write(s.key_path("big.key"), "k".repeat(5000)).unwrap();
        refused_without_reading(
            &s,
            format!("Basic realm={}", s.key_path("big.key").display()),
            "4096",
        )
        .await;
    }

    #[tokio::test]
    async fn a_missing_key_file_is_refused() {
        let s = setup().await;
        refused_without_reading(
            &s,
            format!("Basic realm={}", s.key_path("gone.key").display()),
            "does not exist",
        )
        .await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_out_of_the_directory_is_refused() {
        let s = setup().await;
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("secret.key"), KEY).unwrap();
        std::os::unix::fs::symlink(other.path().join("secret.key"), s.key_path("link.key"))
            .unwrap();
        refused_without_reading(
            &s,
            format!("Basic realm={}", s.key_path("link.key").display()),
            "symlink",
        )
        .await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_is_refused_without_blocking() {
        let s = setup().await;
        identity_core::test_util::make_fifo(s.key_path("fifo.key"));
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            refused_without_reading(
                &s,
                format!("Basic realm={}", s.key_path("fifo.key").display()),
                "not a regular file",
            ),
        )
        .await
        .expect("no blocking on a FIFO");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_hard_link_to_an_outside_file_is_refused() {
        let s = setup().await;
        let other = tempfile::tempdir_in(s.dir.path().parent().unwrap()).unwrap();
        let outside = other.path().join("secret");
        std::fs::write(&outside, KEY).unwrap();
        if std::fs::hard_link(&outside, s.key_path("linked.key")).is_err() {
            return; // another file system: a hard link cannot be made at all
        }
        refused_without_reading(
            &s,
            format!("Basic realm={}", s.key_path("linked.key").display()),
            "hard link",
        )
        .await;
    }

    #[cfg(unix)]
    #[test]
    fn only_the_entry_of_the_key_directory_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.key"), "k").unwrap();
        std::fs::write(other.path().join("a.key"), "k").unwrap();
        let inside = std::fs::metadata(dir.path().join("a.key")).unwrap();
        let outside = std::fs::metadata(other.path().join("a.key")).unwrap();
        let name = std::ffi::OsStr::new("a.key");
        assert!(in_directory(dir.path(), name, &inside));
        assert!(!in_directory(dir.path(), name, &outside));
        assert!(!in_directory(&dir.path().join("missing"), name, &inside));
    }

    /// A key file swapped between a regular file and a symlink to another file while
    /// requests run: the other file's contents are never sent.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_symlink_swapped_in_during_the_check_is_never_read() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        const OUTSIDE: &str = "planted-outside-file-contents";
        let s = setup().await;
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("secret"), OUTSIDE).unwrap();
        let key = s.key_path("swap.key");
        std::fs::write(&key, KEY).unwrap();
        Mock::given(method("GET"))
            .and(|r: &wiremock::Request| !r.headers.contains_key("authorization"))
            .respond_with(ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                format!("Basic realm={}", key.display()).as_str(),
            ))
            .mount(&s.server)
            .await;
        Mock::given(header_exists("Authorization"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .mount(&s.server)
            .await;
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, dir, outside) = (
                stop.clone(),
                s.dir.path().to_path_buf(),
                other.path().join("secret"),
            );
            std::thread::spawn(move || {
                for i in 0..200_000u32 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let tmp = dir.join(format!("tmp{}", i % 2));
                    let _ = std::fs::remove_file(&tmp);
                    if i % 2 == 0 {
                        let _ = std::os::unix::fs::symlink(&outside, &tmp);
                    } else {
                        let _ = std::fs::write(&tmp, KEY);
                    }
                    let _ = std::fs::rename(&tmp, dir.join("swap.key"));
                }
            })
        };
        for _ in 0..100 {
            let _ = s.harness(ManagedIdentityId::SystemAssigned).get().await;
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        for request in s.server.received_requests().await.unwrap() {
            if let Some(value) = request.headers.get("authorization") {
                let value = value.to_str().unwrap();
                assert!(!value.contains(OUTSIDE), "the outside file was sent");
                assert_eq!(value, format!("Basic {KEY}"));
            }
        }
    }

    #[tokio::test]
    async fn a_non_basic_challenge_is_refused() {
        let s = setup().await;
        std::fs::write(s.key_path("abc.key"), KEY).unwrap();
        refused_without_reading(
            &s,
            format!("Bearer realm={}", s.key_path("abc.key").display()),
            "Basic",
        )
        .await;
    }

    async fn user_assigned(echo: Option<&str>) -> Result<identity_core::AccessToken, Error> {
        let s = setup().await;
        std::fs::write(s.key_path("abc.key"), KEY).unwrap();
        s.challenge(format!("Basic realm={}", s.key_path("abc.key").display()))
            .await;
        let mut body = format!(
            r#"{{"access_token":"AT","expires_in":"3600","expires_on":"{}""#,
            CLOCK_NOW + 3600
        );
        if let Some(echo) = echo {
            body.push_str(&format!(r#","client_id":"{echo}""#));
        }
        body.push('}');
        Mock::given(header_exists("Authorization"))
            .and(query_param("client_id", "CID"))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .expect(1)
            .mount(&s.server)
            .await;
        s.harness(ManagedIdentityId::ClientId("CID".into()))
            .get()
            .await
    }

    #[tokio::test]
    async fn a_user_assigned_token_without_the_echo_is_refused() {
        let e = user_assigned(None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(e.to_string().contains("did not confirm"), "{e}");
        let e = user_assigned(Some("someone-else")).await.unwrap_err();
        assert!(e.to_string().contains("did not confirm"), "{e}");
    }

    #[tokio::test]
    async fn a_user_assigned_token_with_the_echo_in_any_case_is_accepted() {
        user_assigned(Some("cid")).await.unwrap();
    }

    #[tokio::test]
    async fn object_and_resource_ids_use_their_parameters_and_are_echo_checked() {
        for (id, param, echo_field) in [
            (
                ManagedIdentityId::ObjectId("OID".into()),
                "object_id",
                "object_id",
            ),
            (
                ManagedIdentityId::ResourceId(UAMI.into()),
                "msi_res_id",
                "msi_res_id",
            ),
            (
                ManagedIdentityId::ResourceId(UAMI.into()),
                "msi_res_id",
                "mi_res_id",
            ),
        ] {
            let requested = match &id {
                ManagedIdentityId::ObjectId(v) | ManagedIdentityId::ResourceId(v) => v.clone(),
                _ => unreachable!(),
            };
            let s = setup().await;
            std::fs::write(s.key_path("abc.key"), KEY).unwrap();
            Mock::given(method("GET"))
                .and(query_param(param, requested.as_str()))
                .and(|r: &wiremock::Request| !r.headers.contains_key("authorization"))
                .respond_with(ResponseTemplate::new(401).insert_header(
                    "WWW-Authenticate",
                    format!("Basic realm={}", s.key_path("abc.key").display()).as_str(),
                ))
                .expect(1)
                .mount(&s.server)
                .await;
            let body = serde_json::json!({
                "access_token": "AT",
                "expires_in": "3600",
                echo_field: requested.to_uppercase(),
            });
            Mock::given(header_exists("Authorization"))
                .and(query_param(param, requested.as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(body))
                .expect(1)
                .mount(&s.server)
                .await;
            s.harness(id).get().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_first_answer_that_is_not_a_challenge_is_refused() {
        let s = setup().await;
        Mock::given(method("GET"))
            .respond_with(token_on(CLOCK_NOW + 3600))
            .expect(1)
            .mount(&s.server)
            .await;
        let e = s
            .harness(ManagedIdentityId::SystemAssigned)
            .get()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("401 challenge"), "{e}");
    }
}
