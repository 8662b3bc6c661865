//! Operations reports (运营报告): what was found, what was closed, what is overdue and
//! how the surface shrank, for one tenant over a day, a week or a month, as a
//! self-contained HTML page and a PDF, in English or Simplified Chinese.
//!
//! The PDF is our own HTML printed by Debian's Chromium in headless mode: one layout to
//! keep (the HTML is also what the API serves), CJK text shaped by a real browser with
//! Debian's Noto CJK fonts, and a tool Debian keeps patched. A Rust typesetting crate
//! would mean a second layout and our own CJK line breaking. The page references nothing
//! outside itself (styles inline, the chart inline SVG) and forbids every fetch with its
//! Content-Security-Policy, so printing it opens no connection.
//!
//! Generated reports are kept as files beside the store (`<data>/reports/<tenant>/`):
//! they are derived from it, and large.

pub mod html;
pub mod mail;
pub mod summary;

use crate::serve::error::{ApiError, ApiResult};
use crate::serve::state::{now_ms, SharedState};
use aperture_storage::candidates::CandidateState;
use aperture_storage::model::Millis;
use aperture_storage::policy::{Finding, FindingState};
use aperture_storage::reporting::report_event;
use aperture_storage::{Store, TenantId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use summary::Summary;
use utoipa::ToSchema;

/// How many generated reports a tenant keeps; the oldest go first.
pub const KEEP_PER_TENANT: usize = 400;
/// Longest a PDF print may take before it is abandoned (the HTML is kept).
const PRINT_DEADLINE: Duration = Duration::from_secs(90);
const DAY_MS: Millis = 86_400_000;
/// A report's mail is queued before the report is printed, due after the longest print
/// plus a margin: a crash while printing leaves a mail that fails visibly (a dead letter
/// naming the missing report), never a report that was silently not mailed.
const MAIL_WAIT_MS: Millis = PRINT_DEADLINE.as_millis() as Millis + 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

impl Period {
    /// The report covers this many days up to its generation.
    pub fn days(self) -> i64 {
        match self {
            Period::Daily => 1,
            Period::Weekly => 7,
            Period::Monthly => 30,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum Lang {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

/// A risk on the report's short list: an active finding, most severe and oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopRisk {
    pub finding: String,
    pub severity: String,
    pub title: String,
    pub asset: String,
    /// Who is assigned to it; none is a gap the report points at.
    pub owner: Option<String>,
    pub state: String,
    pub opened: Millis,
    pub due: Option<Millis>,
    pub overdue: bool,
}

/// Everything a report shows, as numbers: kept beside the rendered files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportData {
    pub tenant: String,
    pub tenant_name: String,
    pub period: Period,
    pub lang: Lang,
    /// The window covered: [from, to), Unix milliseconds.
    pub from: Millis,
    pub to: Millis,
    pub opened_in_period: u64,
    pub closed_in_period: u64,
    pub verified_in_period: u64,
    /// The tenant's summary when the report was made (as `GET …/reports/summary`).
    pub summary: Summary,
    pub top_risks: Vec<TopRisk>,
    /// Candidates the discovery loop proposes that nobody has reviewed yet.
    pub candidates_awaiting: u64,
    /// The newest of them (at most ten), with the evidence that led to each.
    pub candidates: Vec<CandidateLine>,
}

/// A candidate awaiting review, as the report lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CandidateLine {
    pub value: String,
    /// `certificate on 198.19.6.10:443 → SAN shop.example.org → A …`
    pub evidence: String,
    /// The hosting or CDN provider a CNAME points into.
    pub provider: Option<String>,
}

/// A generated report as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportMeta {
    pub id: String,
    pub period: Period,
    pub lang: Lang,
    pub from: Millis,
    pub to: Millis,
    pub generated: Millis,
    /// `scheduled` or the name of the token that asked for it.
    pub requested_by: String,
    pub html_bytes: u64,
    /// Absent when the PDF could not be printed; `pdf_error` says why.
    pub pdf_bytes: Option<u64>,
    pub pdf_error: Option<String>,
    /// Reading the numbers from the store, milliseconds.
    pub gather_ms: u64,
    /// Printing the PDF.
    pub print_ms: u64,
    /// The outbox delivery that mails the report to the tenant's recipients (see
    /// `GET …/alerts/outbox` and `…/alerts/dead-letters`); absent when not mailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
}

/// Gathers the numbers of one report.
pub fn gather(
    store: &Store,
    t: &TenantId,
    period: Period,
    lang: Lang,
    now: Millis,
) -> ApiResult<ReportData> {
    let tenant = store.tenant(t)?;
    let from = now - period.days() * DAY_MS;
    let (mut opened, mut closed, mut verified) = (0u64, 0u64, 0u64);
    let mut active: Vec<Finding> = Vec::new();
    let s: Summary = summary::compute_visiting(store, t, now, |f| {
        opened += u64::from(f.opened >= from && f.opened < now);
        for x in &f.transitions {
            if x.at >= from && x.at < now && !x.to.is_active() {
                closed += 1;
                verified += u64::from(x.to == FindingState::ClosedVerified);
            }
        }
        if f.state.is_active() {
            active.push(f);
            // Only the top ten are shown: a million active findings are never held.
            if active.len() >= 1024 {
                rank(&mut active);
            }
        }
    })?;
    rank(&mut active);
    let mut open = store.candidates(t, Some(CandidateState::Open))?;
    open.sort_by_key(|c| std::cmp::Reverse(c.first_seen));
    let candidates = open
        .iter()
        .take(TOP_RISKS)
        .map(|c| CandidateLine {
            value: c.value.clone(),
            evidence: c.chain(),
            provider: c.provider.clone(),
        })
        .collect();
    let top_risks = active
        .iter()
        .map(|f| TopRisk {
            finding: f.id.clone(),
            severity: json_name(&f.severity),
            title: f.title.clone(),
            asset: f.asset.to_string(),
            owner: f.assignee.clone(),
            state: json_name(&f.state),
            opened: f.opened,
            due: f.due,
            overdue: f.overdue(now),
        })
        .collect();
    Ok(ReportData {
        tenant: t.to_string(),
        tenant_name: tenant.name,
        period,
        lang,
        from,
        to: now,
        opened_in_period: opened,
        closed_in_period: closed,
        verified_in_period: verified,
        summary: s,
        top_risks,
        candidates_awaiting: open.len() as u64,
        candidates,
    })
}

/// Most severe first, then oldest; keeps the top ten.
fn rank(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.opened.cmp(&b.opened)));
    findings.truncate(TOP_RISKS);
}

