//! `hugbucket-bench`: warp-style S3 and FTP load generator (see `bench/README.md` and
//! `hugbucket-bench --help`). The implementation lives in `hugbucket_bench::load`.

fn main() {
    std::process::exit(hugbucket_bench::load::cli::main());
}
