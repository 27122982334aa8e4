//! Adapters for the `events::EventStore` port.

pub mod sqlite;
pub mod sqlite_codec;
pub mod sqlite_views;

pub use sqlite::{SqliteConfig, SqliteEventStore, WriterStats};
