//! Request extractors whose rejections are problem documents, so malformed JSON,
//! unknown fields, bad query values and oversized bodies all answer like every other
//! error: a 4xx that says what was wrong.

use super::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            Err(rejection) => return Err(json_problem(rejection)),
        };
        // Every JSON body of the API is an object; serde would also take a struct written
        // as an array (`[]` for one whose fields all have defaults).
        if !value.is_object() {
            let name = std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("object");
            return Err(ApiError::bad_request(format!(
                "the request body is not valid: expected struct {name}, a JSON object"
            )));
        }
        // The path of the bad field (`cidrs[0]`) says where to look.
        serde_path_to_error::deserialize(whole_numbers(value))
            .map(ApiJson)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the request body is not valid: {}: {}",
                    e.path(),
                    e.inner()
                ))
            })
    }
}

/// JSON (and JSON Schema) has one number type: `3.0` is the integer 3. Rust's integer
/// fields would refuse it, so whole numbers that fit are made integers first.
fn whole_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && (-9.2e18..=1.8e19).contains(&f) => {
                if f < 0.0 {
                    Value::from(f as i64)
                } else {
                    Value::from(f as u64)
                }
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(whole_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, whole_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

fn json_problem(r: JsonRejection) -> ApiError {
    let status = match r.status() {
        // Valid JSON of the wrong shape is still the client's mistake to fix.
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this service accepts (body_limit)".to_owned()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "send the body as JSON with 'Content-Type: application/json'".to_owned()
        }
        _ => format!("the request body is not valid: {}", r.body_text()),
    };
    ApiError::new(status, detail)
}

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_problem(r)),
        }
    }
}

fn query_problem(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    // The one parameter of the export a listing is most often sent.
    let hint = if text.contains("unknown field `format`") {
        " (format is for exports: GET /v1/tenants/{tenant}/exports/assets)"
    } else {
        ""
    };
    ApiError::bad_request(format!("the query string is not valid: {text}{hint}"))
}

pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_problem(r)),
        }
    }
}

fn path_problem(r: PathRejection) -> ApiError {
    ApiError::bad_request(format!("the path is not valid: {}", r.body_text()))
}
