//! The `<name>-admin` Secret: the bearer token of the pods' admin endpoint.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use millpond_crds::MillpondConsumer;

use super::{admin_secret_name, object_meta, BuildContext, Error, Result};

/// Key of the token in the Secret.
pub const ADMIN_TOKEN_KEY: &str = "token";

/// The admin Secret holding `ctx.admin_token`. The pods read it through
/// `ADMIN_TOKEN` (a `secretKeyRef`); the operator sends it with every
/// `PUT /admin/limits`.
pub fn admin_secret(mpc: &MillpondConsumer, ctx: &BuildContext) -> Result<Secret> {
    let metadata = object_meta(mpc, admin_secret_name(mpc))?;
    if ctx.admin_token.trim().is_empty() {
        return Err(Error::Invalid {
            field: "admin token".to_string(),
            message: "the operator has no admin token for this consumer".to_string(),
        });
    }
    Ok(Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_string(),
            ByteString(ctx.admin_token.as_bytes().to_vec()),
        )])),
        immutable: None,
        ..Secret::default()
    })
}

/// The token of an existing admin Secret, which the operator keeps (pods
/// started with it keep working); `None` when it has none.
pub fn admin_token_of(secret: &Secret) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(ADMIN_TOKEN_KEY))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(ADMIN_TOKEN_KEY))
            .cloned()
    };
    from_data
        .or_else(from_string_data)
        .filter(|t| !t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_admin_secret_holds_the_token_from_the_context() {
        let s = admin_secret(&mpc(MINIMAL), &ctx()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("orders-admin"));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(admin_token_of(&s).as_deref(), Some(TOKEN));
        // Serialized as base64 in `data`, as the API server stores it.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["data"]["token"], "YWRtaW4tdG9rZW4tN2YzYTlj");
    }

    #[test]
    fn an_existing_token_is_read_back_and_an_empty_one_is_not() {
        let existing: Secret =
            serde_yaml::from_str("metadata: {name: orders-admin}\ndata: {token: c2VjcmV0}\n")
                .unwrap();
        assert_eq!(admin_token_of(&existing).as_deref(), Some("secret"));
        let empty: Secret =
            serde_yaml::from_str("metadata: {name: orders-admin}\ndata: {token: ''}\n").unwrap();
        assert_eq!(admin_token_of(&empty), None);
        assert_eq!(admin_token_of(&Secret::default()), None);
    }

    #[test]
    fn no_secret_is_built_without_a_token() {
        let err = admin_secret(&mpc(MINIMAL), &BuildContext::new("img", " ")).unwrap_err();
        assert!(err.to_string().contains("no admin token"), "{err}");
    }
}
