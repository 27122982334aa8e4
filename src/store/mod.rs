//! Adapters for the `events::EventStore` port.

pub mod any;
pub mod memory;
pub mod mongo;
pub mod mongo_codec;
pub mod mongo_tx;
pub mod mongo_views;
pub mod sqlite;
pub mod sqlite_codec;
pub mod sqlite_views;

pub use memory::MemoryEventStore;
pub use mongo::MongoEventStore;
pub use mongo_views::MongoViewStore;
pub use sqlite::{SqliteConfig, SqliteEventStore, WriterStats};
