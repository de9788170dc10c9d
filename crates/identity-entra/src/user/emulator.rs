//! A loopback Microsoft Entra emulator for the user flows: `/authorize`, `/devicecode` and
//! `/token` on `127.0.0.1`, checking PKCE, `state`, redirect URI and grant types, and able to
//! deny, delay and expire.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_core::test_util::{Reply, SeenRequest, TestServer};
use serde_json::{Value, json};

use super::{pkce_challenge, sha256_hex};

/// What the device code endpoint's polls answer, in order; then a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Poll {
    Pending,
    SlowDown,
    Declined,
    Expired,
    /// A transient answer without an OAuth error: the status and its `Retry-After` seconds.
    Busy(u16, Option<u64>),
    /// The connection closed without an answer.
    Drop,
}

/// A recorded request.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) params: BTreeMap<String, String>,
    /// The `user-agent` header, if any.
    pub(crate) user_agent: Option<String>,
}

#[derive(Debug)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    client_id: String,
}

/// The emulator's settings and state.
#[derive(Debug)]
pub(crate) struct State {
    /// The signed-in user: username, uid, utid.
    pub(crate) user: (String, String, String),
    /// `/authorize` answers with this error instead of a code.
    pub(crate) deny: Option<&'static str>,
    /// `/authorize` answers with an HTML sign-in page that redirects, rather than a 302.
    pub(crate) sign_in_page: bool,
    /// Replace the `state` in the redirect (an attacker's callback).
    pub(crate) wrong_state: bool,
    /// The device code polls' answers before the token.
    pub(crate) polls: VecDeque<Poll>,
    /// `interval` and `expires_in` of the device code answer.
    pub(crate) device_interval: u64,
    pub(crate) device_expires_in: u64,
    /// The lifetime of issued access tokens, in seconds.
    pub(crate) lifetime: u64,
    /// Real-time delay before each token answer.
    pub(crate) delay: Duration,
    /// Real-time delay before each device code answer.
    pub(crate) device_delay: Duration,
    /// Refresh tokens are refused (as after a password change).
    pub(crate) refuse_refresh: bool,
    /// Include the refresh token in the `error_description` of refusals (an echoing service).
    pub(crate) echo_secrets: bool,
    pub(crate) requests: Vec<Recorded>,
    grants: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, String>,
    device_codes: Vec<String>,
    issued: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            user: ("user@contoso.com".into(), "uid1".into(), "utid1".into()),
            deny: None,
            sign_in_page: false,
            wrong_state: false,
            polls: VecDeque::new(),
            device_interval: 5,
            device_expires_in: 900,
            lifetime: 3600,
            delay: Duration::ZERO,
            device_delay: Duration::ZERO,
            refuse_refresh: false,
            echo_secrets: false,
            requests: Vec::new(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            device_codes: Vec::new(),
            issued: 0,
        }
    }
}

/// A running emulator: identity-core's [`TestServer`] answering as Entra would.
#[derive(Debug)]
pub(crate) struct Emulator {
    server: TestServer,
    pub(crate) state: Arc<Mutex<State>>,
}

impl Emulator {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let addr = Arc::new(OnceLock::new());
        let (shared, at) = (state.clone(), addr.clone());
        let server = TestServer::respond(move |request| {
            // Set right after the server starts, before a test can send a request.
            let addr = *at.get().unwrap();
            answer(&shared, request, addr)
        })
        .await;
        addr.set(server.addr()).unwrap();
        Self { server, state }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn uri(&self) -> String {
        self.server.base()
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// The recorded requests whose path ends with `suffix`.
    pub(crate) fn requests(&self, suffix: &str) -> Vec<Recorded> {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.path.ends_with(suffix))
                .cloned()
                .collect()
        })
    }

    /// The token requests of `grant_type`.
    pub(crate) fn grants(&self, grant_type: &str) -> usize {
        self.requests("/token")
            .iter()
            .filter(|r| r.params.get("grant_type").map(String::as_str) == Some(grant_type))
            .count()
    }
}

