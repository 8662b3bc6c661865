//! The portal in a real browser: Debian's chromium, driven over WebDriver by
//! chromedriver, against the real `aperture serve` binary.
//!
//! The service scans listeners of this test on 127.0.0.1 whose HTTP title, Server header
//! and banner are HTML/script payloads; the pages must show that text and run none of
//! it. Then, as real users: a client signs in, reads the dashboard, filters the
//! inventory and exports it as CSV, opens an asset and its history, switches to Chinese,
//! edits a URL to another tenant's asset (not found), signs out; a remediator claims a
//! fix and watches the finding close verified; a page of another origin posts a form at
//! the portal and is refused. Screenshots of every screen go to `target/ui-shots/`.
//!
//! Only 127.0.0.1 is contacted. Skips when chromium/chromedriver are missing, unless
//! APERTURE_LAB_REQUIRED=1 (CI installs them through scripts/deps).

mod common;
#[path = "portal_harness.rs"]
mod harness;
#[path = "portal_hostile.rs"]
mod hostile;
#[path = "portal_webdriver.rs"]
mod webdriver;

use harness::*;
use hostile::*;
use serde_json::json;
use std::time::Duration;
use webdriver::Browser;

#[test]
fn portal_in_a_real_browser() {
    if let Some(why) = webdriver::browser_missing() {
        if std::env::var("APERTURE_LAB_REQUIRED").as_deref() == Ok("1") {
            panic!("APERTURE_LAB_REQUIRED=1 but {why}");
        }
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (admin, _) = common::admin_cli(
        &data,
        &["token-create", "--name", "root", "--role", "admin"],
    );
    let admin = admin.trim().to_owned();
    let svc = start_service(&data);
    let http = Http::new(&svc.base);
    let web = Listener::start(hostile_http, true);
    let banner = Listener::start(hostile_banner, false);
    let other = Listener::start(other_tenant_http, true);
    let tls = Listener::with(hostile_tls);

    // Two tenants, each scanning its own listeners.
    let mut tokens = std::collections::HashMap::new();
    for (t, ports) in [
        ("acme", format!("{},{},{}", web.port, banner.port, tls.port)),
        ("other", other.port.to_string()),
    ] {
        http.api(
            &admin,
            "POST",
            "/v1/tenants",
            Some(json!({"id": t, "name": format!("{t} Corp")})),
        );
        http.api(
            &admin,
            "PUT",
            &format!("/v1/tenants/{t}/scope"),
            Some(json!({"cidrs": ["127.0.0.1/32"], "allow_special": true})),
        );
        let scan = http.api(
            &admin,
            "POST",
            &format!("/v1/tenants/{t}/scans"),
            Some(json!({"targets": ["127.0.0.1"], "ports": ports, "grab": true})),
        );
        wait_scan(&http, &admin, t, scan["id"].as_str().expect("scan id"));
        for role in ["viewer", "remediator"] {
            let v = http.api(
                &admin,
                "POST",
                "/v1/tokens",
                Some(json!({"name": format!("{t}-{role}"), "role": role, "tenants": [t]})),
            );
            tokens.insert(
                format!("{t}-{role}"),
                v["secret"].as_str().expect("secret").to_owned(),
            );
        }
    }
    let web_key = format!("service:127.0.0.1:{}/tcp", web.port);
    let banner_key = format!("service:127.0.0.1:{}/tcp", banner.port);
    let other_key = format!("service:127.0.0.1:{}/tcp", other.port);
    let stored = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/assets/{}", enc(&web_key)),
        None,
    );
    let title = stored["asset"]["facts"]["http.title"]
        .as_str()
        .unwrap_or_else(|| panic!("the hostile title is stored: {stored}"))
        .to_owned();
    assert!(
        title.contains("<script>"),
        "the title keeps its markup: {title:?}"
    );
    let stored = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/assets/{}", enc(&banner_key)),
        None,
    );
    let banner_fact = stored["asset"]["facts"]["banner"]
        .as_str()
        .unwrap_or_else(|| panic!("the hostile banner is stored: {stored}"))
        .to_owned();
    assert!(
        banner_fact.contains("<iframe"),
        "the banner keeps its markup: {banner_fact:?}"
    );

    let b = Browser::start(shots_dir());
    let base = &svc.base;

    // A client: sign in, dashboard.
    sign_in(&b, base, &tokens["acme-viewer"], "/t/acme");
    assert!(b.text("h1").contains("Dashboard"), "{}", b.body());
    assert!(
        b.find("svg#shrinkage").is_some(),
        "the shrinkage chart is drawn"
    );
    assert_inert(&b, "dashboard");
    b.shot("01-dashboard");
    let cookie = b.cookie("ap_session").expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let session = format!("ap_session={}", cookie["value"].as_str().expect("value"));

    // The inventory shows the hostile text as text.
    b.goto(&format!("{base}/t/acme/assets"));
    let table = b.text("#assets");
    assert!(
        table.contains(&web_key) && table.contains(&banner_key),
        "{table}"
    );
    assert!(
        table.contains("<script>document.documentElement"),
        "title shown as text: {table}"
    );
    assert!(
        !table.contains(&other_key),
        "no other tenant's asset: {table}"
    );
    assert_inert(&b, "inventory");
    b.shot("02-inventory");

    // Filters, through the form.
    b.type_into("#f-port", &web.port.to_string());
    b.select("#f-kind", "service");
    b.click_nav("#filter");
    let table = b.text("#assets");
    assert!(
        table.contains(&web_key) && !table.contains(&banner_key),
        "filtered: {table}"
    );
    assert!(
        b.url().contains(&format!("port={}", web.port)),
        "{}",
        b.url()
    );
    b.shot("03-inventory-filtered");
    // Sorted descending through the form: the same rows, reversed.
    const ROWS: &str =
        "return [...document.querySelectorAll('#assets a.asset')].map(a => a.textContent);";
    b.goto(&format!("{base}/t/acme/assets"));
    let asc = b.script(ROWS);
    b.select("#f-sort", "-key");
    b.click_nav("#filter");
    let mut desc = b.script(ROWS).as_array().cloned().unwrap_or_default();
    desc.reverse();
    assert!(desc.len() >= 4, "{}", b.body());
    assert_eq!(json!(desc), asc, "descending is ascending reversed");
    // A sort an index cannot serve: the API's reason, not a walk of the tenant.
    b.goto(&format!("{base}/t/acme/assets?sort=-key&port={}", web.port));
    assert!(b.text(".problem").contains("sort by key"), "{}", b.body());
    // A bad filter value: the API's message, on the page.
    b.goto(&format!("{base}/t/acme/assets?net=not-a-net"));
    assert!(
        b.text(".problem").contains("give an address or a CIDR"),
        "{}",
        b.body()
    );

    // The CSV export of what is filtered (the browser cannot download here: the link is
    // fetched with the browser's session cookie).
    b.goto(&format!("{base}/t/acme/assets?port={}", web.port));
    let href = b.script("return document.getElementById('export-csv').getAttribute('href');");
    let href = href.as_str().expect("export link").to_owned();
    let (status, head, csv) = http.send("GET", &href, &[("Cookie", &session)], None);
    assert_eq!(status, 200, "{head}\n{csv}");
    assert!(head.contains("attachment"), "{head}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("asset,kind,status"), "{csv}");
    assert!(
        csv.contains(&web_key) && !csv.contains(&banner_key),
        "only the filtered: {csv}"
    );
    let href = b.script("return document.getElementById('export-jsonl').getAttribute('href');");
    let (status, _, jsonl) = http.send(
        "GET",
        href.as_str().expect("link"),
        &[("Cookie", &session)],
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count(), 1, "{jsonl}");

    // The asset pages: title and banner exactly as stored, nothing run.
    b.goto(&format!("{base}/t/acme/asset?key={}", enc(&web_key)));
    assert_eq!(b.text("#http-title"), title, "the title as text");
    assert!(b.body().contains(SERVER), "the Server header as text");
    assert_inert(&b, "asset page (http)");
    b.shot("04-asset-http");
    b.goto(&format!("{base}/t/acme/asset?key={}", enc(&banner_key)));
    assert_eq!(b.text("#banner"), banner_fact, "the banner as text");
    assert!(
        b.text("ol.timeline").contains("appeared"),
        "history: {}",
        b.body()
    );
    assert_inert(&b, "asset page (banner)");
    b.shot("05-asset-banner");

    // The certificate's subject and SAN, shown as text on the service's page.
    let tls_key = format!("service:127.0.0.1:{}/tcp", tls.port);
    b.goto(&format!("{base}/t/acme/asset?key={}", enc(&tls_key)));
    let card = b.text("#certificate");
    // The subject as stored: RFC 4514 escapes its angle brackets.
    let subject = format!("CN={}", CERT_CN.replace('<', "\\<").replace('>', "\\>"));
    assert!(card.contains(&subject), "the subject as text: {card}");
    assert!(card.contains(CERT_SAN), "the SAN as text: {card}");
    assert_inert(&b, "asset page (tls)");
    b.shot("05b-asset-tls-certificate");

    // The change feed and the findings board.
    b.goto(&format!("{base}/t/acme/changes"));
    assert!(b.body().contains(&web_key), "{}", b.body());
    assert_inert(&b, "change feed");
    b.shot("06-changes");
    b.goto(&format!("{base}/t/acme/findings"));
    assert!(b.text("#findings").contains(&banner_key), "{}", b.body());
    assert_inert(&b, "findings");
    b.shot("07-findings");

    // Another tenant's asset, by editing the URL: not found, and nothing of it shown.
    for path in [
        format!("/t/other/asset?key={}", enc(&other_key)),
        "/t/other".to_owned(),
        "/t/other/assets".to_owned(),
    ] {
        b.goto(&format!("{base}{path}"));
        assert!(b.text("h1").contains("Not found"), "{path}: {}", b.body());
        assert!(!b.body().contains("other tenant secret"), "{path}");
    }
    let (status, _, _) = http.send(
        "GET",
        &format!("/t/other/asset?key={}", enc(&other_key)),
        &[("Cookie", &session)],
        None,
    );
    assert_eq!(status, 404);
    b.shot("08-other-tenant-not-found");

    // Chinese, and back.
    b.goto(&format!("{base}/t/acme"));
    b.click_nav("#lang-zh");
    assert!(b.text("h1").contains("总览"), "{}", b.body());
    assert!(b.body().contains("暴露服务"), "{}", b.body());
    b.shot("09-dashboard-zh");
    b.goto(&format!("{base}/t/acme/asset?key={}", enc(&banner_key)));
    assert!(b.body().contains("年"), "dates in Chinese: {}", b.body());
    b.shot("10-asset-zh");
    b.click_nav("#lang-en");
    assert!(b.body().contains("Banner"), "{}", b.body());

    // A viewer sees no action forms, and the server refuses the action anyway.
    let finding = http.api(
        &admin,
        "GET",
        &format!(
            "/v1/tenants/acme/findings?asset={}&active=true",
            enc(&banner_key)
        ),
        None,
    );
    let fid = finding["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a finding on the banner service: {finding}"))
        .to_owned();
    let fpath = format!("/t/acme/findings/{}", enc(&fid));
    b.goto(&format!("{base}{fpath}"));
    assert!(b.find("#act").is_none(), "no forms for a viewer");

    // Sign out: the session is gone, also for a copy of the cookie.
    sign_out(&b);
    let (status, head, _) = http.send("GET", "/t/acme", &[("Cookie", &session)], None);
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /signin"), "{head}");

    // A remediator claims the fix; the verification scan closes it.
    banner.close();
    sign_in(&b, base, &tokens["acme-remediator"], &fpath);
    assert_inert(&b, "finding");
    b.shot("11-finding");
    b.select("#move-to", "fixed");
    b.type_into("#move-comment", "port closed <b>by ops</b>");
    b.click_nav("#move");
    assert!(b.text(".notice").contains("Saved"), "{}", b.body());
    assert!(
        b.text("#lifecycle").contains("port closed <b>by ops</b>"),
        "{}",
        b.body()
    );
    b.wait_for("closed-verified", Duration::from_secs(60), |b| {
        b.text("#finding-state").contains("closed-verified")
    });
    assert_inert(&b, "finding closed");
    b.shot("12-finding-closed-verified");

    // Bulk: the remediator acknowledges every open finding of the HTTP service at once.
    b.goto(&format!(
        "{base}/t/acme/findings?active=true&asset={}",
        enc(&web_key)
    ));
    let rows = b.script("return document.querySelectorAll('input.pick').length;");
    let rows = rows.as_u64().expect("a count");
    assert!(rows >= 1, "findings of the http service: {}", b.body());
    b.script("document.querySelectorAll('input.pick').forEach(c => c.click()); return null;");
    b.select("#bulk-to", "acknowledged");
    b.type_into("#bulk-comment", "seen, <i>on it</i>");
    b.click_nav("#bulk-apply");
    assert!(
        b.text(".notice")
            .contains(&format!("Findings moved: {rows}")),
        "{}",
        b.body()
    );
    b.shot("12b-findings-bulk");
    let v = http.api(
        &admin,
        "GET",
        &format!(
            "/v1/tenants/acme/findings?asset={}&state=acknowledged",
            enc(&web_key)
        ),
        None,
    );
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(rows as usize),
        "{v}"
    );
    assert!(v.to_string().contains("seen, <i>on it</i>"), "{v}");

    // CSRF: another origin's page posts a comment form at the portal with the
    // remediator's cookie in the browser; the portal refuses it.
    let open = http.api(&admin, "GET", "/v1/tenants/acme/findings?active=true", None);
    let target_id = open["items"][0]["id"]
        .as_str()
        .expect("an open finding")
        .to_owned();
    let act = format!("{base}/t/acme/findings/{}/act", enc(&target_id));
    ATTACK_TARGET.set(act.clone()).expect("set once");
    let attacker = Listener::start(attacker_page, true);
    b.goto(&format!("http://127.0.0.1:{}/", attacker.port));
    b.wait_for("the forged post's answer", Duration::from_secs(10), |b| {
        b.url().starts_with(&act)
    });
    assert!(
        b.text(".problem").contains("did not come from this site"),
        "{}",
        b.body()
    );
    b.shot("13-csrf-refused");
    let after = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/findings/{}", enc(&target_id)),
        None,
    );
    assert!(
        !after.to_string().contains("forged"),
        "nothing changed: {after}"
    );
    // The same without a browser: the right cookie, a wrong or missing token, or a
    // foreign Origin with the right token, are all refused.
    let cookie = b.cookie("ap_session").expect("session");
    let session = format!("ap_session={}", cookie["value"].as_str().expect("value"));
    let form = |csrf: &str| format!("_csrf={csrf}&action=comment&comment=forged").into_bytes();
    for (csrf, origin) in [
        ("", None),
        ("wrong", None),
        ("wrong", Some("http://evil.example")),
    ] {
        let mut h = vec![("Cookie", session.as_str())];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        let path = format!("/t/acme/findings/{}/act", enc(&target_id));
        let (status, _, body) = http.send(
            "POST",
            &path,
            &h,
            Some(("application/x-www-form-urlencoded", form(csrf))),
        );
        assert_eq!(status, 403, "{body}");
    }
    let after = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/findings/{}", enc(&target_id)),
        None,
    );
    assert!(
        !after.to_string().contains("forged"),
        "nothing changed: {after}"
    );

    sign_out(&b);

    // An analyst: a scan outside the scope is refused with the API's reason on the page;
    // one inside it is launched from the form and watched until it finishes.
    let analyst = http.api(
        &admin,
        "POST",
        "/v1/tokens",
        Some(json!({"name": "acme-analyst", "role": "analyst", "tenants": ["acme"]})),
    )["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    sign_in(&b, base, &analyst, "/t/acme/scans");
    b.type_into("#scan-targets", "127.0.0.2");
    b.type_into("#scan-ports", &web.port.to_string());
    b.click_nav("#launch");
    assert!(
        b.text(".problem").contains("nothing was queued"),
        "refused: {}",
        b.body()
    );
    assert!(
        b.body().contains("127.0.0.2 is outside the tenant's scope"),
        "{}",
        b.body()
    );
    b.shot("14-scan-refused");
    b.type_into("#scan-targets", "127.0.0.1");
    b.type_into("#scan-ports", &format!("{},{}", web.port, banner.port));
    b.click_nav("#launch");
    assert!(
        b.url().contains("/t/acme/scans/"),
        "the scan's page: {}",
        b.url()
    );
    b.wait_for("the scan to finish", Duration::from_secs(60), |b| {
        b.text("#scan-state").contains("completed")
    });
    assert!(b.find("#shard-map .shard.done").is_some(), "{}", b.body());
    assert_inert(&b, "scan page");
    b.shot("15-scan-completed");
    b.goto(&format!("{base}/t/acme/scans"));
    assert!(b.text("#scans").contains("completed"), "{}", b.body());
    b.shot("16-scans");
    b.goto(&format!("{base}/admin"));
    assert!(
        b.text("h1").contains("Not allowed"),
        "admin only: {}",
        b.body()
    );
    sign_out(&b);

    // An admin creates a tenant and a token; the secret is shown once, and works.
    sign_in(&b, base, &admin, "/admin");
    b.type_into("#tenant-id", "gamma");
    b.type_into("#tenant-name", "Gamma <b>Ltd</b>");
    b.click_nav("#create-tenant");
    assert!(
        b.text("#tenant-list").contains("Gamma <b>Ltd</b>"),
        "{}",
        b.body()
    );
    b.type_into("#token-name", "gamma-viewer");
    b.select("#token-role", "viewer");
    b.type_into("#token-tenants", "gamma");
    b.click_nav("#create-token");
    let secret = b.text("#new-secret");
    assert!(secret.starts_with("apt_"), "{}", b.body());
    b.shot("17-admin-token-created");
    let v = http.api(&secret, "GET", "/v1/tenants", None);
    assert_eq!(v[0]["id"], "gamma", "the new token sees its tenant: {v}");
    b.goto(&format!("{base}/admin"));
    assert!(b.find("#new-secret").is_none(), "the secret is shown once");
    assert!(!b.body().contains(&secret), "the secret is shown once");
    let audit = b.text("#audit");
    for action in [
        "POST /admin/tenants",
        "POST /admin/tokens",
        "POST /t/acme/scans",
    ] {
        assert!(audit.contains(action), "{action} audited: {audit}");
    }
    assert_inert(&b, "admin");
    b.shot("18-admin");

    // Security headers on pages.
    let (_, head, _) = http.send("GET", "/signin", &[], None);
    for h in [
        "content-security-policy: default-src 'none'; script-src 'self'",
        "frame-ancestors 'none'",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    // The API is unchanged beside the portal: bearer-only, its own document.
    let (status, _, _) = http.send("GET", "/v1/tenants", &[("Cookie", &session)], None);
    assert_eq!(status, 401, "a session cookie is no API credential");
    let (status, _, doc) = http.send("GET", "/openapi.json", &[], None);
    assert_eq!(status, 200);
    assert!(
        !doc.contains("\"/t/{tenant}\""),
        "the portal is not in the API document"
    );
    drop(b);
    drop(svc);
}
