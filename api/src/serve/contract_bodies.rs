//! Request bodies whose rules span fields or live in the validators' patterns
//! (`aperture_notify::patterns`): written into the description here, so every rule the
//! server enforces on them is one a client can read, and nothing more.

use aperture_notify::patterns as p;
use serde_json::{json, Value};

/// A JSON pointer into components.schemas.
fn schema<'a>(doc: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    doc.pointer_mut(&format!("/components/schemas/{name}"))
}

/// Sets `properties.<field>` keys of a component schema (keeping its description).
fn refine(doc: &mut Value, name: &str, field: &str, rules: Value) {
    let Some(prop) = schema(doc, name).and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
    else {
        return;
    };
    if let (Some(prop), Value::Object(rules)) = (prop.as_object_mut(), rules) {
        for (k, v) in rules {
            prop.insert(k, v);
        }
    }
}

fn text(max: u64) -> Value {
    json!({"type": "string", "pattern": p::NOT_BLANK, "maxLength": max})
}

/// Channels: the kind decides which of url, secret and email belong.
fn channels(doc: &mut Value) {
    refine(doc, "NewChannel", "id", json!({"pattern": p::ID}));
    refine(doc, "NewChannel", "name", text(200));
    refine(
        doc,
        "NewChannel",
        "kind",
        json!({"enum": ["webhook", "slack", "teams", "dingtalk", "wecom", "feishu", "email"]}),
    );
    refine(doc, "NewChannel", "url", json!({"maxLength": 2048}));
    let url = json!({"type": "string", "pattern": p::URL, "maxLength": 2048});
    let kinds = json!([
        {
            "description": "email: the relay and addresses in `email`; no url or secret",
            "required": ["email"],
            "properties": {
                "kind": {"const": "email"},
                "url": {"const": ""},
                "secret": {"type": "null"},
                "email": {"type": "object"}
            }
        },
        {
            "description": "webhook: the receiver's URL and a signing secret of 16+ characters",
            "required": ["url", "secret"],
            "properties": {
                "kind": {"const": "webhook"},
                "url": url,
                "secret": {"type": "string", "minLength": 16, "maxLength": 512},
                "email": {"type": "null"}
            }
        },
        {
            "description": "chat robots: the robot's webhook URL, its signing secret if it has one",
            "required": ["url"],
            "properties": {
                "kind": {"enum": ["slack", "teams", "dingtalk", "wecom", "feishu"]},
                "url": url,
                "secret": {"type": ["string", "null"], "minLength": 1, "maxLength": 512},
                "email": {"type": "null"}
            }
        }
    ]);
    if let Some(s) = schema(doc, "NewChannel").and_then(Value::as_object_mut) {
        s.insert("oneOf".into(), kinds);
    }

    let address = json!({"type": "string", "pattern": p::ADDRESS, "maxLength": 254});
    refine(doc, "EmailSettings", "host", json!({"pattern": p::HOST}));
    refine(
        doc,
        "EmailSettings",
        "port",
        json!({"minimum": 1, "maximum": 65535}),
    );
    refine(doc, "EmailSettings", "from", address.clone());
    refine(
        doc,
        "EmailSettings",
        "to",
        json!({"minItems": 1, "maxItems": 50, "items": address}),
    );
    refine(
        doc,
        "EmailSettings",
        "ca_pem",
        json!({"pattern": p::PEM, "maxLength": 65536}),
    );
    let login = json!([
        {
            "description": "no login",
            "properties": {"username": {"type": "null"}, "password": {"type": "null"}}
        },
        {
            "description": "a login: both, and only over STARTTLS",
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string"},
                "password": {"type": "string"},
                "starttls": {"const": true}
            }
        }
    ]);
    if let Some(s) = schema(doc, "EmailSettings").and_then(Value::as_object_mut) {
        s.insert("anyOf".into(), login);
    }
}

/// Rules and their quiet hours.
fn rules(doc: &mut Value) {
    refine(doc, "RuleBody", "id", json!({"pattern": p::ID}));
    refine(doc, "RuleBody", "name", text(200));
    refine(
        doc,
        "RuleBody",
        "events",
        json!({"minItems": 1, "items": {"type": "string", "enum": [
            "finding.opened", "asset.new", "finding.overdue", "verification.result",
            "certificate.expiring", "scan.failed"
        ]}}),
    );
    refine(
        doc,
        "RuleBody",
        "within_days",
        json!({"minimum": 1, "maximum": u32::MAX}),
    );
    refine(
        doc,
        "RuleBody",
        "channels",
        json!({"minItems": 1, "maxItems": 20}),
    );
    refine(
        doc,
        "RuleBody",
        "digest_minutes",
        json!({"minimum": 1, "maximum": 10080}),
    );
    refine(doc, "QuietHours", "start", json!({"pattern": p::CLOCK}));
    refine(doc, "QuietHours", "end", json!({"pattern": p::CLOCK}));
    refine(
        doc,
        "QuietHours",
        "utc_offset",
        json!({"pattern": p::OFFSET}),
    );
    // A new rule names its id; a replaced one takes the path's.
    if let Some(body) = doc.pointer_mut(
        "/paths/~1v1~1tenants~1{tenant}~1alerts~1rules/post/requestBody/content/application~1json/schema",
    ) {
        *body = json!({"allOf": [
            {"$ref": "#/components/schemas/RuleBody"},
            {"required": ["id"], "properties": {"id": {"type": "string"}}}
        ]});
    }
    refine(doc, "DecisionBody", "note", json!({"maxLength": 2000}));
}

pub fn apply(doc: &mut Value) {
    channels(doc);
    rules(doc);
}
