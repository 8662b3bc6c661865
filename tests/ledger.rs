//! The asset ledger end to end: the real `aperture serve` on loopback, scans of
//! listeners this test opens on 127.0.0.1 (the only address contacted), and the client's
//! attributes set per asset, in bulk by filter and by CSV import. Attributes survive a
//! rescan and a restart; bulk edits touch exactly the filtered assets; a CSV with bad
//! rows is refused line by line with nothing stored; a good one (with a sanction) is
//! stored whole; findings order by priority; edits are recorded with who changed what;
//! exports carry the attributes; bad input is a 4xx that changes nothing.

mod common;
#[path = "common/ledger_api.rs"]
mod ledger_api;

use ledger_api::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn attributes_survive_rescans_and_restarts_and_bulk_edits_touch_exactly_the_filtered_assets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut service, api) = setup(&data);
    let ports = listeners(4);
    scan(&api, &ports);
    let s: Vec<String> = ports.iter().map(|p| svc(*p)).collect();
    let host = "host:127.0.0.1".to_owned();
    let mut all: BTreeSet<String> = s.iter().cloned().collect();
    all.insert(host.clone());
    assert_eq!(api.keys(""), all, "the scan found the listeners");
    let analyst = token(&api, "ledger-analyst", "analyst");
    let viewer = token(&api, "ledger-viewer", "viewer");

    // Per asset: a full set (analyst) and a patch; a viewer reads but may not edit.
    let full = json!({
        "owner": "Alice Zhang", "business_system": "网上银行", "confidentiality": 5,
        "integrity": 4, "availability": 3, "location": "DC-1 Shanghai",
        "tags": ["pci", "prod"], "notes": "core login\nsee CMDB-17"
    });
    let v = analyst.ok("PUT", &attrs_path(&s[0]), Some(&full));
    assert_eq!(v["attributes"], full, "{v}");
    let v = api.ok(
        "PATCH",
        &attrs_path(&s[1]),
        Some(&json!({"owner": "bob", "add_tags": ["prod"]})),
    );
    assert_eq!(v["attributes"], json!({"owner": "bob", "tags": ["prod"]}));
    let (status, v) = viewer.call(
        "PUT",
        &attrs_path(&s[2]),
        Some(&json!({"owner": "mallory"})),
    );
    assert_eq!(status, 403, "{v}");
    let v = viewer.ok("GET", &attrs_path(&s[0]), None);
    assert_eq!(v["attributes"], full);

    // The listing's ledger filters.
    assert_eq!(
        api.keys("&owner=alice%20zhang"),
        BTreeSet::from([s[0].clone()])
    );
    assert_eq!(
        api.keys("&tag=prod"),
        BTreeSet::from([s[0].clone(), s[1].clone()])
    );
    assert_eq!(
        api.keys("&min_criticality=5"),
        BTreeSet::from([s[0].clone()])
    );
    assert_eq!(
        api.keys(&format!("&business_system={}", enc("网上银行"))),
        BTreeSet::from([s[0].clone()])
    );
    assert_eq!(
        api.keys(&format!("&tag=prod&port={}", ports[1])),
        BTreeSet::from([s[1].clone()])
    );
    assert!(api.keys("&tag=nothing-has-this").is_empty());

    // Bulk by filter: exactly the matched assets change.
    let before = api.attributes("");
    let v = analyst.ok(
        "POST",
        &format!("/v1/tenants/{T}/assets/attributes?port={}", ports[2]),
        Some(&json!({"owner": "carol", "add_tags": ["batch"]})),
    );
    assert_eq!(
        (v["matched"].as_u64(), v["changed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let v = analyst.ok(
        "POST",
        &format!("/v1/tenants/{T}/assets/attributes?kind=service&tag=prod"),
        Some(&json!({"location": "DC-2", "remove_tags": ["pci"]})),
    );
    assert_eq!(
        (v["matched"].as_u64(), v["changed"].as_u64()),
        (Some(2), Some(2)),
        "{v}"
    );
    let after = api.attributes("");
    let changed: BTreeSet<&String> = all.iter().filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(changed, BTreeSet::from([&s[0], &s[1], &s[2]]), "{after:#?}");
    assert_eq!(after[&s[2]], json!({"owner": "carol", "tags": ["batch"]}));
    assert_eq!(
        after[&s[1]],
        json!({"owner": "bob", "location": "DC-2", "tags": ["prod"]})
    );
    assert_eq!(after[&s[0]]["location"], "DC-2");
    assert_eq!(after[&s[0]]["tags"], json!(["prod"]));
    assert_eq!(after[&s[3]], Value::Null);
    assert_eq!(after[&host], Value::Null);

    // A rescan and a restart keep every attribute.
    scan(&api, &ports);
    assert_eq!(api.attributes(""), after, "after a rescan");
    service.stop();
    let service2 = Service::start(&data);
    let api = Api {
        base: service2.base.clone(),
        ..api.with_token(&api.token)
    };
    assert_eq!(api.attributes(""), after, "after a restart");
    scan(&api, &ports);
    assert_eq!(
        api.attributes(""),
        after,
        "after a rescan by the restarted service"
    );

    // Who changed what: on the asset's page, and the calls in the audit log.
    let page = api.ok(
        "GET",
        &format!("/v1/tenants/{T}/assets/{}", enc(&s[0])),
        None,
    );
    let history = page["ledger"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 2, "{page}");
    assert!(
        history[0]["by"]
            .as_str()
            .unwrap_or_default()
            .contains("ledger-analyst"),
        "{page}"
    );
    assert_eq!(history[0]["via"], "set");
    let first: Vec<&str> = history[0]["changed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        first.contains(&"owner: unset → \"Alice Zhang\""),
        "{first:?}"
    );
    assert!(first.contains(&"confidentiality: unset → 5"), "{first:?}");
    assert_eq!(history[1]["via"], "bulk edit");
    assert_eq!(
        history[1]["changed"],
        json!([
            "location: \"DC-1 Shanghai\" → \"DC-2\"",
            "tags: {\"pci\", \"prod\"} → {\"prod\"}"
        ])
    );
    let audit = api.all("/v1/audit?limit=1000");
    let actions: Vec<String> = audit
        .iter()
        .map(|r| format!("{} {} {}", r["actor"], r["action"], r["status"]))
        .collect();
    let put = format!("PUT /v1/tenants/{T}/assets/{}/attributes", enc(&s[0]));
    assert!(
        actions
            .iter()
            .any(|a| a.contains("ledger-analyst") && a.contains(&put) && a.ends_with(" 200")),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.contains("ledger-viewer") && a.ends_with(" 403")),
        "the refused edit is audited too: {actions:#?}"
    );

    // Exports carry the attributes: CSV columns and JSON Lines.
    let r = api.send(
        "GET",
        &format!("/v1/tenants/{T}/exports/assets"),
        None,
        Vec::new(),
    );
    assert_eq!(r.status, 200);
    assert!(r.ctype.starts_with("text/csv"), "{}", r.ctype);
    let mut reader = csv::Reader::from_reader(r.text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    for c in [
        "owner",
        "business_system",
        "confidentiality",
        "integrity",
        "availability",
        "location",
        "tags",
        "notes",
    ] {
        assert!(header.contains(&c.to_owned()), "{header:?}");
    }
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let row = rows
        .iter()
        .find(|r| r.get(0) == Some(s[0].as_str()))
        .expect("s0 row");
    assert_eq!(row.get(col("owner")), Some("Alice Zhang"));
    assert_eq!(row.get(col("business_system")), Some("网上银行"));
    assert_eq!(row.get(col("confidentiality")), Some("5"));
    assert_eq!(row.get(col("tags")), Some("prod"));
    assert_eq!(row.get(col("notes")), Some("core login\nsee CMDB-17"));
    let r = api.send(
        "GET",
        &format!("/v1/tenants/{T}/exports/assets?format=jsonl&owner=bob"),
        None,
        Vec::new(),
    );
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.text);
    assert_eq!(lines[0]["key"], s[1].as_str());
    assert_eq!(lines[0]["attributes"]["owner"], "bob");
}

