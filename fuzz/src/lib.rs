//! Checks shared by the fuzz targets and by the corpus replay tests.

mod auth_checks;
mod client_checks;
mod milter_checks;
mod proto_checks;
mod server_checks;

pub use auth_checks::check_auth;
pub use client_checks::check_client;
pub use milter_checks::check_milter;
pub use proto_checks::{check_commands, check_data, check_replies};
pub use server_checks::check_server;