const TOP_RISKS: usize = 10;

fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Where a tenant's reports live.
pub fn dir(data_dir: &Path, t: &TenantId) -> PathBuf {
    data_dir.join("reports").join(t.as_str())
}

/// Renders, prints and keeps one report. Blocking: run it off the async threads.
pub fn generate(
    data_dir: &Path,
    chromium: &Path,
    data: &ReportData,
    requested_by: &str,
    now: Millis,
    gather_ms: u64,
    mail: Option<String>,
) -> ApiResult<ReportMeta> {
    let dir = dir(data_dir, &data.tenant.parse_tenant()?);
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let id = report_id(now, data.period, data.lang);
    let page = html::render(data);
    let html_path = dir.join(format!("{id}.html"));
    write_atomic(&html_path, page.as_bytes())?;
    let pdf_path = dir.join(format!("{id}.pdf"));
    let printing = Instant::now();
    let (pdf_bytes, pdf_error) = match print_pdf(chromium, &html_path, &pdf_path) {
        Ok(n) => (Some(n), None),
        Err(e) => (None, Some(e)),
    };
    let print_ms = printing.elapsed().as_millis() as u64;
    let meta = ReportMeta {
        id: id.clone(),
        period: data.period,
        lang: data.lang,
        from: data.from,
        to: data.to,
        generated: now,
        requested_by: requested_by.to_owned(),
        html_bytes: page.len() as u64,
        pdf_bytes,
        pdf_error,
        gather_ms,
        print_ms,
        mail,
    };
    let record = serde_json::json!({"meta": meta, "data": data});
    write_atomic(
        &dir.join(format!("{id}.json")),
        record.to_string().as_bytes(),
    )?;
    prune(&dir);
    Ok(meta)
}

