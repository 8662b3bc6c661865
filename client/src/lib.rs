//! A client of the Aperture API generated from `api/openapi.json` by progenitor at build
//! time: proof that the description is usable, and a typed client for Rust integrators.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut headers = reqwest::header::HeaderMap::new();
//! headers.insert("authorization", "Bearer apt_…".parse()?);
//! let http = reqwest::Client::builder().default_headers(headers).build()?;
//! let api = aperture_client::Client::new_with_client("http://127.0.0.1:8477", http);
//! let page = api
//!     .list_assets(&"acme".parse()?, None, None, None, None, None, Some(&"service".parse()?),
//!         None, None, std::num::NonZeroU32::new(50), None, None, None, Some(22), None, None, None,
//!         None, None, None, None)
//!     .await?;
//! println!("{} services on port 22, next page: {:?}", page.items.len(), page.next);
//! # Ok(()) }
//! ```

#[allow(clippy::all, clippy::pedantic, missing_docs, unused, warnings)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/client.rs"));
}

pub use chrono;
pub use generated::*;
pub use reqwest;
