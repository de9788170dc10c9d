//! Authority hosts: the well-known clouds and the normalisation rule of docs/protocol.md §6.1.
//!
//! An authority is given as a host (`login.microsoftonline.com`) or an `https` URL. It is
//! normalised by prepending `https://` when there is no scheme and trimming trailing blanks
//! and `/`. Any scheme other than `https` is refused, so a client secret or assertion never
//! travels in clear text.
//!
//! Decisions where the specification is silent:
//! * "no scheme" means the text has no `://`. The reference parses `host:port` as a URL with
//!   scheme `host` and rejects it; here `127.0.0.1:8443` becomes `https://127.0.0.1:8443`.
//! * Query strings, fragments and user information are refused: none has a meaning in an
//!   authority, and user information would be a credential in a URL.
//! * Plain `http` is accepted only for loopback hosts (`127.0.0.1`, `::1`, `localhost`) and only
//!   when a builder's `allow_insecure_loopback_authority(true)` says so. It exists for tests
//!   and local emulators; `AZURE_AUTHORITY_HOST` alone can never turn it on.

use identity_core::{Env, Error};

/// The variable naming the authority host.
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// Authority hosts of the Azure clouds.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AzureAuthorityHosts;

impl AzureAuthorityHosts {
    /// The public cloud: `https://login.microsoftonline.com`.
    pub const AZURE_PUBLIC_CLOUD: &'static str = "https://login.microsoftonline.com";
    /// Azure operated by 21Vianet (China): `https://login.chinacloudapi.cn`.
    pub const AZURE_CHINA: &'static str = "https://login.chinacloudapi.cn";
    /// Azure US Government: `https://login.microsoftonline.us`.
    pub const AZURE_GOVERNMENT: &'static str = "https://login.microsoftonline.us";
}

/// A normalised authority: `https://host[:port][/path]`, without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authority(String);

impl Authority {
    /// Normalises `raw` by the rules in the module docs.
    pub(crate) fn parse(
        credential: &'static str,
        raw: &str,
        allow_insecure_loopback: bool,
    ) -> Result<Self, Error> {
        let trimmed = raw.trim().trim_end_matches('/').trim_end();
        if trimmed.is_empty() {
            return Err(Error::invalid_configuration(
                credential,
                "the authority host is empty; use e.g. https://login.microsoftonline.com",
            ));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let uri: http::Uri = with_scheme.parse().map_err(|_| {
            Error::invalid_configuration(
                credential,
                "the authority host is not a valid URL; use a host name such as login.microsoftonline.com or an https URL",
            )
        })?;
        let authority = uri.authority().ok_or_else(|| {
            Error::invalid_configuration(credential, "the authority URL has no host")
        })?;
        if authority.as_str().contains('@') {
            return Err(Error::invalid_configuration(
                credential,
                "the authority URL must not contain user information",
            ));
        }
        if uri.query().is_some() || with_scheme.contains('#') {
            return Err(Error::invalid_configuration(
                credential,
                "the authority URL must not contain a query or fragment",
            ));
        }
        match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => {}
            Some(s)
                if s.eq_ignore_ascii_case("http")
                    && allow_insecure_loopback
                    && is_loopback(authority.host()) => {}
            _ => {
                return Err(Error::invalid_configuration(
                    credential,
                    "the authority must use https; set an https URL such as https://login.microsoftonline.com",
                ));
            }
        }
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let path = uri.path().trim_end_matches('/');
        Ok(Self(format!(
            "{scheme}://{}{path}",
            authority.as_str().to_ascii_lowercase()
        )))
    }

    /// The explicit authority if given, else `AZURE_AUTHORITY_HOST`, else the public cloud.
    pub(crate) fn resolve(
        credential: &'static str,
        explicit: Option<&str>,
        env: &Env,
        allow_insecure_loopback: bool,
    ) -> Result<Self, Error> {
        let raw = explicit
            .filter(|s| !s.trim().is_empty())
            .or_else(|| env.non_blank(AZURE_AUTHORITY_HOST))
            .unwrap_or(AzureAuthorityHosts::AZURE_PUBLIC_CLOUD);
        Self::parse(credential, raw, allow_insecure_loopback)
    }

    /// The normalised URL.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The token endpoint for `tenant`.
    pub(crate) fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.0)
    }
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use identity_core::ErrorKind;

    fn parse(raw: &str) -> Result<String, Error> {
        Authority::parse("X", raw, false).map(|a| a.0)
    }

    #[test]
    fn hosts_without_scheme_get_https_and_lose_trailing_slashes() {
        assert_eq!(
            parse("login.microsoftonline.com").unwrap(),
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            parse("https://login.microsoftonline.us/ ").unwrap(),
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            parse(" Login.ChinaCloudAPI.cn// ").unwrap(),
            "https://login.chinacloudapi.cn"
        );
        assert_eq!(parse("127.0.0.1:8443").unwrap(), "https://127.0.0.1:8443");
        assert_eq!(
            parse("https://adfs.contoso.com/adfs/").unwrap(),
            "https://adfs.contoso.com/adfs"
        );
    }

    #[test]
    fn schemes_other_than_https_are_refused() {
        for raw in [
            "http://login.microsoftonline.com",
            "ftp://x",
            "http://127.0.0.1:1",
        ] {
            let err = parse(raw).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfiguration, "{raw}");
            assert!(err.message().contains("https"), "{err}");
        }
    }

    #[test]
    fn plain_http_is_allowed_only_for_loopback_through_the_escape_hatch() {
        for raw in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
            assert!(Authority::parse("X", raw, true).is_ok(), "{raw}");
        }
        assert!(Authority::parse("X", "http://10.0.0.1", true).is_err());
        assert!(Authority::parse("X", "http://login.microsoftonline.com", true).is_err());
    }

    #[test]
    fn user_information_queries_and_empty_values_are_refused() {
        for raw in [
            "https://user:pw@login.microsoftonline.com",
            "https://h/?x=1",
            "",
            "  /",
        ] {
            assert!(parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn the_default_comes_from_the_environment_then_the_public_cloud() {
        let env = Env::from_pairs([(AZURE_AUTHORITY_HOST, "login.microsoftonline.us")]);
        assert_eq!(
            Authority::resolve("X", None, &env, false).unwrap().as_str(),
            AzureAuthorityHosts::AZURE_GOVERNMENT
        );
        assert_eq!(
            Authority::resolve("X", Some(AzureAuthorityHosts::AZURE_CHINA), &env, false)
                .unwrap()
                .as_str(),
            AzureAuthorityHosts::AZURE_CHINA
        );
        assert_eq!(
            Authority::resolve("X", None, &Env::empty(), false)
                .unwrap()
                .as_str(),
            AzureAuthorityHosts::AZURE_PUBLIC_CLOUD
        );
        assert_eq!(
            Authority::resolve(
                "X",
                None,
                &Env::from_pairs([(AZURE_AUTHORITY_HOST, "")]),
                false
            )
            .unwrap()
            .as_str(),
            AzureAuthorityHosts::AZURE_PUBLIC_CLOUD
        );
    }

    #[test]
    fn the_token_endpoint_follows_the_tenant() {
        let a = parse("login.microsoftonline.com").unwrap();
        assert_eq!(
            Authority(a).token_endpoint("t"),
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        );
    }
}
