//! When a tenant's scans may send: windows (a cron start, a duration, an IANA time zone),
//! blackouts of the same shape, and a cap on the packets per second of all its scans.
//!
//! Only the records live here; what they mean in time (parsing the cron expressions,
//! walking the zones) is the service's, which checks them before they are stored.

use crate::error::Result;
use crate::keys::{self, Rec, TenantId};
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// A recurring span of time: it opens at each start the cron expression names (5 fields,
/// minute resolution, read in `tz`) and stays open `duration_mins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    /// Minute hour day-of-month month day-of-week, e.g. `0 1 * * *` (01:00 every day).
    #[cfg_attr(feature = "openapi", schema(example = "0 1 * * *", format = "cron-5"))]
    pub cron: String,
    /// Minutes it stays open from each start: 1 to 366 days.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 527_040))]
    pub duration_mins: u32,
    /// IANA time zone the cron expression is read in, e.g. `Asia/Shanghai`, `UTC`.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "Asia/Shanghai", format = "iana-time-zone")
    )]
    pub tz: String,
}

/// A tenant's scan windows, blackouts and rate cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantWindows {
    /// Scans send only inside one of these; none: at any time.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Never inside one of these, whatever the windows say.
    #[serde(default)]
    pub blackouts: Vec<Window>,
    /// Packets per second of all the tenant's scans together; none: each scan's own rate.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_rate: Option<u64>,
}

impl TenantWindows {
    /// Whether anything restricts the tenant's scans.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.blackouts.is_empty() && self.max_rate.is_none()
    }
}

pub(crate) fn windows_key(tenant: &TenantId) -> Vec<u8> {
    keys::key(Rec::Settings, tenant, b"windows")
}

impl Store {
    pub fn tenant_windows(&self, tenant: &TenantId) -> Result<TenantWindows> {
        self.require_tenant(tenant)?;
        Ok(self.get_json(&windows_key(tenant))?.unwrap_or_default())
    }

    /// Replaces the tenant's windows; the caller checked that they parse and open.
    pub fn set_tenant_windows(&self, tenant: &TenantId, w: &TenantWindows) -> Result<()> {
        let _w = self.write_lock();
        self.require_tenant(tenant)?;
        let mut tx = self.tx();
        tx.put_json(windows_key(tenant), w)?;
        tx.commit()
    }
}
