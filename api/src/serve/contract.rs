//! What every operation of the description shares, added in one pass so no route can
//! forget it: the error responses the middleware and the extractors produce, all as
//! `application/problem+json`, and the API-wide rules (auth, times) in the description.

use super::error::Problem;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::{Content, OpenApi, RefOr};
use utoipa::{Modify, ToSchema};

pub const PROBLEM_JSON: &str = "application/problem+json";

pub struct Contract;

/// Why a status can come back, for the ones every route of a kind shares.
const SHARED: &[(&str, &str)] = &[
    (
        "400",
        "The request is not valid (path, query or body): `detail` says what to fix.",
    ),
    ("401", "No token, or an unknown or revoked one."),
    ("403", "The token's role may not do this."),
    (
        "404",
        "No such tenant (or not one this token may see), or no such object.",
    ),
    (
        "409",
        "The request conflicts with the current state: `detail` says what to do.",
    ),
    (
        "413",
        "The body is larger than the service accepts (body_limit).",
    ),
    (
        "415",
        "The body is not sent as 'Content-Type: application/json'.",
    ),
    (
        "429",
        "Too many requests for this token, or too many scans: see Retry-After.",
    ),
];

fn problem(status: &str, why: &str) -> RefOr<Response> {
    let _ = status;
    ResponseBuilder::new()
        .description(why)
        .content(
            PROBLEM_JSON,
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                Problem::name(),
            )))),
        )
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Wraps a component schema in `allOf [schema, anyOf [branches]]`: rules between
/// fields the derive cannot say.
fn any_of(openapi: &mut OpenApi, name: &str, branches: Vec<Schema>) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let Some(original) = components.schemas.remove(name) else {
        return;
    };
    let mut any = AnyOfBuilder::new();
    for b in branches {
        any = any.item(RefOr::T(b));
    }
    let all = AllOfBuilder::new()
        .item(original)
        .item(RefOr::T(Schema::AnyOf(any.build())));
    components.schemas.insert(name.to_owned(), all.into());
}

/// A branch: `field` present and of type `ty` (not null).
fn present(field: &str, ty: Type) -> Schema {
    let inner: Schema = if ty == Type::Array {
        ArrayBuilder::new().min_items(Some(1)).into()
    } else {
        ObjectBuilder::new().schema_type(ty).into()
    };
    ObjectBuilder::new()
        .required(field)
        .property(field, inner)
        .into()
}

fn roles(names: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().copied()))
}

/// How the operations connect, as OpenAPI links: the response that yields an object's
/// id (`producer`, `status`, a JSON pointer into its body) and the operations that take
/// it as the path parameter `param`. Generated clients and API fuzzers (schemathesis's
/// stateful phase) follow them instead of guessing ids.
#[rustfmt::skip]
const LINKS: &[(&str, &str, &str, &str, &[&str])] = &[
    ("create_channel", "201", "/id", "channel", &["get_channel", "put_channel", "delete_channel", "test_channel"]),
    ("list_channels", "200", "/0/id", "channel", &["get_channel", "put_channel", "delete_channel", "test_channel"]),
    ("create_rule", "201", "/id", "rule", &["get_rule", "put_rule", "delete_rule"]),
    ("list_rules", "200", "/0/id", "rule", &["get_rule", "put_rule", "delete_rule"]),
    ("dead_letters", "200", "/0/id", "letter", &["replay"]),
    ("list_assets", "200", "/items/0/key", "asset", &["get_asset", "get_attributes", "put_attributes", "patch_attributes"]),
    ("list_candidates", "200", "/0/id", "candidate", &["get_candidate", "approve_candidate", "dismiss_candidate"]),
    ("list_findings", "200", "/items/0/id", "finding", &["get_finding", "assign", "comment", "transition", "verify"]),
    ("create_report", "201", "/id", "report", &["get_report", "report_html", "report_pdf"]),
    ("list_reports", "200", "/items/0/id", "report", &["get_report", "report_html", "report_pdf"]),
    ("create_sanction", "201", "/id", "sanction", &["get_sanction", "update_sanction", "delete_sanction"]),
    ("list_sanctions", "200", "/0/id", "sanction", &["get_sanction", "update_sanction", "delete_sanction"]),
    ("create_scan", "201", "/id", "scan", &["get_scan", "cancel_scan", "retry_scan", "override_windows"]),
    ("list_scans", "200", "/0/id", "scan", &["get_scan", "cancel_scan", "retry_scan", "override_windows"]),
    ("create_schedule", "201", "/id", "schedule", &["get_schedule", "delete_schedule"]),
    ("list_schedules", "200", "/0/id", "schedule", &["get_schedule", "delete_schedule"]),
    ("create_token", "201", "/token/id", "id", &["revoke_token"]),
    ("create_destination", "201", "/id", "destination", &["get_destination", "delete_destination"]),
    ("list_destinations", "200", "/0/id", "destination", &["get_destination", "delete_destination"]),
];

