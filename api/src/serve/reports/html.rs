//! A report as one self-contained HTML page: inline styles, the shrinkage curve as inline
//! SVG, every string in English and Simplified Chinese, and everything that came from a
//! scanned host or a user (titles, asset names, owners) escaped.
//!
//! Numbers, dates and the shrinkage chart are the portal's own (`portal::i18n`,
//! `portal::layout::shrinkage`), so a report and the dashboard show the same figures the
//! same way; the page carries the chart's few style rules itself.

use super::{Lang, Period, ReportData, TopRisk};
use crate::portal::i18n::Lang as PortalLang;
use aperture_storage::model::Millis;
use std::fmt::Write;

/// Every string a report shows, in both languages.
struct Words {
    title: &'static str,
    daily: &'static str,
    weekly: &'static str,
    monthly: &'static str,
    window: &'static str,
    generated: &'static str,
    exposure: &'static str,
    exposed_hosts: &'static str,
    exposed_services: &'static str,
    by_risk: &'static str,
    risk_class: &'static str,
    services: &'static str,
    findings: &'static str,
    opened: &'static str,
    closed: &'static str,
    verified: &'static str,
    overdue: &'static str,
    active_by_severity: &'static str,
    severity: &'static str,
    count: &'static str,
    mttr: &'static str,
    hours: &'static str,
    none_closed: &'static str,
    shrinkage: &'static str,
    top_risks: &'static str,
    risk: &'static str,
    asset: &'static str,
    owner: &'static str,
    unassigned: &'static str,
    age: &'static str,
    days: &'static str,
    due: &'static str,
    no_risks: &'static str,
    candidates: &'static str,
    no_candidates: &'static str,
    candidate: &'static str,
    evidence: &'static str,
    provider: &'static str,
    footer: &'static str,
}

const EN: Words = Words {
    title: "Exposure operations report",
    daily: "Daily",
    weekly: "Weekly",
    monthly: "Monthly",
    window: "Period",
    generated: "Generated",
    exposure: "Exposure now",
    exposed_hosts: "Exposed hosts",
    exposed_services: "Exposed services",
    by_risk: "Services by risk class",
    risk_class: "Risk class",
    services: "Services",
    findings: "Findings in this period",
    opened: "Opened",
    closed: "Closed",
    verified: "Closed, verified by a rescan",
    overdue: "Overdue now",
    active_by_severity: "Active findings by severity",
    severity: "Severity",
    count: "Count",
    mttr: "Mean time to remediate (verified)",
    hours: "hours",
    none_closed: "no verified closure yet",
    shrinkage: "Exposed hosts and services per day",
    top_risks: "Top risks",
    risk: "Finding",
    asset: "Asset",
    owner: "Owner",
    unassigned: "unassigned",
    age: "Age",
    days: "days",
    due: "Due",
    no_risks: "No active findings.",
    candidates: "Candidates awaiting review",
    no_candidates: "None awaiting review.",
    candidate: "Candidate",
    evidence: "How it was found",
    provider: "Provider",
    footer: "Aperture — every figure above is from the tenant's store when the report was made.",
};

const ZH: Words = Words {
    title: "暴露面运营报告",
    daily: "日报",
    weekly: "周报",
    monthly: "月报",
    window: "统计周期",
    generated: "生成时间",
    exposure: "当前暴露面",
    exposed_hosts: "暴露主机",
    exposed_services: "暴露服务",
    by_risk: "按风险类别统计的服务",
    risk_class: "风险类别",
    services: "服务数",
    findings: "本期问题",
    opened: "新发现",
    closed: "已关闭",
    verified: "已关闭（复扫验证）",
    overdue: "当前逾期",
    active_by_severity: "按严重程度统计的未关闭问题",
    severity: "严重程度",
    count: "数量",
    mttr: "平均修复时间（已验证）",
    hours: "小时",
    none_closed: "尚无验证关闭的问题",
    shrinkage: "每日暴露主机与服务",
    top_risks: "主要风险",
    risk: "问题",
    asset: "资产",
    owner: "责任人",
    unassigned: "未指派",
    age: "已存在",
    days: "天",
    due: "整改期限",
    no_risks: "没有未关闭的问题。",
    candidates: "待审核的候选资产",
    no_candidates: "没有待审核的候选资产。",
    candidate: "候选资产",
    evidence: "发现依据",
    provider: "服务商",
    footer: "Aperture — 以上数据均取自报告生成时该租户的资产库。",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::ZhCn => &ZH,
    }
}

