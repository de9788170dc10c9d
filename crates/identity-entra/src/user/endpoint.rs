//! The token endpoint as the user flows reach it: posting a form (through the pipeline, or once
//! for a device code poll), the wait an answer asks for, and reading a token response with
//! its refresh token and account.

use std::time::{Duration, SystemTime};

use identity_core::http::{Response, SendOptions};
use identity_core::{Error, Secret};
use serde_json::Value;

use super::{TokenResponse, UserClient, post_form, record};

impl UserClient {
    /// Posts a form to `{authority}/{tenant}/oauth2/v2.0/{endpoint}` and returns the response
    /// with the time the request was made.
    pub(crate) async fn post(
        &self,
        tenant: &str,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<(Response, SystemTime), Error> {
        post_form(
            self.inner.name,
            &self.inner.pipeline,
            &self.inner.clock,
            &format!(
                "{}/{tenant}/oauth2/v2.0/{endpoint}",
                self.inner.authority.as_str()
            ),
            form,
        )
        .await
    }

    /// Posts a form to the token endpoint once, without the pipeline's retries (a device code
    /// poll, whose loop is its own retry), and returns the response with the time the request
    /// was made.
    pub(crate) async fn post_token_once(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> Result<(Response, SystemTime), Error> {
        let url = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.inner.authority.as_str()
        );
        let request = crate::client::form_request(self.inner.name, &url, form)?;
        let now = self.inner.clock.now();
        let response = self
            .inner
            .pipeline
            .send_once(self.inner.name, request, SendOptions::default())
            .await?;
        Ok((response, now))
    }

    /// The wait `response` asks for (`Retry-After` and its variants), capped by the retry
    /// policy's cap.
    pub(crate) fn retry_after(&self, response: &Response) -> Option<Duration> {
        self.inner
            .pipeline
            .retry()
            .retry_after(response.headers(), self.inner.clock.now())
    }

    /// Posts a form to the token endpoint.
    pub(crate) async fn post_token(
        &self,
        tenant: &str,
        form: &[(&str, &str)],
    ) -> Result<(Response, SystemTime), Error> {
        self.post(tenant, "token", form).await
    }

    /// Reads a token response; `secrets` are scrubbed from any message.
    pub(crate) fn parse_token_response(
        &self,
        response: &Response,
        requested_at: SystemTime,
        secrets: &[&str],
    ) -> Result<TokenResponse, Error> {
        let access =
            crate::response::parse_response(self.inner.name, response, requested_at, secrets)?;
        let json = crate::response::body_json(response).unwrap_or(Value::Null);
        let refresh_token = json
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Secret::from);
        let record = match json.get("id_token").and_then(Value::as_str) {
            Some(id_token) => Some(record::from_id_token(
                self.inner.name,
                &self.inner.authority,
                id_token,
                json.get("client_info").and_then(Value::as_str),
            )?),
            None => None,
        };
        Ok(TokenResponse {
            access,
            refresh_token,
            record,
        })
    }
}