/// The id of the report made at `now`: it sorts by time.
pub fn report_id(now: Millis, period: Period, lang: Lang) -> String {
    format!(
        "r{now}-{}-{}",
        period.name(),
        match lang {
            Lang::En => "en",
            Lang::ZhCn => "zh",
        }
    )
}

/// Makes a report now and, with `mail`, mails it to the recipients of the tenant's
/// report settings through their e-mail channel (400 when they name none; nothing is
/// made then). Blocking: run it off the async threads.
pub fn make(
    state: &SharedState,
    t: &TenantId,
    period: Period,
    lang: Lang,
    requested_by: &str,
    mail: bool,
) -> ApiResult<ReportMeta> {
    let now = now_ms();
    let started = Instant::now();
    let id = report_id(now, period, lang);
    let queued = if mail {
        let settings = state.store.report_schedule(t)?;
        let channel = settings
            .channel
            .filter(|_| !settings.recipients.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "mail: the tenant's report settings name no recipients; give recipients and an e-mail channel with PUT …/reports/schedule first, or leave mail out",
                )
            })?;
        let title = format!("{} report {id}", period.name());
        let event = report_event(t, &id, &title, &settings.recipients, now);
        Some(
            state
                .store
                .enqueue_report_mail(t, &channel, &event, now + MAIL_WAIT_MS, now)?,
        )
    } else {
        None
    };
    let made = gather(&state.store, t, period, lang, now).and_then(|data| {
        generate(
            &state.config.data_dir,
            &state.config.report_chromium,
            &data,
            requested_by,
            now,
            started.elapsed().as_millis() as u64,
            queued.as_ref().map(|d| d.id.clone()),
        )
    });
    if let Some(d) = &queued {
        match &made {
            Ok(_) => {
                state.store.delivery_due_now(t, d, now_ms())?;
            }
            // No report, no mail: the delivery would only fail.
            Err(_) => {
                let _ = state.store.delivered(&[(t.clone(), d.clone())]);
            }
        }
    }
    made
}

/// A kept report's metadata and numbers.
pub fn record(data_dir: &Path, t: &TenantId, id: &str) -> Option<(ReportMeta, ReportData)> {
    if !valid_id(id) {
        return None;
    }
    let text = std::fs::read_to_string(dir(data_dir, t).join(format!("{id}.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        serde_json::from_value(v.get("meta")?.clone()).ok()?,
        serde_json::from_value(v.get("data")?.clone()).ok()?,
    ))
}

trait ParseTenant {
    fn parse_tenant(&self) -> ApiResult<TenantId>;
}

impl ParseTenant for String {
    fn parse_tenant(&self) -> ApiResult<TenantId> {
        TenantId::new(self).map_err(|e| ApiError::internal(e.to_string()))
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::internal(format!("report files in {}: {e}", path.display()))
}

/// Written whole or not at all: a crash mid-write leaves no half report listed.
fn write_atomic(path: &Path, bytes: &[u8]) -> ApiResult<()> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Prints the page with headless Chromium; the number of PDF bytes, or why not.
fn print_pdf(chromium: &Path, html: &Path, pdf: &Path) -> Result<u64, String> {
    if !chromium.exists() {
        return Err(format!(
            "{} not found: install Debian's chromium (scripts/deps does) or set report_chromium",
            chromium.display()
        ));
    }
    let profile = tempfile::tempdir().map_err(|e| format!("browser profile: {e}"))?;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    let deadline = Instant::now() + PRINT_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "chromium did not finish printing within {} s",
                    PRINT_DEADLINE.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for chromium: {e}")),
        }
    };
    let len = std::fs::metadata(pdf).map(|m| m.len()).unwrap_or(0);
    if !status.success() || len == 0 {
        return Err(format!("chromium printed no PDF ({status})"));
    }
    Ok(len)
}