fn severity_word(lang: Lang, s: &str) -> &str {
    match (lang, s) {
        (Lang::ZhCn, "critical") => "严重",
        (Lang::ZhCn, "high") => "高危",
        (Lang::ZhCn, "medium") => "中危",
        (Lang::ZhCn, "low") => "低危",
        (Lang::ZhCn, "info") => "信息",
        _ => s,
    }
}

/// Escapes text and attribute values alike.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn portal(lang: Lang) -> PortalLang {
    match lang {
        Lang::En => PortalLang::En,
        Lang::ZhCn => PortalLang::Zh,
    }
}

fn number(n: u64) -> String {
    PortalLang::En.number(n)
}

fn date(lang: Lang, at: Millis) -> String {
    portal(lang).datetime(at)
}

const STYLE: &str = "body{font-family:'Noto Sans','Noto Sans CJK SC',sans-serif;color:#1d2430;margin:28px;font-size:13px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 8px;border-bottom:1px solid #d5dae1;padding-bottom:4px}\
.meta{color:#5b6573}.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{border:1px solid #d5dae1;border-radius:6px;padding:8px 14px;min-width:120px}\
.tile b{display:block;font-size:20px}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #e6e9ee;vertical-align:top}\
th{background:#f3f5f8}td.n{text-align:right}.sev-critical{color:#a40000;font-weight:bold}.sev-high{color:#c2410c;font-weight:bold}\
.sev-medium{color:#a16207}.overdue{color:#a40000}.gap{color:#a40000;font-style:italic}footer{margin-top:28px;color:#5b6573;font-size:11px}\
td.asset{word-break:break-all}svg.chart{max-width:640px}svg.chart text{font-size:12px;fill:#1d2430}\
svg.chart text.end{text-anchor:end}svg.chart .axis{stroke:#d5dae1;stroke-width:1}svg.chart polyline{fill:none;stroke-width:2.5}\
svg.chart .services{stroke:#2563eb}svg.chart circle.services{fill:#2563eb}svg.chart .hosts{stroke:#c2410c}svg.chart circle.hosts{fill:#c2410c}\
.legend .key{display:inline-block;width:14px;height:4px;margin:0 4px 2px 8px}.legend .key.services{background:#2563eb}.legend .key.hosts{background:#c2410c}";

/// The whole page.
pub fn render(d: &ReportData) -> String {
    let w = words(d.lang);
    let s = &d.summary;
    let period = match d.period {
        Period::Daily => w.daily,
        Period::Weekly => w.weekly,
        Period::Monthly => w.monthly,
    };
    let html_lang = match d.lang {
        Lang::En => "en",
        Lang::ZhCn => "zh-CN",
    };
    let mut p = String::with_capacity(16 * 1024);
    let _ = write!(
        p,
        "<!DOCTYPE html><html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>{} — {}</title><style>{STYLE}</style></head><body>",
        esc(w.title),
        esc(&d.tenant_name)
    );
    let _ = write!(
        p,
        "<h1>{} · {}</h1><div class=\"meta\">{} ({}) · {}: {} — {} · {}: {}</div>",
        esc(&d.tenant_name),
        esc(period),
        esc(w.title),
        esc(&d.tenant),
        esc(w.window),
        esc(&date(d.lang, d.from)),
        esc(&date(d.lang, d.to)),
        esc(w.generated),
        esc(&date(d.lang, d.to)),
    );
    let _ = write!(p, "<h2>{}</h2><div class=\"tiles\">", esc(w.exposure));
    for (label, n) in [
        (w.exposed_hosts, s.exposed_hosts),
        (w.exposed_services, s.exposed_services),
        (w.overdue, s.overdue),
    ] {
        let _ = write!(
            p,
            "<div class=\"tile\"><b>{}</b>{}</div>",
            number(n),
            esc(label)
        );
    }
    p.push_str("</div>");
    let days = &s.shrinkage[s.shrinkage.len().saturating_sub(90)..];
    let chart = crate::portal::layout::shrinkage(portal(d.lang), days).into_string();
    let _ = write!(p, "<h2>{}</h2>{chart}", esc(w.shrinkage));
    let _ = write!(p, "<h2>{}</h2><div class=\"tiles\">", esc(w.findings));
    for (label, n) in [
        (w.opened, d.opened_in_period),
        (w.closed, d.closed_in_period),
        (w.verified, d.verified_in_period),
    ] {
        let _ = write!(
            p,
            "<div class=\"tile\"><b>{}</b>{}</div>",
            number(n),
            esc(label)
        );
    }
    let mttr = match s.mean_time_to_remediate_hours {
        Some(h) => format!("{h:.1} {}", w.hours),
        None => w.none_closed.to_owned(),
    };
    let _ = write!(
        p,
        "<div class=\"tile\"><b>{}</b>{}</div></div>",
        esc(&mttr),
        esc(w.mttr)
    );
    let _ = write!(
        p,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th></tr>",
        esc(w.active_by_severity),
        esc(w.severity),
        esc(w.count)
    );
    for sev in ["critical", "high", "medium", "low", "info"] {
        let n = s.open_findings_by_severity.get(sev).copied().unwrap_or(0);
        let _ = write!(
            p,
            "<tr><td class=\"sev-{sev}\">{}</td><td class=\"n\">{}</td></tr>",
            esc(severity_word(d.lang, sev)),
            number(n)
        );
    }
    p.push_str("</table>");
    let _ = write!(
        p,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th></tr>",
        esc(w.by_risk),
        esc(w.risk_class),
        esc(w.services)
    );
    for (class, n) in &s.services_by_risk {
        let _ = write!(
            p,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(class),
            number(*n)
        );
    }
    p.push_str("</table>");
    let _ = write!(p, "<h2>{}</h2>", esc(w.top_risks));
    top_risks(&mut p, d, w);
    candidates(&mut p, d, w);
    let _ = write!(p, "<footer>{}</footer></body></html>", esc(w.footer));
    p
}

