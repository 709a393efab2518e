//! The pool as the repositories use it. Behind a transaction-pooling PgBouncer
//! (`DATABASE_PGBOUNCER`), a server connection is the client's only inside a
//! transaction, and PgBouncer 1.18 keeps no prepared statement across one: sqlx
//! sends every statement as a prepare, a `Sync`, then a bind and an execute, and
//! between the two PgBouncer may hand the server to another client. So there every
//! statement a repository runs outside a transaction runs in one of its own, and
//! the statement cache is off (the pooler's `server_reset_query = DEALLOCATE ALL`
//! drops what each transaction prepared).

use async_trait::async_trait;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    TransactionError, TransactionTrait,
};

/// A pool, with its statements wrapped in transactions behind PgBouncer.
#[derive(Clone)]
pub(super) struct Pool {
    inner: DatabaseConnection,
    /// Behind a transaction-pooling PgBouncer.
    bounced: bool,
}

impl Pool {
    pub(super) fn new(inner: DatabaseConnection, bounced: bool) -> Self {
        Self { inner, bounced }
    }

    /// Closes the pool's connections.
    pub(super) async fn close(&self) {
        let _ = self.inner.clone().close().await;
    }
}

impl std::ops::Deref for Pool {
    type Target = DatabaseConnection;

    fn deref(&self) -> &DatabaseConnection {
        &self.inner
    }
}

/// A statement's answer, run by [`Pool::alone`] in a transaction of its own.
type Run<'c, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, DbErr>> + Send + 'c>>;

impl Pool {
    /// Runs `run` in a transaction of its own (sea-orm's: committed when it
    /// answers, rolled back when it fails).
    async fn alone<T: Send>(
        &self,
        run: impl for<'c> FnOnce(&'c DatabaseTransaction) -> Run<'c, T> + Send,
    ) -> Result<T, DbErr> {
        self.inner.transaction(run).await.map_err(|e| match e {
            TransactionError::Connection(e) | TransactionError::Transaction(e) => e,
        })
    }
}

#[async_trait]
impl ConnectionTrait for Pool {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if !self.bounced {
            return self.inner.execute_raw(stmt).await;
        }
        self.alone(|tx| Box::pin(tx.execute_raw(stmt))).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // The simple protocol: one message, one answer, nothing prepared.
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if !self.bounced {
            return self.inner.query_one_raw(stmt).await;
        }
        self.alone(|tx| Box::pin(tx.query_one_raw(stmt))).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if !self.bounced {
            return self.inner.query_all_raw(stmt).await;
        }
        self.alone(|tx| Box::pin(tx.query_all_raw(stmt))).await
    }
}
