//! `incidents.related`: other open incidents on the same resource, from the store's resource
//! links, so a responder sees that the instance is already in two other incidents.

use firebreak_shared::store::Store;
use serde_json::json;

use super::{Failure, Found};

/// `incidents.related` for one resource id; `this` (the incident being enriched) is left out.
pub async fn open_incidents(store: &Store, resource: &str, this: &str) -> Found {
    let ids = store
        .open_on_resource(resource)
        .await
        .map_err(|e| Failure::message(e.to_string()))?;
    let others: Vec<String> = ids.into_iter().filter(|id| id != this).collect();
    Ok(json!({ "incidents": others }))
}
