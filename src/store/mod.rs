//! Adapters for the `events::EventStore` port.

pub mod sqlite;

pub use sqlite::{SqliteConfig, SqliteEventStore, WriterStats};