/// Keeps the newest reports; ids sort by generation time.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_owned)
        })
        .collect();
    if ids.len() <= KEEP_PER_TENANT {
        return;
    }
    ids.sort();
    for id in &ids[..ids.len() - KEEP_PER_TENANT] {
        for ext in ["json", "html", "pdf"] {
            let _ = std::fs::remove_file(dir.join(format!("{id}.{ext}")));
        }
    }
}

/// A report id as the API takes it: what `generate` makes, nothing that walks paths.
pub fn valid_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with('r')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The tenant's reports, newest first.
pub fn list(data_dir: &Path, t: &TenantId) -> Vec<ReportMeta> {
    let Ok(entries) = std::fs::read_dir(dir(data_dir, t)) else {
        return Vec::new();
    };
    let mut out: Vec<ReportMeta> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
        .filter_map(|e| read_meta(&e.path()))
        .collect();
    out.sort_by(|a, b| b.id.cmp(&a.id));
    out
}

fn read_meta(path: &Path) -> Option<ReportMeta> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(v.get("meta")?.clone()).ok()
}

/// One report's metadata, or 404.
pub fn meta(data_dir: &Path, t: &TenantId, id: &str) -> ApiResult<ReportMeta> {
    let missing =
        || ApiError::not_found(format!("report {id} not found: GET …/reports lists them"));
    if !valid_id(id) {
        return Err(missing());
    }
    read_meta(&dir(data_dir, t).join(format!("{id}.json"))).ok_or_else(missing)
}

/// One rendered file of a report.
pub fn file(data_dir: &Path, t: &TenantId, id: &str, ext: &str) -> ApiResult<Vec<u8>> {
    let m = meta(data_dir, t, id)?;
    if ext == "pdf" && m.pdf_bytes.is_none() {
        return Err(ApiError::not_found(format!(
            "report {id} has no PDF: {}",
            m.pdf_error.unwrap_or_default()
        )));
    }
    let path = dir(data_dir, t).join(format!("{id}.{ext}"));
    std::fs::read(&path).map_err(|e| io_err(&path, e))
}

/// Who made a scheduled report, in its `requested_by`.
pub const SCHEDULED: &str = "schedule";

static SCHEDULED_RUNNING: AtomicBool = AtomicBool::new(false);

/// Makes the scheduled reports that are due: a tenant's daily (weekly, monthly) report
/// is due when its last scheduled one of that period is a day (7, 30 days) old, or there
/// is none; with a time of day (`at`, `tz`), at that time on the tenant's clock
/// (`ReportSchedule::due`). Runs beside the scheduler, never twice at once: printing takes seconds.
pub fn run_scheduled(state: &SharedState) {
    if SCHEDULED_RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        if let Ok(tenants) = state.store.tenants() {
            for t in tenants {
                if let Err(e) = scheduled_for(&state, &t.id) {
                    eprintln!("scheduled reports of {}: {}", t.id, e.detail);
                }
            }
        }
        SCHEDULED_RUNNING.store(false, Ordering::SeqCst);
    });
}

fn scheduled_for(state: &SharedState, t: &TenantId) -> ApiResult<()> {
    let schedule = state.store.report_schedule(t)?;
    let lang = if schedule.lang == "zh-CN" {
        Lang::ZhCn
    } else {
        Lang::En
    };
    let wanted = [
        (schedule.daily, Period::Daily),
        (schedule.weekly, Period::Weekly),
        (schedule.monthly, Period::Monthly),
    ];
    if !wanted.iter().any(|(on, _)| *on) {
        return Ok(());
    }
    let kept = list(&state.config.data_dir, t);
    for (on, period) in wanted {
        let now = now_ms();
        let last = kept
            .iter()
            .filter(|m| m.requested_by == SCHEDULED && m.period == period)
            .map(|m| m.generated)
            .max();
        if on && schedule.due(period.days(), last, now) {
            make(state, t, period, lang, SCHEDULED, schedule.mails())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_walk_paths_are_refused() {
        assert!(valid_id("r1796660335000-weekly-zh"));
        for bad in ["../x", "r1/../../etc", "R1", "", "r1.json", "r%2e%2e"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
