//! The library every Firebreak stage shares.
//!
//! - [`signal`] turns the raw events that start or end an incident (CloudWatch alarms, GuardDuty
//!   and Security Hub findings, in every envelope AWS delivers them in) into one normalized
//!   [`signal::Signal`] model.
//! - [`playbook`] loads and validates the response-as-code playbooks and matches signals to them.
//! - [`catalog`] names the remediation actions and enrichers a playbook may use.
//! - [`config`] reads what every stage needs from its environment at init.
//! - [`triage`] joins the two: what Firebreak would do with a signal, without doing it.
//! - [`incident`] is the incident record and its state machine; [`store`] keeps it in DynamoDB
//!   under conditional writes; [`lifecycle`] is the versioned event contract on the bus.
//! - [`aws`] builds the SDK configuration once at init and reads SDK errors.

pub mod aws;
pub mod catalog;
pub mod config;
pub mod incident;
pub mod lifecycle;
pub mod playbook;
pub mod signal;
pub mod store;
pub mod triage;
