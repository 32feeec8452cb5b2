//! The incident store: one DynamoDB table, written only under conditions.
//!
//! Single-table layout (partition key `pk`, sort key `sk`, both strings):
//!
//! | item          | `pk`                 | `sk`             | what it is for                                  |
//! |---------------|----------------------|------------------|-------------------------------------------------|
//! | incident      | `incident#<id>`      | `incident`       | the record: key attributes plus `doc` (JSON)    |
//! | dedupe lock   | `dedupe#<key>`       | `lock`           | which incident is open for a dedupe key         |
//! | signal marker | `signal#<fp>`        | `seen`           | this delivery was counted (TTL'd)               |
//! | resource link | `resource#<id>`      | `incident#<id>`  | open incidents on a resource                    |
//!
//! Incident items also carry `status` and `opened_at`, which the sparse `by-status` index
//! lists them by. Every write of an incident is conditioned on the `version` and `status` it
//! was read at; opening is a transaction that also takes the dedupe lock, and a repeat is a
//! transaction that also puts the signal's marker, so duplicate and concurrent deliveries make
//! one change at most. `expires_at` is the table's TTL attribute, set only on resolved
//! incidents (after the retention period) and on signal markers.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Delete, Put, TransactWriteItem};
use chrono::{DateTime, Utc};

use crate::aws::AwsError;
use crate::incident::{Incident, Status};

/// The index that lists incidents by status, newest first.
pub const STATUS_INDEX: &str = "by-status";
/// The table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How many times a read-modify-write is retried after losing a race before giving up. Each
/// loss means another delivery made progress, so this bounds work, not correctness.
pub const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("incident record {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("incident {id} kept changing under us ({attempts} attempts); the platform will retry")]
    Contended { id: String, attempts: usize },
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn transient(&self) -> bool {
        match self {
            StoreError::Aws(e) => e.transient,
            StoreError::Contended { .. } => true,
            StoreError::Corrupt { .. } => false,
        }
    }
}

/// What happened to an attempt to open an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// The incident is new.
    New,
    /// This exact delivery was already counted.
    Duplicate,
    /// Another incident holds the dedupe key; the caller re-reads it and repeats into it.
    KeyTaken,
}

/// What happened to a repeat signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Repeated {
    Counted,
    Duplicate,
    /// The incident changed since it was read; read it again.
    Stale,
}

