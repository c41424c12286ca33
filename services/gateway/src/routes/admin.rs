//! Platform administration, over identity.

use axum::extract::State;
use serde::Deserialize;
use ticketing_platform::auth::Role;
use ticketing_proto::identity::v1 as pb;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::User;
use crate::extract::{Caller, Json, PathId};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_role))
}

/// A role an admin may give an account.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountRole {
    User,
    Organizer,
    Admin,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: AccountRole,
}

/// Gives an account a role; it applies to the tokens the account gets from then on.
#[utoipa::path(put, path = "/v1/admin/users/{id}/role", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    request_body = RoleBody,
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn set_role(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: user, .. }: PathId,
    Json(b): Json<RoleBody>,
) -> Result<axum::Json<User>, Problem> {
    caller.require(Role::Admin)?;
    let role = match b.role {
        AccountRole::User => pb::Role::User,
        AccountRole::Organizer => pb::Role::Organizer,
        AccountRole::Admin => pb::Role::Admin,
    };
    let request = caller.request(pb::SetUserRoleRequest { user_id: user, role: role as i32 });
    Ok(axum::Json(s.backends.identity.clone().set_user_role(request).await?.into_inner().into()))
}
