//! GymAPI's schema, as sea-orm migrations that run on PostgreSQL and SQLite.
//!
//! The DDL is written out per backend rather than through the schema builder: the
//! two differ only in identity columns and timestamp types, and plain SQL keeps
//! the constraints that matter (uniques, foreign keys, checks) readable in review.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_initial;
mod m20261201_000001_list_indexes;
mod m20261201_000002_walk_ins_take_places;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_initial::Migration),
            Box::new(m20261201_000001_list_indexes::Migration),
            Box::new(m20261201_000002_walk_ins_take_places::Migration),
        ]
    }
}