/// The answer of an [`Store::update`] closure.
pub enum Change<T> {
    /// Write the incident as the closure left it, then return `T`.
    Write(T),
    /// Nothing to write; return `T`.
    Keep(T),
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn incident_pk(id: &str) -> String {
    format!("incident#{id}")
}

fn dedupe_pk(key: &str) -> String {
    format!("dedupe#{key}")
}

fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// Both "item already there" and "version moved on" surface as this code.
fn condition_failed(reasons: &[CancellationReason]) -> Vec<bool> {
    reasons
        .iter()
        .map(|r| r.code() == Some("ConditionalCheckFailed"))
        .collect()
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Store {
        Store {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn incident_item(
        &self,
        incident: &Incident,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let doc = serde_json::to_string(incident).map_err(|e| StoreError::Corrupt {
            id: incident.id.clone(),
            reason: e.to_string(),
        })?;
        let mut item = key(incident_pk(&incident.id), "incident");
        item.insert("id".into(), s(&incident.id));
        item.insert("status".into(), s(incident.status.as_str()));
        item.insert("version".into(), n(incident.version));
        item.insert("dedupe_key".into(), s(&incident.dedupe_key));
        item.insert("severity".into(), s(incident.severity.as_str()));
        item.insert(
            "playbook".into(),
            s(incident.playbook.as_deref().unwrap_or("-")),
        );
        item.insert("opened_at".into(), s(incident.opened_at.to_rfc3339()));
        item.insert("doc".into(), s(doc));
        if let Some(exp) = incident.expires_at {
            item.insert(TTL_ATTRIBUTE.into(), n(exp));
        }
        Ok(item)
    }

    fn put_incident(
        &self,
        incident: &Incident,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.incident_item(incident)?))
            .condition_expression(condition);
        if !values.is_empty() {
            put = put.set_expression_attribute_values(Some(values));
        }
        if condition.contains("#status") {
            put = put.expression_attribute_names("#status", "status");
        }
        put.build().map_err(|e| corrupt(&incident.id, e))
    }

    /// The condition for replacing `incident` as it was read: same version, same status.
    fn as_read(
        prev_version: u64,
        prev_status: Status,
    ) -> (&'static str, HashMap<String, AttributeValue>) {
        (
            "version = :v AND #status = :s",
            HashMap::from([
                (":v".to_owned(), n(prev_version)),
                (":s".to_owned(), s(prev_status.as_str())),
            ]),
        )
    }

    fn marker(
        &self,
        fingerprint: &str,
        incident_id: &str,
        expires_at: i64,
    ) -> Result<Put, StoreError> {
        let mut item = key(format!("signal#{fingerprint}"), "seen");
        item.insert("incident_id".into(), s(incident_id));
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at));
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| corrupt(incident_id, e))
    }

    /// Opens `incident` for its dedupe key and counts the delivery `fingerprint`, all or
    /// nothing. `replaces` names an open incident whose dedupe window has passed: the key moves
    /// to the new incident only if that one still holds it.
    pub async fn open(
        &self,
        incident: &Incident,
        fingerprint: &str,
        marker_expires_at: i64,
        replaces: Option<&str>,
    ) -> Result<Opened, StoreError> {
        let mut lock = key(dedupe_pk(&incident.dedupe_key), "lock");
        lock.insert("incident_id".into(), s(&incident.id));
        lock.insert("opened_at".into(), s(incident.opened_at.to_rfc3339()));
        let lock = Put::builder().table_name(&self.table).set_item(Some(lock));
        let lock = match replaces {
            None => lock.condition_expression("attribute_not_exists(pk)"),
            Some(old) => lock
                .condition_expression("attribute_not_exists(pk) OR incident_id = :old")
                .expression_attribute_values(":old", s(old)),
        }
        .build()
        .map_err(|e| corrupt(&incident.id, e))?;
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.marker(fingerprint, &incident.id, marker_expires_at)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.put_incident(incident, "attribute_not_exists(pk)", HashMap::new())?)
                .build(),
            TransactWriteItem::builder().put(lock).build(),
        ];
        for r in &incident.resources {
            let mut link = key(format!("resource#{}", r.id), &incident_pk(&incident.id));
            link.insert("incident_id".into(), s(&incident.id));
            link.insert("resource_kind".into(), s(r.kind.as_str()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(link))
                .build()
                .map_err(|e| corrupt(&incident.id, e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        // DynamoDB caps a transaction at 100 items; resources past that are not linked.
        items.truncate(100);
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Opened::New),
            Err(err) => {
                let failed = err
                    .as_service_error()
                    .and_then(|e| match e {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                            Some(condition_failed(c.cancellation_reasons()))
                        }
                        _ => None,
                    });
                match failed.as_deref() {
                    Some([true, ..]) => Ok(Opened::Duplicate),
                    Some([_, _, true, ..]) | Some([_, true, ..]) => Ok(Opened::KeyTaken),
                    _ => Err(AwsError::from_sdk("dynamodb", "TransactWriteItems", &err).into()),
                }
            }
        }
    }

    /// Writes `incident` (already changed by a repeat) and counts the delivery, all or nothing.
    pub async fn repeat(
        &self,
        incident: &Incident,
        prev: (u64, Status),
        fingerprint: &str,
        marker_expires_at: i64,
    ) -> Result<Repeated, StoreError> {
        let (cond, values) = Self::as_read(prev.0, prev.1);
        let items = vec![
            TransactWriteItem::builder()
                .put(self.marker(fingerprint, &incident.id, marker_expires_at)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.put_incident(incident, cond, values)?)
                .build(),
        ];
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Repeated::Counted),
            Err(err) => {
                let failed = err.as_service_error().and_then(|e| match e {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(condition_failed(c.cancellation_reasons()))
                    }
                    _ => None,
                });
                match failed.as_deref() {
                    Some([true, ..]) => Ok(Repeated::Duplicate),
                    Some([_, true, ..]) => Ok(Repeated::Stale),
                    _ => Err(AwsError::from_sdk("dynamodb", "TransactWriteItems", &err).into()),
                }
            }
        }
    }

    /// Whether this delivery was already counted into some incident.
    pub async fn seen(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("signal#{fingerprint}"), "seen")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "GetItem", &e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("incident_id"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// The incident with this id, read consistently.
    pub async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(incident_pk(id), "incident")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "GetItem", &e))?;
        out.item().map(|item| decode(id, item)).transpose()
    }

    /// The id of the open incident holding `dedupe_key`, if any.
    pub async fn open_for_key(&self, dedupe_key: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(dedupe_pk(dedupe_key), "lock")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "GetItem", &e))?;
        Ok(out
            .item()
            .and_then(|i| i.get("incident_id"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    /// Replaces `incident` if it is still at `prev` (version, status). `false`: it was not.
    pub async fn save(&self, incident: &Incident, prev: (u64, Status)) -> Result<bool, StoreError> {
        let (cond, values) = Self::as_read(prev.0, prev.1);
        let put = self.put_incident(incident, cond, values)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(put.item().clone().into())
            .condition_expression(cond)
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(AwsError::from_sdk("dynamodb", "PutItem", &err).into()),
        }
    }

    /// Resolves: writes `incident` (already resolved) if still at `prev`, releases its dedupe
    /// key (only if this incident holds it) and drops its resource links, all or nothing.
    pub async fn close(
        &self,
        incident: &Incident,
        prev: (u64, Status),
    ) -> Result<bool, StoreError> {
        let (cond, values) = Self::as_read(prev.0, prev.1);
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.put_incident(incident, cond, values)?)
                .build(),
        ];
        // Under a condition that fails harmlessly: a later incident may hold the key by now.
        let unlock = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(dedupe_pk(&incident.dedupe_key), "lock")))
            .condition_expression("attribute_not_exists(pk) OR incident_id = :id")
            .expression_attribute_values(":id", s(&incident.id))
            .build()
            .map_err(|e| corrupt(&incident.id, e))?;
        items.push(TransactWriteItem::builder().delete(unlock).build());
        for r in incident.resources.iter().take(98) {
            let del = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(
                    format!("resource#{}", r.id),
                    &incident_pk(&incident.id),
                )))
                .build()
                .map_err(|e| corrupt(&incident.id, e))?;
            items.push(TransactWriteItem::builder().delete(del).build());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => {
                let stale = err.as_service_error().is_some_and(|e| match e {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        condition_failed(c.cancellation_reasons()).first() == Some(&true)
                    }
                    _ => false,
                });
                if stale {
                    Ok(false)
                } else {
                    Err(AwsError::from_sdk("dynamodb", "TransactWriteItems", &err).into())
                }
            }
        }
    }

    /// Reads, changes and conditionally writes the incident `id`, again on a lost race.
    /// `None` when there is no such incident.
    pub async fn update<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Incident) -> Change<T>,
    ) -> Result<Option<(Incident, T)>, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(mut incident) = self.get(id).await? else {
                return Ok(None);
            };
            let prev = (incident.version, incident.status);
            match change(&mut incident) {
                Change::Keep(t) => return Ok(Some((incident, t))),
                Change::Write(t) => {
                    incident.version = prev.0 + 1;
                    if self.save(&incident, prev).await? {
                        return Ok(Some((incident, t)));
                    }
                }
            }
        }
        Err(StoreError::Contended {
            id: id.to_owned(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Open incidents that name `resource_id`, by id.
    pub async fn open_on_resource(&self, resource_id: &str) -> Result<Vec<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("resource#{resource_id}")))
            .limit(50)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "Query", &e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| i.get("incident_id").and_then(|v| v.as_s().ok()).cloned())
            .collect())
    }

    /// Incidents with `status`, newest first, up to `limit`.
    pub async fn list(&self, status: Status, limit: i32) -> Result<Vec<Incident>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATUS_INDEX)
            .key_condition_expression("#status = :s")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("dynamodb", "Query", &e))?;
        out.items()
            .iter()
            .map(|item| {
                let id = item
                    .get("id")
                    .and_then(|v| v.as_s().ok())
                    .map_or("?", String::as_str);
                decode(id, item)
            })
            .collect()
    }
}

fn decode(id: &str, item: &HashMap<String, AttributeValue>) -> Result<Incident, StoreError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt {
            id: id.to_owned(),
            reason: "no doc attribute".to_owned(),
        })?;
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        reason: e.to_string(),
    }
}

/// When a signal marker may expire: the dedupe window after the signal plus a day, so a late
/// redelivery inside the window is still recognised.
pub fn marker_expiry(observed_at: DateTime<Utc>, window_s: u64) -> i64 {
    let window = i64::try_from(window_s).unwrap_or(i64::MAX / 2);
    observed_at
        .timestamp()
        .saturating_add(window)
        .saturating_add(86_400)
}
