pub mod hob;
pub mod peers;
pub mod workload;