/// Files (a report's PDF) are bytes, not the array of integers the derive writes for
/// `Vec<u8>`: OpenAPI 3.1 says so with `contentMediaType`.
fn binary_bodies(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(pdf) = map.get_mut("application/pdf") {
                pdf["schema"] = serde_json::json!({
                    "type": "string",
                    "contentMediaType": "application/pdf"
                });
            }
            map.values_mut().for_each(binary_bodies);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(binary_bodies),
        _ => {}
    }
}

/// The description as served: [`Contract`] applied, then the links of [`LINKS`], added
/// to the JSON because utoipa 5.5 writes a link's `operationId` as `operation_id`, and the
/// pattern of each text format ([`super::patterns`]).
pub fn served(openapi: &OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi).unwrap_or_default();
    super::patterns::apply(&mut doc);
    super::contract_bodies::apply(&mut doc);
    binary_bodies(&mut doc);
    // An import's body is a feed file: its schema is the parser's own rules.
    if let Some(body) = doc.pointer_mut(
        "/paths/~1v1~1vulndb~1imports/post/requestBody/content/application~1json/schema",
    ) {
        *body = aperture_vulndb::schema::feed_schema();
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(id) = op
                .get("operationId")
                .and_then(|i| i.as_str())
                .map(str::to_owned)
            else {
                continue;
            };
            let tenant_scoped = op
                .get("parameters")
                .and_then(|p| p.as_array())
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "tenant"));
            for (producer, status, pointer, param, consumers) in LINKS {
                if *producer != id {
                    continue;
                }
                let Some(resp) = op
                    .pointer_mut(&format!("/responses/{status}"))
                    .and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                let links = resp.entry("links").or_insert_with(|| serde_json::json!({}));
                for consumer in *consumers {
                    let mut parameters = serde_json::Map::new();
                    parameters.insert((*param).into(), format!("$response.body#{pointer}").into());
                    if tenant_scoped {
                        parameters.insert("tenant".into(), "$request.path.tenant".into());
                    }
                    links[format!("{consumer}_by_{param}")] =
                        serde_json::json!({ "operationId": consumer, "parameters": parameters });
                }
            }
        }
    }
    doc
}

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        // A sanction that matches nothing in particular would match everything.
        any_of(
            openapi,
            "SanctionMatch",
            vec![
                present("net", Type::String),
                present("port", Type::Integer),
                present("service", Type::String),
                present("product", Type::String),
                present("domain", Type::String),
            ],
        );
        any_of(
            openapi,
            "DiscoverySettings",
            vec![
                present("domains", Type::Array),
                present("cidrs", Type::Array),
                present("names", Type::Array),
            ],
        );
        any_of(
            openapi,
            "ScanRequest",
            vec![
                present("targets", Type::Array),
                present("domains", Type::Array),
            ],
        );
        // Admin tokens act on every tenant; the others on the tenants they list.
        any_of(
            openapi,
            "NewToken",
            vec![
                ObjectBuilder::new()
                    .property("role", roles(&["admin"]))
                    .property("tenants", ArrayBuilder::new().max_items(Some(0)))
                    .into(),
                ObjectBuilder::new()
                    .required("tenants")
                    .property("role", roles(&["analyst", "remediator", "viewer"]))
                    .property("tenants", ArrayBuilder::new().min_items(Some(1)))
                    .into(),
            ],
        );
        for (_, item) in openapi.paths.paths.iter_mut() {
            for op in operations(item) {
                let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = op.request_body.is_some();
                let params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let mut codes: Vec<&str> = Vec::new();
                if authenticated {
                    codes.extend(["401", "403", "429"]);
                }
                if has_body {
                    codes.extend(["400", "413", "415"]);
                }
                if params {
                    codes.extend(["400", "404"]);
                }
                for code in codes {
                    if !op.responses.responses.contains_key(code) {
                        let why = SHARED
                            .iter()
                            .find(|(c, _)| *c == code)
                            .map(|(_, w)| *w)
                            .unwrap_or("An error.");
                        op.responses
                            .responses
                            .insert(code.to_owned(), problem(code, why));
                    }
                }
                // Every error is a problem document, whatever the route declared.
                for (code, resp) in op.responses.responses.iter_mut() {
                    let is_error = code.starts_with('4') || code.starts_with('5');
                    if let (true, RefOr::T(r)) = (is_error, resp) {
                        let why = SHARED.iter().find(|(c, _)| c == code).map(|(_, w)| *w);
                        if r.description.is_empty() {
                            r.description = why.unwrap_or("An error.").to_owned();
                        }
                        r.content.clear();
                        r.content.insert(
                            PROBLEM_JSON.to_owned(),
                            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                Problem::name(),
                            )))),
                        );
                    }
                }
            }
        }
    }
}
