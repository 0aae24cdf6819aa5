//! The crate layering of ARCHITECTURE.md ("Crate dependency rules"), checked against
//! `cargo metadata`: every dependency edge between workspace crates must be allowed below.
//! A new workspace crate fails the test until it is given a row.

use std::collections::BTreeMap;
use std::process::Command;

/// Libraries a test may use as a fixture: the embedded hub stands in for huggingface.co.
const TEST_FIXTURES: &[&str] = &["hugbucket-hub"];

/// Every workspace library (what the binary and the benches may use).
const LIBRARIES: &[&str] = &[
    "hugbucket-storage",
    "hugbucket-tls",
    "hugbucket-engine",
    "hugbucket-cache",
    "hugbucket-upstream",
    "hugbucket-hub",
    "hugbucket-core",
    "hugbucket-s3",
    "hugbucket-ftp",
];

/// A crate and the workspace crates it may depend on: normal (and build) dependencies,
/// then what dev-dependencies may add.
struct Rule {
    krate: &'static str,
    deps: &'static [&'static str],
    dev_deps: &'static [&'static str],
}

const RULES: &[Rule] = &[
    // Below everything: opening the local sled databases.
    Rule {
        krate: "hugbucket-storage",
        deps: &[],
        dev_deps: &[],
    },
    // TLS certificates for HTTPS and FTPS: rustls only.
    Rule {
        krate: "hugbucket-tls",
        deps: &[],
        dev_deps: &[],
    },
    // Pure formats: no workspace crate at all.
    Rule {
        krate: "hugbucket-engine",
        deps: &[],
        dev_deps: &[],
    },
    Rule {
        krate: "hugbucket-cache",
        deps: &["hugbucket-engine", "hugbucket-storage"],
        dev_deps: &[],
    },
    Rule {
        krate: "hugbucket-upstream",
        deps: &["hugbucket-engine"],
        dev_deps: TEST_FIXTURES,
    },
    // The hub is an independent server implementation: the engine and its own storage.
    Rule {
        krate: "hugbucket-hub",
        deps: &["hugbucket-engine", "hugbucket-storage"],
        dev_deps: &[],
    },
    Rule {
        krate: "hugbucket-core",
        deps: &[
            "hugbucket-upstream",
            "hugbucket-cache",
            "hugbucket-engine",
            "hugbucket-storage",
        ],
        dev_deps: TEST_FIXTURES,
    },
    // Front-ends speak only to the core, never to upstream.
    Rule {
        krate: "hugbucket-s3",
        deps: &["hugbucket-core", "hugbucket-engine", "hugbucket-tls"],
        dev_deps: TEST_FIXTURES,
    },
    Rule {
        krate: "hugbucket-ftp",
        deps: &["hugbucket-core", "hugbucket-tls"],
        dev_deps: TEST_FIXTURES,
    },
    // The binary wires the layers together; the benches may measure any library.
    Rule {
        krate: "hugbucket",
        deps: LIBRARIES,
        dev_deps: &[],
    },
    // The benches measure anything, the binary's library included (the load generator
    // takes byte sizes as the gateway's config does).
    Rule {
        krate: "hugbucket-bench",
        deps: &[
            "hugbucket",
            "hugbucket-storage",
            "hugbucket-tls",
            "hugbucket-engine",
            "hugbucket-cache",
            "hugbucket-upstream",
            "hugbucket-hub",
            "hugbucket-core",
            "hugbucket-s3",
            "hugbucket-ftp",
        ],
        dev_deps: &[],
    },
];

/// `(crate, dependency, kind)` for every edge between workspace members.
fn workspace_edges() -> Vec<(String, String, String)> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = Vec::new();
    for p in packages {
        let name = p["name"].as_str().expect("package name");
        for d in p["dependencies"].as_array().expect("dependencies") {
            let dep = d["name"].as_str().expect("dependency name");
            if members.contains(&dep) {
                let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                edges.push((name.to_string(), dep.to_string(), kind));
            }
        }
    }
    edges
}

/// The edges that break a rule, as readable lines.
fn violations(edges: &[(String, String, String)]) -> Vec<String> {
    let rules: BTreeMap<&str, &Rule> = RULES.iter().map(|r| (r.krate, r)).collect();
    let mut bad = Vec::new();
    for (krate, dep, kind) in edges {
        let Some(rule) = rules.get(krate.as_str()) else {
            bad.push(format!("{krate}: workspace crate without a layer rule"));
            continue;
        };
        let allowed = rule.deps.contains(&dep.as_str())
            || (kind == "dev" && rule.dev_deps.contains(&dep.as_str()));
        if !allowed {
            bad.push(format!("{krate} -> {dep} ({kind} dependency) is forbidden"));
        }
    }
    bad
}

#[test]
fn workspace_dependencies_follow_the_layers() {
    let edges = workspace_edges();
    // The metadata really lists the layering (guards against reading an empty workspace).
    assert!(
        edges
            .iter()
            .any(|(k, d, _)| k == "hugbucket-core" && d == "hugbucket-upstream"),
        "{edges:?}"
    );
    let bad = violations(&edges);
    assert!(bad.is_empty(), "layer rules broken:\n{}", bad.join("\n"));
}

#[test]
fn every_rule_names_a_workspace_crate() {
    let edges = workspace_edges();
    for rule in RULES {
        assert!(
            edges
                .iter()
                .any(|(k, d, _)| k == rule.krate || d == rule.krate),
            "{} has a rule but is not in the workspace",
            rule.krate
        );
    }
}

#[test]
fn the_checker_rejects_forbidden_edges() {
    let edge = |k: &str, d: &str, kind: &str| (k.to_string(), d.to_string(), kind.to_string());
    let forbidden = [
        edge("hugbucket-s3", "hugbucket-upstream", "normal"),
        edge("hugbucket-s3", "hugbucket-upstream", "dev"),
        edge("hugbucket-ftp", "hugbucket-upstream", "dev"),
        edge("hugbucket-hub", "hugbucket-cache", "normal"),
        edge("hugbucket-engine", "hugbucket-storage", "normal"),
        edge("hugbucket-core", "hugbucket-hub", "normal"),
        edge("hugbucket-core", "hugbucket-s3", "normal"),
        edge("hugbucket-cache", "hugbucket-core", "normal"),
        edge("hugbucket-s3", "hugbucket", "normal"),
        edge("hugbucket", "hugbucket-bench", "dev"),
        edge("hugbucket-ftp", "hugbucket", "dev"),
        edge("hugbucket-new", "hugbucket-engine", "normal"),
    ];
    for e in forbidden {
        assert_eq!(violations(std::slice::from_ref(&e)).len(), 1, "{e:?}");
    }
    let allowed = [
        edge("hugbucket-core", "hugbucket-hub", "dev"),
        edge("hugbucket-s3", "hugbucket-core", "normal"),
        edge("hugbucket", "hugbucket-upstream", "normal"),
        edge("hugbucket-bench", "hugbucket", "normal"),
    ];
    assert!(violations(&allowed).is_empty());
}
