//! A realistic migration history for `check --scratch`: the shapes of a
//! long-lived application's migrations, written to a directory.
//!
//! Three opening migrations (a trigger function, an audit table, a dashboard
//! view), then seven for each entity table `eNN`:
//!
//! - `a` create the table (a foreign key to the previous entity);
//! - `b` two indexes (one on an expression);
//! - `c` a column with a default and a check constraint, and a trigger;
//! - `d` a view over the table, and the dashboard view dropped and rebuilt
//!   over one more table (its down script rebuilds the previous one);
//! - `e` a column's type changed under a view that depends on it (the view
//!   dropped and recreated around the `ALTER`, as PostgreSQL requires);
//! - `f` a SQL function and a comment;
//! - `g` a data migration (rows inserted, then updated), undone by a delete.
//!
//! Entity 4 adds a view with a timestamp PostgreSQL folds when the view is
//! created (`'now'::timestamp - '1 mon'`), entity 7 a column whose default is
//! folded the same way: correct migrations a replay must not report.
//!
//! With `defects`, three down scripts are subtly wrong (see [`Planted`]):
//! the replay must find each, naming its migration.
//!
//! Shared by `benches/scratch.rs` and the integration tests
//! (`tests/it/replay_corpus.rs`, on a smaller history).

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

/// A down script written wrong on purpose, and what should report it.
#[derive(Debug, Clone)]
pub struct Planted {
    /// The migration's version (as in its file name).
    pub version: String,
    /// What is wrong.
    pub what: &'static str,
}

/// Migrations per entity table.
pub const PER_ENTITY: usize = 7;
/// Migrations before the first entity.
pub const OPENING: usize = 3;

/// The number of migrations for `entities` tables.
pub fn migrations(entities: usize) -> usize {
    OPENING + PER_ENTITY * entities
}

/// Writes `migrations/` under `root` (plain `NNNN_name.sql` and
/// `.down.sql` files, numeric versions); returns the planted defects.
/// Defects are planted in entities 10, 15 and 20 (if there are that many)
/// — `defect_at` moves them to other entities for small corpora.
pub fn write(root: &Path, entities: usize, defects: Option<[usize; 3]>) -> Vec<Planted> {
    let dir = root.join("migrations");
    std::fs::create_dir_all(&dir).expect("create migrations/");
    let mut w = Writer {
        dir: &dir,
        n: 0,
        planted: Vec::new(),
    };
    w.opening();
    for k in 0..entities {
        w.entity(k, defects);
    }
    w.planted
}

struct Writer<'a> {
    dir: &'a Path,
    n: usize,
    planted: Vec<Planted>,
}

fn t(k: usize) -> String {
    format!("e{k:02}")
}

/// The dashboard view over entities `0..k` (one count column each).
fn dashboard(k: usize) -> String {
    let mut cols = vec!["(SELECT count(*) FROM audit_log) AS audit_rows".to_owned()];
    for j in 0..k {
        cols.push(format!("(SELECT count(*) FROM {0}) AS {0}_rows", t(j)));
    }
    format!(
        "CREATE VIEW v_dashboard AS\nSELECT {};\n",
        cols.join(",\n       ")
    )
}

/// The per-entity view (its column list).
fn active_view(k: usize, columns: &str) -> String {
    format!(
        "CREATE VIEW v_{0}_active AS\n  SELECT {columns}\n  FROM {0}\n  WHERE status <> 'archived';\n",
        t(k)
    )
}