/// Records `request` and answers it as Entra's authorize, device code or token endpoint
/// would (a token answer after the state's delay).
fn answer(state: &Mutex<State>, request: &SeenRequest, addr: SocketAddr) -> Reply {
    let path = request.path().to_owned();
    let query = request.target.split_once('?').map_or("", |(_, q)| q);
    let mut params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    params.extend(form_urlencoded::parse(&request.body).into_owned());
    let recorded = Recorded {
        method: request.method.clone(),
        path: path.clone(),
        params,
        user_agent: request.header("user-agent").map(str::to_owned),
    };
    let (delay, device_delay) = {
        let mut s = state.lock().unwrap();
        s.requests.push(recorded.clone());
        (s.delay, s.device_delay)
    };
    let method = recorded.method.as_str();
    let mut wait = Duration::ZERO;
    let (status, headers, body) = if path.ends_with("/oauth2/v2.0/authorize") && method == "GET" {
        authorize(state, &recorded)
    } else if path.ends_with("/oauth2/v2.0/devicecode") && method == "POST" {
        wait = device_delay;
        device_code(state, &recorded, addr)
    } else if path.ends_with("/oauth2/v2.0/token") && method == "POST" {
        wait = delay;
        token(state, &recorded, addr, &path)
    } else {
        (404, vec![], "not found".to_owned())
    };
    if status == CLOSE {
        return Reply::close();
    }
    let mut reply = Reply::status(status).body(body).delay(wait);
    for (name, value) in headers {
        reply = reply.header(name, &value);
    }
    reply
}