/// What discovery found outside the scope and nobody has reviewed yet.
fn candidates(p: &mut String, d: &ReportData, w: &Words) {
    let _ = write!(
        p,
        "<h2>{} ({})</h2>",
        esc(w.candidates),
        number(d.candidates_awaiting)
    );
    if d.candidates.is_empty() {
        let _ = write!(p, "<p>{}</p>", esc(w.no_candidates));
        return;
    }
    let _ = write!(
        p,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        esc(w.candidate),
        esc(w.evidence),
        esc(w.provider)
    );
    for c in &d.candidates {
        let _ = write!(
            p,
            "<tr><td class=\"asset\">{}</td><td class=\"asset\">{}</td><td>{}</td></tr>",
            esc(&c.value),
            esc(&c.evidence),
            esc(c.provider.as_deref().unwrap_or(""))
        );
    }
    p.push_str("</table>");
}

fn top_risks(p: &mut String, d: &ReportData, w: &Words) {
    if d.top_risks.is_empty() {
        let _ = write!(p, "<p>{}</p>", esc(w.no_risks));
        return;
    }
    let _ = write!(
        p,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        esc(w.severity),
        esc(w.risk),
        esc(w.asset),
        esc(w.owner),
        esc(w.age),
        esc(w.due)
    );
    for r in &d.top_risks {
        let TopRisk {
            severity,
            title,
            asset,
            owner,
            opened,
            due,
            overdue,
            ..
        } = r;
        let owner = match owner {
            Some(o) => esc(o),
            None => format!("<span class=\"gap\">{}</span>", esc(w.unassigned)),
        };
        let age = (d.to - opened).max(0) / 86_400_000;
        let due = due
            .map(|t| {
                let class = if *overdue { " class=\"overdue\"" } else { "" };
                format!("<span{class}>{}</span>", esc(&date(d.lang, t)))
            })
            .unwrap_or_default();
        let _ = write!(
            p,
            "<tr><td class=\"sev-{}\">{}</td><td>{}</td><td class=\"asset\">{}</td><td>{owner}</td><td class=\"n\">{age} {}</td><td>{due}</td></tr>",
            esc(severity),
            esc(severity_word(d.lang, severity)),
            esc(title),
            esc(asset),
            esc(w.days)
        );
    }
    p.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_language() {
        assert_eq!(date(Lang::En, 1_796_660_335_000), "2026-12-07 16:18 UTC");
        assert_eq!(
            date(Lang::ZhCn, 1_796_660_335_000),
            "2026年12月7日 16:18 UTC"
        );
    }

    #[test]
    fn hostile_text_is_inert() {
        let e = esc("<script>alert('x')</script>\"&\u{7}");
        assert!(!e.contains('<') && !e.contains('"') && !e.contains('\''));
        assert!(e.contains("&lt;script&gt;") && e.ends_with("&amp;\u{fffd}"));
    }
}
