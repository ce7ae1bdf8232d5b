//! Paths in output are relative to the project root — as in the ledger and
//! `shiftlog.sum` — wherever the user stands and however `--dir` is
//! written; with `--dir` the summary says where the root is, and GitHub
//! annotations (resolved from the workspace) are joined to it.

use std::process::Command;

use serde_json::Value;

use crate::support::{self, Project};

/// A Supabase-style project in `supabase/` under a repository root, with a
/// lint finding in its second migration.
fn repo() -> (Project, std::path::PathBuf) {
    let repo = Project::new();
    repo.write(
        "supabase/migrations/20240101000000_init.sql",
        "create table public.todos (id bigint primary key, title text not null);\n",
    );
    repo.write(
        "supabase/migrations/20240102000000_idx.sql",
        "alter table public.todos add column done boolean not null default false;\n\
         create index todos_title on public.todos (title);\n",
    );
    let root = repo.path().join("supabase");
    (repo, root)
}

fn run(cwd: &std::path::Path, args: &[&str]) -> support::Output {
    let mut cmd: Command = support::shiftlog_cmd();
    cmd.current_dir(cwd).args(args);
    support::run(&mut cmd)
}

#[test]
fn paths_are_relative_to_the_project_root_wherever_you_stand() {
    let (repo, root) = repo();
    let sum = run(repo.path(), &["--dir", "supabase", "sum"]);
    assert_eq!(sum.code, 0, "{sum:?}");
    assert_eq!(
        sum.stdout,
        "wrote migrations/shiftlog.sum (2 migrations); paths relative to supabase/\n"
    );

    let finding = "migrations/20240102000000_idx.sql:2:1: error[require-concurrent-index]";
    // From the repository root with a relative --dir, with an absolute one,
    // and from inside the project: the same finding lines.
    let from_repo = run(repo.path(), &["--dir", "supabase", "check"]);
    let absolute = run(
        repo.path(),
        &["--dir", &root.display().to_string(), "check"],
    );
    let inside = run(&root, &["check"]);
    for out in [&from_repo, &absolute, &inside] {
        assert_eq!(out.code, 3, "{out:?}");
        assert!(
            out.stdout.lines().any(|l| l.starts_with(finding)),
            "{out:?}"
        );
    }
    let last = |o: &support::Output| o.stdout.lines().last().unwrap_or("").to_owned();
    assert!(
        last(&from_repo).ends_with("; paths relative to supabase/"),
        "{from_repo:?}"
    );
    assert_eq!(
        last(&absolute),
        last(&from_repo),
        "an absolute --dir under here"
    );
    assert!(!last(&inside).contains("paths relative"), "{inside:?}");
    let strip = |o: &support::Output| {
        o.stdout
            .lines()
            .filter(|l| !l.starts_with("check:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&from_repo), strip(&inside));

    let json = run(
        repo.path(),
        &["--dir", "supabase", "--format", "json", "check"],
    );
    let v: Value = serde_json::from_str(&json.stdout).expect("check JSON");
    let paths: Vec<&str> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(!paths.is_empty(), "{v}");
    assert!(
        paths.iter().all(|p| p.starts_with("migrations/")),
        "{paths:?}"
    );

    let lint = run(repo.path(), &["--dir", "supabase", "lint"]);
    assert!(
        lint.stdout
            .lines()
            .any(|l| l.starts_with("migrations/20240102000000_idx.sql:2:1:")),
        "{lint:?}"
    );
    assert!(
        last(&lint).ends_with("; paths relative to supabase/"),
        "{lint:?}"
    );

    // GitHub resolves annotations from the workspace: joined to --dir.
    let github = run(
        repo.path(),
        &["--dir", "supabase", "--format", "github", "check"],
    );
    assert!(
        github.stdout.contains(
            "::error file=supabase/migrations/20240102000000_idx.sql,line=2,col=1,title=require-concurrent-index::"
        ),
        "{github:?}"
    );
    // An absolute --dir from elsewhere: relative to $GITHUB_WORKSPACE.
    let mut cmd = support::shiftlog_cmd();
    cmd.current_dir("/")
        .env("GITHUB_WORKSPACE", repo.path())
        .args([
            "--dir",
            &root.display().to_string(),
            "--format",
            "github",
            "check",
        ]);
    let github_elsewhere = support::run(&mut cmd);
    assert!(
        github_elsewhere
            .stdout
            .contains("::error file=supabase/migrations/20240102000000_idx.sql,line=2,"),
        "{github_elsewhere:?}"
    );
    // The usual job: --dir left at `.`, run from the workspace.
    let mut cmd = support::shiftlog_cmd();
    cmd.current_dir(&root)
        .env("GITHUB_WORKSPACE", &root)
        .args(["--format", "github", "check"]);
    let github_here = support::run(&mut cmd);
    assert!(
        github_here
            .stdout
            .contains("::error file=migrations/20240102000000_idx.sql,line=2,"),
        "{github_here:?}"
    );
    let github_inside = run(&root, &["--format", "github", "check"]);
    assert!(
        github_inside
            .stdout
            .contains("::error file=migrations/20240102000000_idx.sql,line=2,"),
        "{github_inside:?}"
    );
}
