//! The portal's settings screens in a real browser (Debian's chromium over WebDriver,
//! against the real `aperture serve` on 127.0.0.1): an analyst sanctions an exposure
//! and sees what it covers and that it expires soon, edits and withdraws it; adds and
//! deletes a recurring scan; edits the scope and the policy. Every refusal the API gives
//! shows on the page as its message, with the form as it was typed.
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
use std::time::{Duration, Instant, SystemTime};
use webdriver::Browser;

/// `YYYY-MM-DD`, `days` from now.
fn day_in(days: u64) -> String {
    let t = SystemTime::now() + Duration::from_secs(days * 86_400);
    humantime::format_rfc3339(t).to_string()[..10].to_owned()
}

fn value(b: &Browser, id: &str) -> String {
    b.script(&format!("return document.getElementById('{id}').value;"))
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn settings_screens_in_a_real_browser() {
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
    // Names come from a hostile DNS responder on loopback: its TXT record is a payload.
    let dns = DnsResponder::start();
    let resolver = format!("127.0.0.1:{}", dns.port);
    let svc = start_service_with(
        &data,
        &[
            ("APERTURE_RESOLVERS", resolver.as_str()),
            ("APERTURE_DNS_QPS", "5000"),
        ],
    );
    let http = Http::new(&svc.base);
    let web = Listener::start(hostile_http, true);
    http.api(
        &admin,
        "POST",
        "/v1/tenants",
        Some(json!({"id": "acme", "name": "Acme"})),
    );
    http.api(
        &admin,
        "PUT",
        "/v1/tenants/acme/scope",
        Some(json!({"cidrs": ["127.0.0.1/32"], "domains": [DNS_ZONE], "allow_special": true})),
    );
    let scan = http.api(
        &admin,
        "POST",
        "/v1/tenants/acme/scans",
        Some(json!({"targets": ["127.0.0.1"], "ports": web.port.to_string(), "grab": true})),
    );
    wait_scan(&http, &admin, "acme", scan["id"].as_str().expect("scan id"));
    let scan = http.api(
        &admin,
        "POST",
        "/v1/tenants/acme/scans",
        Some(json!({"domains": [DNS_ZONE], "grab": false})),
    );
    wait_scan(&http, &admin, "acme", scan["id"].as_str().expect("scan id"));
    let zone_key = format!("domain:{DNS_ZONE}");
    let stored = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/assets/{}", enc(&zone_key)),
        None,
    );
    let txt = stored["asset"]["facts"]["zone.TXT"]
        .as_str()
        .unwrap_or_else(|| panic!("the hostile TXT is stored: {stored}"))
        .to_owned();
    assert!(
        txt.contains(TXT_PAYLOAD),
        "the TXT keeps its markup: {txt:?}"
    );
    let web_key = format!("service:127.0.0.1:{}/tcp", web.port);
    let analyst = http.api(
        &admin,
        "POST",
        "/v1/tokens",
        Some(json!({"name": "acme-analyst", "role": "analyst", "tenants": ["acme"]})),
    )["secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    let b = Browser::start(shots_dir());
    let base = &svc.base;
    sign_in(&b, base, &analyst, "/t/acme/sanctions");

    // The zone's page shows the TXT record as text, and nothing of it runs.
    b.goto(&format!("{base}/t/acme/asset?key={}", enc(&zone_key)));
    let facts = b.text("#facts");
    assert!(facts.contains(TXT_PAYLOAD), "the TXT as text: {facts}");
    assert_inert(&b, "zone page (TXT)");
    b.shot("25-zone-txt");
    b.goto(&format!("{base}/t/acme/assets?kind=domain"));
    assert!(
        b.text("#assets")
            .contains(&format!("domain:www.{DNS_ZONE}")),
        "{}",
        b.body()
    );
    assert_inert(&b, "inventory of names");
    b.goto(&format!("{base}/t/acme/sanctions"));

    // A sanction without any match: the API's refusal, and the form as typed.
    b.type_into("#s-owner", "web team <ops>");
    b.type_into("#s-reason", "<b>public</b> site");
    b.click_nav("#s-save");
    assert!(
        b.text(".problem")
            .contains("needs at least one of net, port"),
        "{}",
        b.body()
    );
    assert_eq!(value(&b, "s-owner"), "web team <ops>", "the form is kept");

    // Sanctioned by port, expiring in ten days: it covers the web service.
    b.type_into("#s-port", &web.port.to_string());
    b.script(&format!(
        "document.getElementById('s-expires').value = '{}'; return null;",
        day_in(10)
    ));
    b.click_nav("#s-save");
    assert!(
        b.url().contains("/t/acme/sanctions/"),
        "the sanction's page: {} {}",
        b.url(),
        b.body()
    );
    let sid = b.url().rsplit('/').next().unwrap_or_default().to_owned();
    assert!(b.text("#covered").contains(&web_key), "{}", b.body());
    assert!(b.text("#covered").contains("1 asset(s)"), "{}", b.body());
    assert!(
        b.text("#sanction-expires").contains("Expiring soon"),
        "{}",
        b.body()
    );
    assert_inert(&b, "sanction");
    b.shot("20-sanction");
    // The link to what it covers is the inventory, filtered to it.
    b.click_nav("#covered a.covers");
    assert!(b.text("#assets").contains(&web_key), "{}", b.body());
    // The policy closes the finding it covers as sanctioned.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = http.api(
            &admin,
            "GET",
            &format!(
                "/v1/tenants/acme/findings?rule=unsanctioned&asset={}",
                enc(&web_key)
            ),
            None,
        );
        if v["items"][0]["state"] == "closed-sanctioned" {
            break;
        }
        assert!(Instant::now() < deadline, "not closed as sanctioned: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The list: expiring soon, and what each covers.
    b.goto(&format!("{base}/t/acme/sanctions"));
    assert!(b.text("#expiring").contains(&sid), "{}", b.body());
    assert!(
        b.text("#sanctions").contains("1 asset(s)")
            && b.text("#sanctions").contains("<b>public</b> site"),
        "{}",
        b.body()
    );
    assert_inert(&b, "sanctions");
    b.shot("19-sanctions");

    // Edit: a port out of range is refused with the form as typed; no end date is kept.
    b.goto(&format!("{base}/t/acme/sanctions/{sid}"));
    b.type_into("#s-port", "70000");
    b.click_nav("#s-save");
    assert!(
        b.text(".problem").contains("port=\"70000\""),
        "{}",
        b.body()
    );
    assert_eq!(value(&b, "s-port"), "70000");
    b.type_into("#s-port", &web.port.to_string());
    b.script("document.getElementById('s-expires').value = ''; return null;");
    b.click_nav("#s-save");
    assert!(
        b.text("#sanction-expires").contains("never"),
        "{}",
        b.body()
    );
    let v = http.api(
        &admin,
        "GET",
        &format!("/v1/tenants/acme/sanctions/{sid}"),
        None,
    );
    assert!(v["expires"].is_null(), "{v}");

    // In Chinese.
    b.goto(&format!("{base}/t/acme/sanctions"));
    b.click_nav("#lang-zh");
    assert!(b.text("h1").contains("已批准暴露"), "{}", b.body());
    b.shot("24-sanctions-zh");
    b.click_nav("#lang-en");

    // Withdrawn: gone from the list.
    b.goto(&format!("{base}/t/acme/sanctions/{sid}"));
    b.click_nav("#s-delete");
    assert!(b.url().ends_with("/t/acme/sanctions"), "{}", b.url());
    assert!(!b.text("#sanctions").contains(&sid), "{}", b.body());

    // Schedules: outside the scope is refused per target; inside it is listed; deleted.
    b.goto(&format!("{base}/t/acme/schedules"));
    b.type_into("#sch-name", "nightly <b>web</b>");
    b.type_into("#sch-targets", "127.0.0.2");
    b.type_into("#sch-ports", &web.port.to_string());
    b.click_nav("#sch-create");
    assert!(
        b.body().contains("127.0.0.2 is outside the tenant's scope"),
        "{}",
        b.body()
    );
    assert_eq!(
        value(&b, "sch-name"),
        "nightly <b>web</b>",
        "the form is kept"
    );
    b.type_into("#sch-targets", "127.0.0.1");
    b.type_into("#sch-every", "12");
    b.select("#sch-unit", "hours");
    b.click_nav("#sch-create");
    let rows = b.text("#schedules");
    assert!(
        rows.contains("nightly <b>web</b>") && rows.contains("12 hours"),
        "{}",
        b.body()
    );
    assert_inert(&b, "schedules");
    b.shot("21-schedules");
    let list = http.api(&admin, "GET", "/v1/tenants/acme/schedules", None);
    assert_eq!(list[0]["interval_secs"], 12 * 3600, "{list}");
    let sch = list[0]["id"].as_str().expect("schedule id").to_owned();
    b.click_nav(&format!("#delete-{sch}"));
    assert!(!b.text("#schedules").contains("nightly"), "{}", b.body());
    let list = http.api(&admin, "GET", "/v1/tenants/acme/schedules", None);
    assert_eq!(list, json!([]));

    // Scope: a bad exclusion is refused and kept; a good one is saved.
    b.goto(&format!("{base}/t/acme/scope"));
    b.type_into("#scope-exclusions", "not-a-net");
    b.click_nav("#scope-save");
    assert!(
        b.text(".problem").contains("is not an address or CIDR"),
        "{}",
        b.body()
    );
    assert_eq!(value(&b, "scope-exclusions"), "not-a-net");
    b.type_into("#scope-exclusions", "127.0.0.9");
    b.click_nav("#scope-save");
    assert!(b.url().ends_with("/t/acme/scope"), "{}", b.url());
    assert_eq!(value(&b, "scope-exclusions"), "127.0.0.9/32");
    b.shot("22-scope");

    // Policy: saved through the form; a value the API refuses shows its message.
    b.goto(&format!("{base}/t/acme/policy"));
    b.type_into("#zombie-days", "45");
    b.select("#rule-new-asset", "high");
    b.click_nav("#policy-save");
    assert_eq!(value(&b, "zombie-days"), "45", "{}", b.body());
    let v = http.api(&admin, "GET", "/v1/tenants/acme/policy", None);
    assert_eq!(v["zombie_days"], 45, "{v}");
    assert_eq!(v["severities"]["new-asset"], "high", "{v}");
    assert_inert(&b, "policy");
    b.shot("23-policy");
    // The browser would stop 99999 itself: without the bound, the service refuses it.
    b.script("document.getElementById('zombie-days').removeAttribute('max'); return null;");
    b.type_into("#zombie-days", "99999");
    b.click_nav("#policy-save");
    assert!(b.text(".problem").contains("zombie_days"), "{}", b.body());
    let v = http.api(&admin, "GET", "/v1/tenants/acme/policy", None);
    assert_eq!(v["zombie_days"], 45, "unchanged: {v}");

    // A viewer reads the screens but gets no forms, and the server refuses a post anyway.
    let viewer = http.api(
        &admin,
        "POST",
        "/v1/tokens",
        Some(json!({"name": "acme-viewer", "role": "viewer", "tenants": ["acme"]})),
    )["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    sign_out(&b);
    sign_in(&b, base, &viewer, "/t/acme/sanctions");
    assert!(b.find("#sanction-form").is_none(), "no form for a viewer");
    b.goto(&format!("{base}/t/acme/schedules"));
    assert!(b.find("#schedule-form").is_none(), "no form for a viewer");
    let csrf = b
        .script("return document.querySelector('input[name=_csrf]').value;")
        .as_str()
        .expect("the sign-out form's token")
        .to_owned();
    let cookie = b.cookie("ap_session").expect("session");
    let session = format!("ap_session={}", cookie["value"].as_str().expect("value"));
    let (status, _, body) = http.send(
        "POST",
        "/t/acme/sanctions",
        &[("Cookie", &session), ("Origin", base)],
        Some((
            "application/x-www-form-urlencoded",
            format!("_csrf={csrf}&port=1&owner=x&reason=y").into_bytes(),
        )),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not do this"), "the API's reason: {body}");
    drop(b);
    drop(svc);
}
