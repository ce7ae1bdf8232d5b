//! An application that migrates its database when it starts, with the
//! migrations compiled into its binary, and refuses to start when the
//! migration ledger does not verify (someone edited its history).
//!
//! ```sh
//! DATABASE_URL=postgres://app@localhost/app cargo run --example embed
//! cargo run --example embed        # no DATABASE_URL: a throwaway PostgreSQL
//! ```

use std::time::Duration;

use shiftlog::{Embedded, Migrator, embed};

/// examples/embed/migrations/, compiled in: no database at build time.
static MIGRATIONS: Embedded = embed!("examples/embed/migrations");

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The database: $DATABASE_URL, else a throwaway server for the demo.
    let (url, _server) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = tokio::task::spawn_blocking(|| {
                shiftlog::scratch::ScratchServer::start(&Default::default())
            })
            .await??;
            (server.url(), Some(server))
        }
    };

    let migrator = Migrator::from_embedded(&MIGRATIONS)?
        // Several instances starting at once: the others wait for the first.
        .lease_wait(Duration::from_secs(60))
        .actor("embed-example");
    let db = migrator.connect(&url).await?;

    let verified = migrator.verify_ledger(&db).await?;
    if !verified.is_ok() {
        eprintln!("refusing to start: the migration ledger does not verify:");
        for problem in &verified.problems {
            eprintln!("  {problem:?}");
        }
        std::process::exit(1);
    }
    let report = migrator.apply(&db).await?;
    println!(
        "ledger verified ({} events); {} migration(s) applied",
        verified.events,
        report.applied.len()
    );

    // The application runs on the migrated schema.
    db.client
        .execute("insert into notes (body) values ($1)", &[&"started"])
        .await?;
    let notes: i64 = db
        .client
        .query_one("select count(*) from notes", &[])
        .await?
        .get(0);
    println!("{notes} note(s); status: {} unit(s) applied", {
        let status = migrator.status(&db).await?;
        status.counts.get("applied").copied().unwrap_or(0)
    });
    Ok(())
}