impl Writer<'_> {
    /// Writes the next migration; returns its version.
    fn migration(&mut self, name: &str, up: &str, down: &str) -> String {
        self.n += 1;
        let version = format!("{:04}", self.n);
        let base = self.dir.join(format!("{version}_{name}"));
        std::fs::write(base.with_extension("sql"), up).expect("write up");
        std::fs::write(format!("{}.down.sql", base.display()), down).expect("write down");
        version
    }

    fn plant(&mut self, version: String, what: &'static str) {
        self.planted.push(Planted { version, what });
    }

    fn opening(&mut self) {
        self.migration(
            "touch_updated_at",
            "CREATE FUNCTION touch_updated_at() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND\n$$;\n",
            "DROP FUNCTION touch_updated_at();\n",
        );
        self.migration(
            "create_audit_log",
            "CREATE TABLE audit_log (\n  id bigserial PRIMARY KEY,\n  at timestamptz NOT NULL DEFAULT now(),\n  actor text,\n  what text NOT NULL\n);\nCREATE INDEX audit_log_at_idx ON audit_log (at);\n",
            "DROP TABLE audit_log;\n",
        );
        self.migration(
            "create_dashboard",
            &dashboard(0),
            "DROP VIEW v_dashboard;\n",
        );
    }

    fn entity(&mut self, k: usize, defects: Option<[usize; 3]>) {
        let e = t(k);
        let defect = |i: usize| defects.is_some_and(|d| d[i] == k);
        // a: the table.
        let parent = if k == 0 {
            String::new()
        } else {
            format!(",\n  parent_id bigint REFERENCES {}(id)", t(k - 1))
        };
        self.migration(
            &format!("create_{e}"),
            &format!(
                "CREATE TABLE {e} (\n  id bigserial PRIMARY KEY,\n  name text NOT NULL,\n  status text NOT NULL DEFAULT 'new',\n  created_at timestamptz NOT NULL DEFAULT now(),\n  updated_at timestamptz{parent}\n);\n"
            ),
            &format!("DROP TABLE {e};\n"),
        );
        // b: indexes. Defect 0: the down script forgets one.
        let down = if defect(0) {
            format!("DROP INDEX {e}_created_at_idx;\n")
        } else {
            format!("DROP INDEX {e}_name_key;\nDROP INDEX {e}_created_at_idx;\n")
        };
        let v = self.migration(
            &format!("index_{e}"),
            &format!(
                "CREATE INDEX {e}_created_at_idx ON {e} (created_at DESC);\nCREATE UNIQUE INDEX {e}_name_key ON {e} (lower(name));\n"
            ),
            &down,
        );
        if defect(0) {
            self.plant(v, "down script leaves an index behind");
        }
        // c: a constrained column and a trigger (entity 7: a folded default).
        let mut up = format!(
            "ALTER TABLE {e} ADD COLUMN score integer NOT NULL DEFAULT 0 CHECK (score >= 0);\nCREATE TRIGGER {e}_touch BEFORE UPDATE ON {e}\n  FOR EACH ROW EXECUTE FUNCTION touch_updated_at();\n"
        );
        let mut down =
            format!("DROP TRIGGER {e}_touch ON {e};\nALTER TABLE {e} DROP COLUMN score;\n");
        if k == 7 {
            up.push_str(&format!(
                "ALTER TABLE {e} ADD COLUMN imported_at timestamptz DEFAULT 'now';\n"
            ));
            down.push_str(&format!("ALTER TABLE {e} DROP COLUMN imported_at;\n"));
        }
        self.migration(&format!("score_{e}"), &up, &down);
        // d: views (entity 4: a folded timestamp in one).
        let mut up = format!(
            "{}DROP VIEW v_dashboard;\n{}",
            active_view(k, "id, name, status, score"),
            dashboard(k + 1)
        );
        let mut down = format!(
            "DROP VIEW v_dashboard;\n{}DROP VIEW v_{e}_active;\n",
            dashboard(k)
        );
        if k == 4 {
            up.push_str(&format!(
                "CREATE VIEW v_{e}_recent AS\n  SELECT id, name FROM {e}\n  WHERE created_at > 'now'::timestamp - '1 mon'::interval;\n"
            ));
            down = format!("DROP VIEW v_{e}_recent;\n{down}");
        }
        self.migration(&format!("views_{e}"), &up, &down);
        // e: a type change under a dependent view. Defect 1: the down
        // script recreates the view with another column list; defect 2: it
        // forgets to drop the view first, so the ALTER fails.
        let view = active_view(k, "id, name, status, score");
        let up = format!(
            "DROP VIEW v_{e}_active;\nALTER TABLE {e} ALTER COLUMN status TYPE varchar(32);\n{view}"
        );
        let down = if defect(1) {
            format!(
                "DROP VIEW v_{e}_active;\nALTER TABLE {e} ALTER COLUMN status TYPE text;\n{}",
                active_view(k, "id, name, status")
            )
        } else if defect(2) {
            format!("ALTER TABLE {e} ALTER COLUMN status TYPE text;\n")
        } else {
            format!(
                "DROP VIEW v_{e}_active;\nALTER TABLE {e} ALTER COLUMN status TYPE text;\n{view}"
            )
        };
        let v = self.migration(&format!("status_type_{e}"), &up, &down);
        if defect(1) {
            self.plant(v, "down script recreates the view without a column");
        } else if defect(2) {
            self.plant(
                v,
                "down script alters a column a view depends on without dropping the view",
            );
        }
        // f: a function and a comment.
        self.migration(
            &format!("score_fn_{e}"),
            &format!(
                "CREATE FUNCTION {e}_score(p_id bigint) RETURNS integer\nLANGUAGE sql STABLE AS $$ SELECT score FROM {e} WHERE id = p_id $$;\nCOMMENT ON TABLE {e} IS 'entity {k}';\n"
            ),
            &format!("COMMENT ON TABLE {e} IS NULL;\nDROP FUNCTION {e}_score(bigint);\n"),
        );
        // g: data.
        let mut up = String::new();
        let _ = write!(
            up,
            "INSERT INTO {e} (name, score)\n  SELECT 'seed-' || g, g % 7 FROM generate_series(1, 20) AS g;\nUPDATE {e} SET status = 'active' WHERE score > 3;\n"
        );
        self.migration(
            &format!("seed_{e}"),
            &up,
            &format!("DELETE FROM {e} WHERE name LIKE 'seed-%';\n"),
        );
    }
}
