//! English and Simplified Chinese: every string of the portal in both, and dates and
//! numbers written the way each language writes them.

use aperture_storage::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-Hans",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The text of `key`; the key itself when the table lacks it (a test proves none do).
    pub fn t(self, key: &'static str) -> &'static str {
        match STRINGS.iter().find(|(k, _, _)| *k == key) {
            Some((_, en, zh)) => match self {
                Lang::En => en,
                Lang::Zh => zh,
            },
            None => key,
        }
    }

    /// `1,234,567` in both: Chinese groups thousands with commas too in technical text.
    pub fn number(self, n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// A moment in UTC: `2026-12-07 16:11 UTC` / `2026年12月7日 16:11 UTC`.
    pub fn datetime(self, at: Millis) -> String {
        if at <= 0 {
            return "—".into();
        }
        let text = aperture_fingerprints::cert::rfc3339(at.div_euclid(1000));
        // YYYY-MM-DDTHH:MM:SSZ
        let (y, m, d, hm) = (
            text.get(0..4).unwrap_or(""),
            text.get(5..7).unwrap_or(""),
            text.get(8..10).unwrap_or(""),
            text.get(11..16).unwrap_or(""),
        );
        match self {
            Lang::En => format!("{y}-{m}-{d} {hm} UTC"),
            Lang::Zh => format!(
                "{y}年{}月{}日 {hm} UTC",
                m.trim_start_matches('0'),
                d.trim_start_matches('0')
            ),
        }
    }

    /// A day `YYYY-MM-DD` as the language writes it short: `12-07` / `12月7日`.
    pub fn short_day(self, day: &str) -> String {
        let (m, d) = (day.get(5..7).unwrap_or(""), day.get(8..10).unwrap_or(""));
        match self {
            Lang::En => format!("{m}-{d}"),
            Lang::Zh => format!(
                "{}月{}日",
                m.trim_start_matches('0'),
                d.trim_start_matches('0')
            ),
        }
    }

    /// Hours as a duration: `3.5 h` / `3.5 小时`; days past two days.
    pub fn hours(self, h: f64) -> String {
        if h >= 48.0 {
            match self {
                Lang::En => format!("{:.1} days", h / 24.0),
                Lang::Zh => format!("{:.1} 天", h / 24.0),
            }
        } else {
            match self {
                Lang::En => format!("{h:.1} h"),
                Lang::Zh => format!("{h:.1} 小时"),
            }
        }
    }
}

/// (key, English, Simplified Chinese).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("app", "Aperture", "Aperture 暴露面"),
    ("signin", "Sign in", "登录"),
    ("signout", "Sign out", "退出登录"),
    ("token", "API token", "API 令牌"),
    (
        "signin.help",
        "Paste an API token (apt_…). It is exchanged for a session; the page never stores it.",
        "粘贴 API 令牌（apt_…）。它会换成一个会话，页面不保存令牌。",
    ),
    (
        "signin.bad",
        "That token is unknown or revoked.",
        "该令牌不存在或已被吊销。",
    ),
    (
        "signin.expired",
        "Your session has ended. Sign in again.",
        "会话已结束，请重新登录。",
    ),
    ("tenants", "Tenants", "租户"),
    ("tenant", "Tenant", "租户"),
    ("dashboard", "Dashboard", "总览"),
    ("inventory", "Inventory", "资产清单"),
    ("changes", "Changes", "变更"),
    ("findings", "Findings", "问题"),
    ("language", "Language", "语言"),
    ("signed_in_as", "Signed in as", "当前用户"),
    ("role", "Role", "角色"),
    ("exposed_hosts", "Exposed hosts", "暴露主机"),
    ("exposed_services", "Exposed services", "暴露服务"),
    ("by_risk", "Exposure by risk class", "按风险类别的暴露"),
    ("by_severity", "Active findings by severity", "按严重程度的活动问题"),
    ("by_age", "Active findings by age", "按时长的活动问题"),
    ("overdue", "Overdue", "已逾期"),
    ("mttr", "Mean time to remediate", "平均修复时间"),
    ("closed_verified", "Closed, verified", "已关闭（已验证）"),
    ("new_since", "New changes since your last visit", "自上次访问以来的新变更"),
    ("shrinkage", "Exposure over time", "暴露随时间变化"),
    ("hosts", "hosts", "主机"),
    ("services", "services", "服务"),
    ("none", "None", "无"),
    ("no_data", "No data yet.", "暂无数据。"),
    ("filter", "Filter", "筛选"),
    ("clear", "Clear", "清除"),
    ("kind", "Kind", "类型"),
    ("net", "Address or CIDR", "地址或 CIDR"),
    ("port", "Port", "端口"),
    ("protocol", "Protocol", "协议"),
    ("service", "Service", "服务"),
    ("product", "Product", "产品"),
    ("risk", "Risk class", "风险类别"),
    ("domain", "Domain", "域名"),
    ("status", "Status", "状态"),
    ("first_seen", "First seen", "首次发现"),
    ("last_seen", "Last seen", "最近发现"),
    ("last_changed", "Last changed", "最近变更"),
    ("first_seen_from", "First seen from", "首次发现晚于"),
    ("last_seen_from", "Last seen from", "最近发现晚于"),
    ("times_seen", "Times seen", "发现次数"),
    ("asset", "Asset", "资产"),
    ("any", "any", "全部"),
    ("next_page", "Next page", "下一页"),
    ("first_page", "First page", "第一页"),
    ("per_page", "Per page", "每页"),
    ("export_csv", "Export CSV", "导出 CSV"),
    ("export_jsonl", "Export JSONL", "导出 JSONL"),
    (
        "export.help",
        "Exports hold every asset matching the filters, not just this page.",
        "导出内容包含所有符合筛选条件的资产，而不仅是本页。",
    ),
    ("facts", "Current facts", "当前信息"),
    ("field", "Field", "字段"),
    ("value", "Value", "值"),
    ("banner", "Banner", "横幅"),
    ("http_title", "HTTP title", "HTTP 标题"),
    ("favicon", "Favicon hash", "Favicon 哈希"),
    ("certificate", "Certificate", "证书"),
    ("links", "Linked assets", "关联资产"),
    ("history", "History", "历史"),
    ("appeared", "appeared", "出现"),
    ("disappeared", "disappeared", "消失"),
    ("changed", "changed", "变更"),
    ("scan", "Scan", "扫描"),
    ("when", "When", "时间"),
    ("what", "What", "内容"),
    ("severity", "Severity", "严重程度"),
    ("state", "State", "状态"),
    ("rule", "Rule", "规则"),
    ("title", "Title", "标题"),
    ("opened", "Opened", "开启时间"),
    ("due", "Due", "截止"),
    ("assignee", "Assignee", "负责人"),
    ("active_only", "Active only", "仅活动"),
    ("overdue_only", "Overdue only", "仅逾期"),
    ("evidence", "Evidence", "证据"),
    ("lifecycle", "Lifecycle", "生命周期"),
    ("notes", "Comments and assignments", "评论与分配"),
    ("move_to", "Move to", "变更为"),
    ("comment", "Comment", "评论"),
    ("until", "Accepted until (risk acceptance)", "接受至（风险接受）"),
    ("apply", "Apply", "应用"),
    ("assign", "Assign", "分配"),
    ("add_comment", "Add comment", "添加评论"),
    ("request_verify", "Request verification", "请求验证"),
    ("saved", "Saved.", "已保存。"),
    ("verification_started", "Verification scan started", "验证扫描已开始"),
    ("from", "from", "从"),
    ("to", "to", "到"),
    ("by", "by", "由"),
    ("error", "Error", "错误"),
    ("not_found", "Not found", "未找到"),
    ("forbidden", "Not allowed", "无权操作"),
    (
        "csrf",
        "This form did not come from this site's page (or the page is too old). Reload the page and try again.",
        "此表单不是来自本站页面（或页面已过期）。请刷新页面后重试。",
    ),
    ("back", "Back", "返回"),
    (
        "read_only",
        "Your role may read this but not change it.",
        "您的角色可以查看但不能修改。",
    ),
    ("change_feed", "Change feed", "变更记录"),
    ("older", "Older", "更早"),
    ("newer", "Newer", "更新"),
    ("old", "old", "旧值"),
    ("new", "new", "新值"),
    ("count", "Count", "数量"),
    ("scans", "Scans", "扫描"),
    ("launch", "Launch a scan", "发起扫描"),
    ("targets", "Targets (addresses, CIDRs)", "目标（地址、CIDR）"),
    ("ports", "Ports", "端口"),
    ("domains", "Domains", "域名"),
    ("rate", "Rate (probes/s)", "速率（探测/秒）"),
    ("grab", "Grab banners, TLS and HTTP", "抓取横幅、TLS 与 HTTP"),
    ("scope", "Scope", "授权范围"),
    ("exclusions", "Exclusions", "排除"),
    ("allow_special", "Allow special-purpose ranges", "允许特殊用途地址段"),
    ("save", "Save", "保存"),
    ("progress", "Progress", "进度"),
    ("found", "Found", "发现"),
    ("requested", "Requested", "请求时间"),
    ("finished", "Finished", "完成时间"),
    ("probes", "probes", "探测"),
    ("shards", "Shards", "分片"),
    ("shard_map", "Shard map", "分片图"),
    ("coverage", "Coverage", "覆盖范围"),
    ("cancel", "Cancel scan", "取消扫描"),
    ("admin", "Admin", "管理"),
    ("create_tenant", "Create a tenant", "创建租户"),
    ("tenant_id", "Id (a-z, 0-9, -)", "标识（a-z、0-9、-）"),
    ("name", "Name", "名称"),
    ("create", "Create", "创建"),
    ("tokens", "Tokens", "令牌"),
    ("create_token", "Create a token", "创建令牌"),
    ("revoke", "Revoke", "吊销"),
    ("revoked", "Revoked", "已吊销"),
    (
        "secret_once",
        "The new token's secret. It is shown this once only: copy it now.",
        "新令牌的密钥仅显示这一次，请立即复制。",
    ),
    ("audit", "Audit log", "审计日志"),
    ("actor", "Actor", "操作者"),
    ("action", "Action", "操作"),
    ("outcome", "Outcome", "结果"),
    ("source", "Source", "来源"),
    ("workers", "Workers", "工作节点"),
    ("prefix", "Prefix", "前缀"),
    ("created", "Created", "创建时间"),
    ("moved", "Findings moved", "已变更的问题"),
    ("move_selected", "Move the selected to", "将所选变更为"),
    ("choose_tenant", "Choose a tenant", "选择租户"),
    (
        "no_tenants",
        "This token may not see any tenant.",
        "此令牌无权查看任何租户。",
    ),
    ("sanctions", "Sanctions", "已批准暴露"),
    ("sanction", "Sanction", "批准项"),
    ("create_sanction", "Sanction an exposure", "批准一项暴露"),
    (
        "sanction.match_help",
        "What it covers: give at least one of address/CIDR, port, service, product or domain (a glob such as *.shop.example.com).",
        "覆盖范围：至少填写地址/CIDR、端口、服务、产品或域名（可用通配符，如 *.shop.example.com）之一。",
    ),
    ("match", "Match", "匹配条件"),
    ("covers", "Covers", "覆盖资产"),
    ("assets", "asset(s)", "项资产"),
    ("covers_nothing", "It covers no asset seen so far.", "目前没有已发现的资产符合该条件。"),
    (
        "more_in_inventory",
        "The rest are in the inventory, through the link above.",
        "其余资产可通过上方链接在资产清单中查看。",
    ),
    ("owner", "Owner", "责任人"),
    ("reason", "Reason", "理由"),
    ("ticket", "Ticket", "工单"),
    ("expires", "Expires (end of day, UTC)", "到期（UTC 当日结束）"),
    ("never", "never", "永不"),
    ("expired", "expired", "已过期"),
    ("expiring_soon", "Expiring soon", "即将到期"),
    ("days", "days", "天"),
    ("edit", "Edit", "编辑"),
    ("withdraw", "Withdraw this sanction", "撤销此批准"),
    ("cidrs", "CIDRs", "CIDR 地址段"),
    ("edit_scope", "Edit the scope", "编辑授权范围"),
    (
        "scope.help",
        "Scans may reach only these networks and names, minus the exclusions. One entry per line.",
        "扫描只能触及这些网段和域名（排除项除外）。每行一项。",
    ),
    ("schedules", "Schedules", "定期扫描"),
    ("create_schedule", "Add a recurring scan", "添加定期扫描"),
    ("every", "Every", "间隔"),
    ("unit", "Unit", "单位"),
    ("unit.minutes", "minutes", "分钟"),
    ("unit.hours", "hours", "小时"),
    ("unit.days", "days", "天"),
    ("first_run", "First run (start of day, UTC)", "首次运行（UTC 当日开始）"),
    ("next_run", "Next run", "下次运行"),
    ("last_scan", "Last scan", "最近扫描"),
    ("delete", "Delete", "删除"),
    ("policy", "Policy", "策略"),
    ("sla", "Days to remediate", "修复期限"),
    (
        "sla.help",
        "Per severity; empty: findings of that severity have no due date.",
        "按严重程度设置；留空表示该级别问题没有截止日期。",
    ),
    ("thresholds", "Thresholds", "阈值"),
    ("zombie_days", "A sanctioned asset unseen this long is a zombie", "已批准资产超过此时长未发现即为僵尸资产"),
    ("expiring_days", "Flag certificates expiring within", "标记在此期限内到期的证书"),
    ("risky_classes", "Risky classes (one per line)", "高风险类别（每行一个）"),
    ("cleartext_risky", "Credentials in clear are risky whatever the class", "明文凭据无论类别均视为高风险"),
    (
        "login_checks",
        "Run the checks that log in anonymously (FTP anonymous, LDAP anonymous bind, SMB null session); audited",
        "运行匿名登录检查（FTP 匿名、LDAP 匿名绑定、SMB 空会话）；会记入审计",
    ),
    ("rule_severities", "Severity per rule", "各规则的严重程度"),
    ("unauth_severities", "Severity per unauthenticated-access check", "各未授权访问检查的严重程度"),
    ("eta", "ETA", "预计剩余"),
    (
        "rate_limited",
        "Too many requests for this token: slow down and retry.",
        "此令牌的请求过多：请放慢速度后重试。",
    ),
    ("sort", "Sort", "排序"),
    (
        "figures_as_of",
        "A tenant this big: figures computed in the background, as of",
        "租户规模较大：以下数据在后台计算，截至",
    ),
    ("sort.key", "Key, ascending", "按键升序"),
    ("sort.-key", "Key, descending", "按键降序"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_string_is_in_both_languages_once() {
        let mut keys = BTreeSet::new();
        for (k, en, zh) in STRINGS {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!en.trim().is_empty(), "{k}: no English");
            assert!(!zh.trim().is_empty(), "{k}: no Chinese");
        }
    }

    /// Every portal source file: a key they ask for that the table lacks would show as
    /// the bare key in both languages.
    const SOURCES: &[(&str, &str)] = &[
        ("admin.rs", include_str!("admin.rs")),
        ("assets.rs", include_str!("assets.rs")),
        ("findings.rs", include_str!("findings.rs")),
        ("layout.rs", include_str!("layout.rs")),
        ("mod.rs", include_str!("mod.rs")),
        ("ops.rs", include_str!("ops.rs")),
        ("sanctions.rs", include_str!("sanctions.rs")),
        ("session.rs", include_str!("session.rs")),
        ("settings.rs", include_str!("settings.rs")),
    ];

    /// The string literals a source passes to `t(...)`, directly or through a
    /// `"key"` argument of a helper (`link(.., "dashboard")`, `l.t(submit)` callers),
    /// are the literals right after `t("` and those given as a `&'static str` key
    /// elsewhere; this reads the first kind, and the second kind is listed by hand in
    /// `KEY_ARGS` below.
    fn asked(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find("t(\"") {
            let before = rest[..i].chars().last();
            rest = &rest[i + 3..];
            // `.t("` or ` t("`, not `format!("`/`set_cookie(`...: the char before `t`.
            if !matches!(before, Some('.') | Some(' ') | Some('(')) {
                continue;
            }
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_owned());
            }
        }
        out
    }

    /// Keys passed through a helper rather than straight to `t`.
    const KEY_ARGS: &[&str] = &[
        "dashboard",
        "inventory",
        "changes",
        "findings",
        "scans",
        "schedules",
        "sanctions",
        "scope",
        "policy",
        "tenants",
        "admin",
        "create",
        "save",
        "unit.minutes",
        "unit.hours",
        "unit.days",
        "sort.key",
        "sort.-key",
    ];

    #[test]
    fn every_key_the_pages_ask_for_has_both_texts() {
        let mut missing = Vec::new();
        for (file, src) in SOURCES {
            for key in asked(src) {
                if !STRINGS.iter().any(|(k, _, _)| *k == key) {
                    missing.push(format!("{file}: {key}"));
                }
            }
        }
        for key in KEY_ARGS {
            if !STRINGS.iter().any(|(k, _, _)| k == key) {
                missing.push(format!("helper argument: {key}"));
            }
        }
        assert!(
            missing.is_empty(),
            "keys without en/zh-CN text: {missing:#?}"
        );
        // And the scan finds keys at all (it would pass vacuously otherwise).
        assert!(asked(include_str!("layout.rs")).contains(&"no_data".to_owned()));
        let found: usize = SOURCES.iter().map(|(_, src)| asked(src).len()).sum();
        assert!(found > 200, "only {found} keys found in the sources");
    }

    #[test]
    fn chinese_text_is_chinese() {
        // A zh-CN entry copied from English by mistake: no CJK character at all, unless
        // the text is a name or an abbreviation that both write the same.
        let same = ["CIDR", "ETA", "CSV", "JSONL"];
        for (k, en, zh) in STRINGS {
            let cjk = zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(
                cjk || same.iter().any(|s| zh.contains(s)),
                "{k}: zh-CN text {zh:?} has no Chinese (en {en:?})"
            );
        }
    }

    #[test]
    fn numbers_and_dates_follow_the_language() {
        assert_eq!(Lang::En.number(0), "0");
        assert_eq!(Lang::En.number(999), "999");
        assert_eq!(Lang::En.number(1_234_567), "1,234,567");
        // 2026-12-07T16:11:50Z
        let at = 1_796_659_910_000;
        assert_eq!(Lang::En.datetime(at), "2026-12-07 16:11 UTC");
        assert_eq!(Lang::Zh.datetime(at), "2026年12月7日 16:11 UTC");
        assert_eq!(Lang::Zh.short_day("2026-01-05"), "1月5日");
        assert_eq!(Lang::En.short_day("2026-01-05"), "01-05");
        assert_eq!(Lang::Zh.hours(3.25), "3.2 小时");
        assert_eq!(Lang::En.hours(72.0), "3.0 days");
    }
}
