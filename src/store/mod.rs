//! Adapters for the `events::EventStore` port.

pub mod memory;
pub mod sqlite;
pub mod sqlite_codec;
pub mod sqlite_views;

pub use memory::MemoryEventStore;
pub use sqlite::{SqliteConfig, SqliteEventStore, WriterStats};
