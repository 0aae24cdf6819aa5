//! The `hugbucket` binary: see [`hugbucket::cli`].

fn main() -> std::process::ExitCode {
    hugbucket::cli::main()
}
