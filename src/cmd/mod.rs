//! One module per subcommand.

pub mod broker;
pub mod check;
pub mod cluster;
pub mod conformance;
pub mod guarantees;
pub mod metadata_quorum;
pub mod nemesis;
pub mod topics;
pub mod traces;

/// Runs an admin command's future on a current-thread runtime and prints its output: what it
/// returns on success (exit 0), `Error: …` on failure (exit 1), as Kafka's tools do.
pub fn run_admin(
    name: &str,
    command: impl std::future::Future<Output = anyhow::Result<String>>,
) -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("osprey {name}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(command) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
