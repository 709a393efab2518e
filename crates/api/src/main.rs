//! The `gymapi` binary.

use std::process::ExitCode;

#[actix_web::main]
async fn main() -> ExitCode {
    api::cli::run().await
}