#[test]
fn a_csv_with_bad_rows_is_refused_line_by_line_and_a_good_one_is_stored_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_service, api) = setup(&data);
    let ports = listeners(2);
    scan(&api, &ports);
    let (s0, s1) = (svc(ports[0]), svc(ports[1]));
    let sanctions = |api: &Api| api.ok("GET", &format!("/v1/tenants/{T}/sanctions"), None);
    let ledger = |api: &Api| api.all(&format!("/v1/tenants/{T}/ledger"));
    let sanctions_before = sanctions(&api);
    let assets_before = api.attributes("");

    // Every bad line is named, with what is wrong; good lines among them are not stored.
    let bad = format!(
        "asset,owner,confidentiality,tags,sanction_reason\n\
         {s0},alice,4,web;prod,\n\
         {s1},bob,high,,\n\
         server-1,carol,2,,\n\
         {s0},dave,1,,\n\
         host:127.0.0.1,,3,,approved by CAB\n\
         certificate:{sha},erin,,,approved\n\
         domain:shop.example.com,frank,9,\"a,b\",\n\
         domain:www.example.com,grace,2\n",
        sha = "ab".repeat(32)
    );
    let r = api.csv(&bad);
    assert_eq!(r.status, 400, "{}", r.text);
    let v = r.json();
    let lines: Vec<String> = v["refused"]
        .as_array()
        .expect("refused lines")
        .iter()
        .map(|x| x["target"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        lines,
        ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9"],
        "{v}"
    );
    let detail = v["detail"].as_str().unwrap_or_default();
    for want in [
        "line 3: confidentiality \"high\": give a level from 1 (very low) to 5 (very high)",
        "line 4: asset \"server-1\"",
        &format!("line 5: {s0} is also on line 2"),
        "line 6: a sanction needs the row's owner",
        "line 7: a certificate cannot be sanctioned",
        "line 8: confidentiality \"9\"",
        "line 8: confidentiality \"9\": give a level from 1 (very low) to 5 (very high), or leave the cell empty; tag \"a,b\"",
        "line 9: 3 fields, the header has 5",
        "nothing was imported",
    ] {
        assert!(detail.contains(want), "{want:?} not in {detail}");
    }
    assert!(
        !detail.contains("\nline 2:"),
        "the good line is not refused: {detail}"
    );
    assert!(ledger(&api).is_empty(), "nothing stored");
    assert_eq!(api.attributes(""), assets_before);
    assert_eq!(sanctions(&api), sanctions_before);

    // A file of the wrong shape: what to fix, nothing stored.
    for (body, ctype, status, want) in [
        (
            "owner,asset,colour\nx,host:127.0.0.1,red\n",
            "text/csv",
            400,
            "line 1: unknown column \"colour\"",
        ),
        ("owner,location\nx,y\n", "text/csv", 400, "no asset column"),
        ("", "text/csv", 400, "the file is empty"),
        ("asset,owner\n", "text/csv", 400, "no rows after the header"),
        (
            "asset,owner\nhost:127.0.0.1,x\n",
            "application/json",
            415,
            "Content-Type: text/csv",
        ),
        (
            "asset,sanction_expires\nhost:127.0.0.1,2030-01-01\n",
            "text/csv",
            400,
            "sanction_expires needs a sanction_reason",
        ),
    ] {
        let r = api.send(
            "POST",
            &format!("/v1/tenants/{T}/ledger/import"),
            Some(ctype),
            body.as_bytes().to_vec(),
        );
        assert_eq!(r.status, status, "{body:?}: {}", r.text);
        let detail = r.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(want), "{want:?} not in {detail}");
        assert!(
            r.ctype.starts_with("application/problem+json"),
            "{}",
            r.ctype
        );
    }
    let latin1 = b"asset,owner\nhost:127.0.0.1,Jos\xe9\n".to_vec();
    let r = api.send(
        "POST",
        &format!("/v1/tenants/{T}/ledger/import"),
        Some("text/csv"),
        latin1,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not UTF-8"), "{}", r.text);
    let mut huge = String::from("asset,notes\n");
    while huge.len() <= 4 << 20 {
        huge.push_str("host:127.0.0.1,padding padding padding padding padding padding\n");
    }
    let r = api.csv(&huge);
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(ledger(&api).is_empty(), "nothing stored");
    assert_eq!(sanctions(&api), sanctions_before);

    // A good file: attributes, a sanction, and an asset no scan has seen (yet).
    let good = format!(
        "\u{feff}asset,owner,business_system,confidentiality,integrity,availability,location,tags,notes,sanction_reason,sanction_expires\n\
         {s0},Alice,网上银行,5,4,,DC-1,pci; prod,\"line one\nline two\",approved by CAB-42,2031-01-01T00:00:00Z\n\
         127.0.0.1,Ops,,2,2,2,DC-1,,,,\n\
         domain:future.example.com,Web team,shop,3,,,,,not deployed yet,,\n"
    );
    let r = api.csv(&good);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (v["matched"].as_u64(), v["changed"].as_u64()),
        (Some(3), Some(3)),
        "{v}"
    );
    let made = v["sanctions"].as_array().cloned().unwrap_or_default();
    assert_eq!(made.len(), 1, "{v}");
    assert_eq!(
        made[0]["match"],
        json!({"net": "127.0.0.1/32", "port": ports[0], "proto": "tcp",
               "service": null, "product": null, "domain": null})
    );
    assert_eq!(made[0]["owner"], "Alice");
    assert_eq!(made[0]["reason"], "approved by CAB-42");
    assert_eq!(made[0]["expires"], 1_924_992_000_000_i64);
    let a = api.attributes("");
    assert_eq!(
        a[&s0],
        json!({"owner": "Alice", "business_system": "网上银行", "confidentiality": 5, "integrity": 4,
               "location": "DC-1", "tags": ["pci", "prod"], "notes": "line one\nline two"})
    );
    assert_eq!(a["host:127.0.0.1"]["owner"], "Ops");
    assert_eq!(a[&s1], Value::Null);
    assert!(
        !a.contains_key("domain:future.example.com"),
        "not seen: not an asset"
    );
    let described: Vec<String> = ledger(&api)
        .iter()
        .map(|e| e["asset"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        described,
        ["domain:future.example.com", "host:127.0.0.1", s0.as_str()]
    );
    // The sanction closes the exposure's finding.
    wait_for(
        "the sanctioned finding to close",
        Duration::from_secs(30),
        || {
            let v = api.ok(
                "GET",
                &format!(
                    "/v1/tenants/{T}/findings?rule=unsanctioned&asset={}",
                    enc(&s0)
                ),
                None,
            );
            v["items"].as_array().is_some_and(|f| {
                !f.is_empty() && f.iter().all(|f| f["state"] == "closed-sanctioned")
            })
        },
    );
    // The same file again changes nothing and sanctions nothing twice; a file without a
    // column leaves that attribute alone, an empty cell unsets it.
    let v = api.csv(&good).json();
    assert_eq!(
        (
            v["changed"].as_u64(),
            v["sanctions"].as_array().map(Vec::len)
        ),
        (Some(0), None),
        "{v}"
    );
    assert_eq!(sanctions(&api).as_array().map(Vec::len), Some(1));
    let v = api.csv(&format!("asset,location\n{s0},\n")).json();
    assert_eq!(v["changed"].as_u64(), Some(1), "{v}");
    let a = api.attributes("");
    assert_eq!(a[&s0]["owner"], "Alice");
    assert_eq!(a[&s0].get("location"), None, "{}", a[&s0]);
}

