//! Which operations reports a tenant receives on schedule. Kept beside the tenant's
//! policy settings (same record family, its own key): both are the tenant's settings.

use crate::error::StoreError;
use crate::keys::{self, Rec, TenantId};
use crate::store::Store;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, StoreError>;

/// Languages a report can be written in.
pub const REPORT_LANGS: &[&str] = &["en", "zh-CN"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportSchedule {
    /// A report of the last day, made once a day.
    #[serde(default)]
    pub daily: bool,
    /// Of the last 7 days, made once a week.
    #[serde(default)]
    pub weekly: bool,
    /// Of the last 30 days, made every 30 days.
    #[serde(default)]
    pub monthly: bool,
    /// `en` or `zh-CN`.
    #[serde(default = "default_lang")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(en|zh-CN)$"))]
    pub lang: String,
}

fn default_lang() -> String {
    "en".to_owned()
}

impl Default for ReportSchedule {
    fn default() -> Self {
        ReportSchedule {
            daily: false,
            weekly: false,
            monthly: false,
            lang: default_lang(),
        }
    }
}

impl Store {
    pub fn report_schedule(&self, tenant: &TenantId) -> Result<ReportSchedule> {
        self.require_tenant(tenant)?;
        Ok(self
            .get_json(&keys::key(Rec::Settings, tenant, b"reports"))?
            .unwrap_or_default())
    }

    pub fn set_report_schedule(&self, tenant: &TenantId, s: &ReportSchedule) -> Result<()> {
        if !REPORT_LANGS.contains(&s.lang.as_str()) {
            return Err(StoreError::Invalid(format!(
                "lang {:?}: use one of {}",
                s.lang,
                REPORT_LANGS.join(", ")
            )));
        }
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(keys::key(Rec::Settings, tenant, b"reports"), s)?;
        tx.commit()
    }
}
