//! hob: a hybrid order book exchange engine. Orders match off-chain; trades settle on an EVM
//! chain; every state change is an append-only event. See ARCHITECTURE.md for the code map.

pub mod actors;
pub mod api;
pub mod audit;
pub mod chain;
pub mod client;
pub mod config;
pub mod domain;
pub mod engine;
pub mod events;
pub mod fuzzing;
pub mod loadgen;
pub mod match_tool;
pub mod process;
pub mod projections;
pub mod queue;
pub mod settlement;
pub mod sim;
pub mod store;
pub mod telemetry;