#[test]
fn findings_order_by_priority_and_bad_input_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (_service, api) = setup(&data);
    let ports = listeners(3);
    scan(&api, &ports);
    let s: Vec<String> = ports.iter().map(|p| svc(*p)).collect();
    let findings = |query: &str| -> Vec<Value> {
        api.all(&format!(
            "/v1/tenants/{T}/findings?rule=unsanctioned&limit=1{query}"
        ))
    };
    wait_for("a finding per service", Duration::from_secs(30), || {
        findings("").len() == 3
    });
    // Unsanctioned is high (rank 4): priority = 4 × criticality, 3 when unknown.
    assert!(
        findings("").iter().all(|f| f["priority"] == 12),
        "{:?}",
        findings("")
    );
    api.ok(
        "PUT",
        &attrs_path(&s[0]),
        Some(&json!({"confidentiality": 1})),
    );
    api.ok(
        "PUT",
        &attrs_path(&s[2]),
        Some(&json!({"availability": 5, "integrity": 2})),
    );
    // s[1] has no levels of its own: it takes its host's.
    api.ok(
        "PUT",
        &attrs_path("host:127.0.0.1"),
        Some(&json!({"confidentiality": 2})),
    );
    let ordered: Vec<(String, u64)> = findings("&sort=priority")
        .iter()
        .map(|f| {
            (
                f["asset"].as_str().unwrap_or_default().to_owned(),
                f["priority"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        ordered,
        [(s[2].clone(), 20), (s[1].clone(), 8), (s[0].clone(), 4)],
        "paged one by one"
    );
    let by_id: Vec<Value> = findings("");
    let ids: Vec<&str> = by_id.iter().filter_map(|f| f["id"].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "the default order is by id");
    let one = &by_id[0];
    let f = api.ok(
        "GET",
        &format!(
            "/v1/tenants/{T}/findings/{}",
            one["id"].as_str().unwrap_or_default()
        ),
        None,
    );
    assert_eq!(f["priority"], one["priority"]);

    // Bad input: a 4xx that says what to fix, and nothing changes.
    let snapshot = |api: &Api| {
        (
            api.all(&format!("/v1/tenants/{T}/ledger")),
            api.attributes(""),
        )
    };
    let before = snapshot(&api);
    let p = attrs_path(&s[0]);
    let bulk = format!("/v1/tenants/{T}/assets/attributes");
    for (method, path, body, status, want) in [
        (
            "PUT",
            p.clone(),
            json!({"confidentiality": "high"}),
            400,
            "confidentiality",
        ),
        (
            "PUT",
            p.clone(),
            json!({"confidentiality": 7}),
            400,
            "give 1 (very low) to 5 (very high)",
        ),
        ("PUT", p.clone(), json!({"tags": "prod"}), 400, "tags"),
        ("PUT", p.clone(), json!({"owner": "   "}), 400, "owner"),
        (
            "PUT",
            p.clone(),
            json!({"owner": "x", "colour": "red"}),
            400,
            "colour",
        ),
        (
            "PUT",
            p.clone(),
            json!({"tags": ["ok", "bad;tag"]}),
            400,
            "bad;tag",
        ),
        (
            "PUT",
            p.clone(),
            json!({"notes": "x".repeat(4001)}),
            400,
            "at most 4000",
        ),
        (
            "PATCH",
            p.clone(),
            json!({"add_tags": ["   "]}),
            400,
            "not only spaces",
        ),
        (
            "PATCH",
            p.clone(),
            json!({"integrity": 0}),
            400,
            "integrity",
        ),
        (
            "PUT",
            attrs_path("service:127.0.0.9:1/tcp"),
            json!({"owner": "x"}),
            404,
            "ledger/import",
        ),
        (
            "PUT",
            attrs_path("server-1"),
            json!({"owner": "x"}),
            400,
            "host:ADDR",
        ),
        (
            "POST",
            format!("{bulk}?min_criticality=9"),
            json!({"owner": "x"}),
            400,
            "min_criticality",
        ),
        (
            "POST",
            format!("{bulk}?kind=service"),
            json!({"availability": 6}),
            400,
            "availability",
        ),
    ] {
        let (got, v) = api.call(method, &path, Some(&body));
        assert_eq!(got, status, "{method} {path} {body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(want),
            "{want:?}: {v}"
        );
    }
    for q in ["sort=bogus", "min_criticality=0", "min_criticality=high"] {
        let (got, v) = api.call(
            "GET",
            &format!(
                "/v1/tenants/{T}/{}?{q}",
                if q.starts_with("sort") {
                    "findings"
                } else {
                    "assets"
                }
            ),
            None,
        );
        assert_eq!(got, 400, "{q}: {v}");
    }
    // A cursor naming no finding cannot place a page in the priority order.
    let (got, v) = api.call(
        "GET",
        &format!(
            "/v1/tenants/{T}/findings?sort=priority&cursor=f-{}",
            "0".repeat(32)
        ),
        None,
    );
    assert_eq!(got, 404, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("start without a cursor"),
        "{v}"
    );
    assert_eq!(snapshot(&api), before, "bad input changed nothing");
}