type Answer = (u16, Vec<(&'static str, String)>, String);

/// The status of an [`Answer`] that closes the connection instead.
const CLOSE: u16 = 0;

fn json_answer(status: u16, value: &Value) -> Answer {
    (
        status,
        vec![("content-type", "application/json".to_owned())],
        value.to_string(),
    )
}

fn oauth_error(error: &str, description: &str) -> Answer {
    json_answer(
        400,
        &json!({"error": error, "error_description": description, "error_codes": [70000], "correlation_id": "emulator"}),
    )
}

fn authorize(state: &Mutex<State>, r: &Recorded) -> Answer {
    let p = &r.params;
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || get("state").is_empty()
        || get("client_id").is_empty()
    {
        return (400, vec![], "bad authorize request".into());
    }
    let redirect_uri = get("redirect_uri");
    if !redirect_uri.starts_with("http://localhost:")
        && !redirect_uri.starts_with("http://127.0.0.1:")
    {
        return (400, vec![], "redirect_uri is not a loopback URL".into());
    }
    let mut s = state.lock().unwrap();
    let mut sent_state = get("state");
    if s.wrong_state {
        sent_state = "forged-state".into();
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(error) = s.deny {
        query.append_pair("error", error).append_pair(
            "error_description",
            "AADSTS65004: User declined to consent to access the app.",
        );
    } else {
        s.issued += 1;
        let code = format!("planted-auth-code-{}", s.issued);
        s.grants.insert(
            code.clone(),
            Grant {
                challenge: get("code_challenge"),
                redirect_uri: redirect_uri.clone(),
                client_id: get("client_id"),
            },
        );
        query.append_pair("code", &code);
    }
    query.append_pair("state", &sent_state);
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    if s.sign_in_page {
        let escaped = location.replace('&', "&amp;").replace('"', "&quot;");
        let page = format!(
            "<!doctype html><html><head><title>Sign in</title><meta http-equiv=\"refresh\" content=\"0;url={escaped}\"></head><body><p>Signing you in…</p><a id=\"go\" href=\"{escaped}\">continue</a></body></html>"
        );
        (200, vec![("content-type", "text/html".to_owned())], page)
    } else {
        (302, vec![("location", location)], String::new())
    }
}

fn device_code(state: &Mutex<State>, r: &Recorded, addr: SocketAddr) -> Answer {
    if r.params.get("client_id").is_none_or(String::is_empty) || !r.params.contains_key("scope") {
        return oauth_error("invalid_request", "client_id and scope are required");
    }
    let mut s = state.lock().unwrap();
    s.issued += 1;
    let code = format!("planted-device-code-{}", s.issued);
    s.device_codes.push(code.clone());
    json_answer(
        200,
        &json!({
            "device_code": code,
            "user_code": "ABCD-EFGH",
            "verification_uri": format!("http://{addr}/devicelogin"),
            "expires_in": s.device_expires_in,
            "interval": s.device_interval,
            "message": format!("To sign in, use a web browser to open the page http://{addr}/devicelogin and enter the code ABCD-EFGH to authenticate."),
        }),
    )
}

fn id_token(s: &State, client_id: &str, tenant: &str, addr: SocketAddr) -> String {
    let claims = json!({
        "aud": client_id,
        "iss": format!("http://{addr}/{}/v2.0", s.user.2),
        "tid": s.user.2,
        "preferred_username": s.user.0,
        "sub": "subject",
        "oid": s.user.1,
        "requested_tenant": tenant,
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn issue(s: &mut State, client_id: &str, tenant: &str, addr: SocketAddr, prefix: &str) -> Answer {
    s.issued += 1;
    let refresh = format!("planted-refresh-token-{}", s.issued);
    s.refresh_tokens
        .insert(refresh.clone(), client_id.to_owned());
    let info = URL_SAFE_NO_PAD.encode(json!({"uid": s.user.1, "utid": s.user.2}).to_string());
    json_answer(
        200,
        &json!({
            "token_type": "Bearer",
            "access_token": format!("{prefix}-{}", s.issued),
            "expires_in": s.lifetime,
            "ext_expires_in": s.lifetime,
            "refresh_token": refresh,
            "id_token": id_token(s, client_id, tenant, addr),
            "client_info": info,
        }),
    )
}

fn token(state: &Mutex<State>, r: &Recorded, addr: SocketAddr, path: &str) -> Answer {
    let p = &r.params;
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let client_id = get("client_id");
    let mut s = state.lock().unwrap();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some(grant) = s.grants.remove(&get("code")) else {
                return oauth_error("invalid_grant", "AADSTS70008: the code is unknown or used");
            };
            if pkce_challenge(&get("code_verifier")) != grant.challenge {
                return oauth_error(
                    "invalid_grant",
                    "AADSTS501481: the code verifier does not match the challenge",
                );
            }
            if get("redirect_uri") != grant.redirect_uri {
                return oauth_error(
                    "invalid_grant",
                    "AADSTS50148: the redirect URI differs from the authorize request's",
                );
            }
            if client_id != grant.client_id {
                return oauth_error(
                    "invalid_grant",
                    "AADSTS700005: the code was issued to another client",
                );
            }
            issue(&mut s, &client_id, &tenant, addr, "at-browser")
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            if !s.device_codes.contains(&get("device_code")) {
                return oauth_error("invalid_grant", "AADSTS70019: unknown device code");
            }
            match s.polls.pop_front() {
                Some(Poll::Pending) => oauth_error("authorization_pending", "AADSTS70016: pending"),
                Some(Poll::SlowDown) => oauth_error("slow_down", "slow down"),
                Some(Poll::Declined) => {
                    oauth_error("authorization_declined", "AADSTS70000: the user declined")
                }
                Some(Poll::Expired) => {
                    oauth_error("expired_token", "AADSTS70020: the device code expired")
                }
                Some(Poll::Busy(status, retry_after)) => (
                    status,
                    retry_after
                        .map(|r| vec![("retry-after", r.to_string())])
                        .unwrap_or_default(),
                    "<html>busy</html>".to_owned(),
                ),
                Some(Poll::Drop) => (CLOSE, vec![], String::new()),
                None => issue(&mut s, &client_id, &tenant, addr, "at-device"),
            }
        }
        "refresh_token" => {
            let presented = get("refresh_token");
            if s.refuse_refresh || s.refresh_tokens.get(&presented) != Some(&client_id) {
                let description = if s.echo_secrets {
                    format!("AADSTS700082: the refresh token {presented} has expired")
                } else {
                    "AADSTS700082: the refresh token has expired".to_owned()
                };
                return oauth_error("invalid_grant", &description);
            }
            // Rotated, as Entra does.
            s.refresh_tokens.remove(&presented);
            issue(&mut s, &client_id, &tenant, addr, "at-refresh")
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let assertion = get("assertion");
            let proof = !get("client_secret").is_empty()
                || get("client_assertion_type")
                    == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
            if get("requested_token_use") != "on_behalf_of" || assertion.is_empty() || !proof {
                return oauth_error("invalid_request", "AADSTS50027: bad on-behalf-of request");
            }
            if assertion.contains("bad") {
                let description = if s.echo_secrets {
                    format!("AADSTS50013: assertion {assertion} failed signature validation")
                } else {
                    "AADSTS50013: assertion failed signature validation".to_owned()
                };
                return oauth_error("invalid_grant", &description);
            }
            s.issued += 1;
            let user = &sha256_hex(&assertion)[..12];
            json_answer(
                200,
                &json!({
                    "token_type": "Bearer",
                    "access_token": format!("obo-{user}-{}", s.issued),
                    "expires_in": s.lifetime,
                    "refresh_token": format!("planted-obo-refresh-{}", s.issued),
                }),
            )
        }
        _ => oauth_error(
            "unsupported_grant_type",
            "AADSTS70003: unsupported grant type",
        ),
    }
}
