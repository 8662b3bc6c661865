//! Generates the client from the committed description (`api/openapi.json`, which a test
//! keeps identical to what the server serves) with progenitor. progenitor reads OpenAPI
//! 3.0; utoipa writes 3.1, so the few 3.1 constructs are spelled the 3.0 way first.

use serde_json::Value;

/// OpenAPI 3.1 (what utoipa writes) to the 3.0 progenitor reads: `type: [T, "null"]`
/// becomes `type: T, nullable: true`; a `oneOf`/`anyOf` with a `null` member loses it and
/// becomes nullable.
fn to_30(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type").cloned() {
                let rest: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                if rest.len() == 1 {
                    map.insert("type".into(), rest[0].clone());
                    map.insert("nullable".into(), Value::Bool(true));
                }
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(items)) = map.get_mut(key) {
                    let before = items.len();
                    items.retain(|i| i.get("type") != Some(&Value::from("null")));
                    if items.len() != before {
                        let items = items.clone();
                        map.insert("nullable".into(), Value::Bool(true));
                        if items.len() == 1 {
                            map.remove(key);
                            map.insert("allOf".into(), Value::Array(items));
                        }
                    }
                }
            }
            // 3.1 says bytes with `contentMediaType`; 3.0 with `format: binary`.
            if map.remove("contentMediaType").is_some() {
                map.insert("format".into(), "binary".into());
            }
            // 3.1's `const` is a one-value `enum` in 3.0; `type: "null"` alone is null only.
            if let Some(c) = map.remove("const") {
                map.insert("enum".into(), Value::Array(vec![c]));
            }
            if map.get("type") == Some(&Value::from("null")) {
                map.remove("type");
                map.insert("nullable".into(), Value::Bool(true));
                map.insert("enum".into(), Value::Array(vec![Value::Null]));
            }
            // Tuples (`prefixItems`, `items: false`) are arrays of their first item's type.
            if let Some(Value::Array(prefix)) = map.remove("prefixItems") {
                let first = prefix
                    .into_iter()
                    .next()
                    .unwrap_or(Value::Object(Default::default()));
                map.insert("items".into(), first);
            }
            map.remove("examples");
            map.remove("propertyNames");
            for (_, x) in map.iter_mut() {
                to_30(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_30),
        _ => {}
    }
}

/// progenitor reads request bodies of JSON, octet streams, forms and text/plain only: an
/// operation that takes CSV (the ledger's import) is left out of the client, and is
/// sent with any HTTP client as `Content-Type: text/csv`.
fn without_csv_bodies(doc: &mut Value) {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return;
    };
    for (_, item) in paths.iter_mut() {
        if let Value::Object(ops) = item {
            ops.retain(|_, op| op.pointer("/requestBody/content/text~1csv").is_none());
        }
    }
    paths.retain(|_, item| item.as_object().is_none_or(|ops| !ops.is_empty()));
}

fn main() {
    let src = "../api/openapi.json";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).expect("api/openapi.json is readable");
    let mut doc: Value = serde_json::from_str(&text).expect("api/openapi.json is JSON");
    doc["openapi"] = "3.0.3".into();
    to_30(&mut doc);
    without_csv_bodies(&mut doc);
    let spec: openapiv3::OpenAPI =
        serde_json::from_value(doc).expect("the description reads as OpenAPI 3.0");
    let mut generator = progenitor::Generator::default();
    let tokens = generator
        .generate_tokens(&spec)
        .expect("progenitor generates a client");
    let ast = syn::parse2(tokens).expect("the generated client parses");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(
        std::path::Path::new(&out).join("client.rs"),
        prettyplease::unparse(&ast),
    )
    .expect("write the client");
}
