//! The store's SQL text and the values it reads and checks: the statements
//! for one table, the read queries, a row as an entry, the scan's upper
//! bound and which table names are allowed.

use crate::DurabilityError;
use crate::store::StoredEntry;

/// PostgreSQL's limit on identifier length (`NAMEDATALEN - 1`).
const MAX_TABLE_NAME_BYTES: usize = 63;

/// The store's SQL, with the table name filled in.
pub(super) struct Statements {
    pub(super) append: String,
    pub(super) length: String,
    pub(super) read: String,
    pub(super) scan_range: String,
    pub(super) scan_from: String,
    pub(super) head: String,
    pub(super) heads_range: String,
    pub(super) heads_from: String,
    pub(super) compact: String,
}

impl Statements {
    pub(super) fn for_table(table: &str) -> Statements {
        let t = format!("\"{table}\"");
        Statements {
            // The conditional insert and, in the same round trip, the
            // stream's length as the insert's snapshot saw it (which does
            // not include the inserted row) when it inserted nothing: NULL
            // when it inserted. PostgreSQL evaluates the length's subquery
            // (an init plan) only when the CASE reaches it, so an append
            // that lands costs the insert's index probes and no backward
            // scan.
            append: format!(
                "WITH inserted AS (\
                   INSERT INTO {t} (stream, sequence, payload, stored_ms) \
                   SELECT $1, $2, $3, (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
                   WHERE CASE WHEN $2 = 0 \
                     THEN NOT EXISTS (SELECT 1 FROM {t} WHERE stream = $1) \
                     ELSE EXISTS (SELECT 1 FROM {t} WHERE stream = $1 AND sequence = $2 - 1) \
                   END \
                   ON CONFLICT (stream, sequence) DO NOTHING RETURNING sequence) \
                 SELECT EXISTS (SELECT 1 FROM inserted), \
                   CASE WHEN EXISTS (SELECT 1 FROM inserted) THEN NULL \
                     ELSE (SELECT COALESCE(MAX(sequence) + 1, 0) FROM {t} WHERE stream = $1) END"
            ),
            length: format!("SELECT COALESCE(MAX(sequence) + 1, 0) FROM {t} WHERE stream = $1"),
            read: format!(
                "SELECT sequence, payload, stored_ms FROM {t} \
                 WHERE stream = $1 AND sequence >= $2 ORDER BY sequence LIMIT $3"
            ),
            scan_range: format!(
                "SELECT stream, sequence, payload, stored_ms FROM {t} \
                 WHERE stream >= $1 AND stream < $2 ORDER BY stream, sequence"
            ),
            scan_from: format!(
                "SELECT stream, sequence, payload, stored_ms FROM {t} \
                 WHERE stream >= $1 ORDER BY stream, sequence"
            ),
            // A backward scan of the primary key's index, one row read:
            //   Limit -> Index Scan Backward using <t>_pkey on <t>
            //            Index Cond: (stream = $1)
            head: format!(
                "SELECT sequence, payload, stored_ms FROM {t} \
                 WHERE stream = $1 ORDER BY sequence DESC LIMIT 1"
            ),
            heads_range: heads_query(&t, "AND stream < $2", "$3"),
            heads_from: heads_query(&t, "", "$2"),
            // The bound is the head's sequence, read in the same statement:
            //   Delete -> InitPlan: Limit -> Index Only Scan Backward (stream = $1)
            //          -> Bitmap Index Scan on <t>_pkey
            //             (stream = $1 AND sequence < LEAST($2, max))
            // The head itself is never deleted.
            compact: format!(
                "DELETE FROM {t} WHERE stream = $1 AND sequence < \
                 LEAST($2, (SELECT MAX(sequence) FROM {t} WHERE stream = $1))"
            ),
        }
    }

    pub(super) fn create_table(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (\
               stream bytea NOT NULL, \
               sequence bigint NOT NULL CHECK (sequence >= 0), \
               payload bytea NOT NULL, \
               stored_ms bigint NOT NULL, \
               PRIMARY KEY (stream, sequence))"
        )
    }
}

/// The heads of at most `limit` streams from `$1` (inclusive), below the
/// bound in `until` if any, by name: a recursive skip scan that finds each
/// next stream name with one index probe (`stream > previous ORDER BY stream
/// LIMIT 1`) and its last entry with one backward probe, so a page costs
/// `2 * limit` index lookups however long the streams are. (`DISTINCT ON
/// (stream) ... ORDER BY stream, sequence DESC` would read every entry of
/// the range.) PostgreSQL 15's plan on a table of 10,000 streams of 100
/// entries (`EXPLAIN ANALYZE`, a page of 256: one row per loop everywhere):
///
/// ```text
/// Sort  (Sort Key: names.stream; 256 rows, in memory)
///   CTE names
///     ->  Recursive Union
///           ->  Limit
///                 ->  Index Only Scan using <t>_pkey
///                       Index Cond: ((stream >= $1) AND (stream < $2))
///           ->  Nested Loop (loops=256)
///                 ->  WorkTable Scan on names  (Filter: (n < $3))
///                 ->  Limit
///                       ->  Index Only Scan using <t>_pkey
///                             Index Cond: ((stream > names.stream) AND (stream < $2))
///   ->  Nested Loop
///         ->  CTE Scan on names
///         ->  Limit
///               ->  Index Scan Backward using <t>_pkey
///                     Index Cond: (stream = names.stream)
/// ```
fn heads_query(t: &str, until: &str, limit: &str) -> String {
    format!(
        "WITH RECURSIVE names (stream, n) AS ( \
           (SELECT stream, 1 FROM {t} WHERE stream >= $1 {until} ORDER BY stream LIMIT 1) \
           UNION ALL \
           SELECT next.stream, names.n + 1 FROM names CROSS JOIN LATERAL \
             (SELECT stream FROM {t} WHERE stream > names.stream {until} \
              ORDER BY stream LIMIT 1) AS next \
           WHERE names.n < {limit}) \
         SELECT names.stream, head.sequence, head.payload, head.stored_ms \
         FROM names CROSS JOIN LATERAL \
           (SELECT sequence, payload, stored_ms FROM {t} WHERE stream = names.stream \
            ORDER BY sequence DESC LIMIT 1) AS head \
         ORDER BY names.stream"
    )
}

/// A read-only query.
pub(super) enum Read {
    /// Up to `limit` entries of `stream` from `offset` (`None`: past the end).
    Stream {
        stream: Vec<u8>,
        offset: Option<i64>,
        limit: i64,
    },
    /// Every entry of the streams in `from..until` (`until` `None`: no end).
    Prefix {
        from: Vec<u8>,
        until: Option<Vec<u8>>,
    },
    /// The last entry of `stream`.
    Head { stream: Vec<u8> },
    /// The heads of at most `limit` streams in `from..until`, by name.
    Heads {
        from: Vec<u8>,
        until: Option<Vec<u8>>,
        limit: i64,
    },
}

/// The entry in `row`, whose columns from `first` are sequence, payload and
/// stored_ms.
pub(super) fn stored_entry(
    row: &tokio_postgres::Row,
    first: usize,
) -> Result<StoredEntry, tokio_postgres::Error> {
    let sequence: i64 = row.try_get(first)?;
    let payload: Vec<u8> = row.try_get(first + 1)?;
    let stored_ms: i64 = row.try_get(first + 2)?;
    Ok(StoredEntry {
        payload,
        // The CHECK constraint keeps sequences non-negative; a server clock
        // before 1970 reads as 0.
        sequence: u64::try_from(sequence).unwrap_or(0),
        timestamp: u64::try_from(stored_ms).unwrap_or(0),
    })
}

/// The smallest byte string above every string that starts with `prefix`,
/// or `None` when there is none (an empty prefix, or one of 0xFF bytes,
/// which UTF-8 never contains).
pub(super) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut successor = prefix.to_vec();
    while let Some(last) = successor.pop() {
        if last < u8::MAX {
            successor.push(last + 1);
            return Some(successor);
        }
    }
    None
}

pub(super) fn validate_table_name(table: &str) -> Result<(), DurabilityError> {
    let mut chars = table.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && table.len() <= MAX_TABLE_NAME_BYTES {
        Ok(())
    } else {
        Err(DurabilityError::ConfigError(format!(
            "postgres table name {table:?} is not allowed: use lowercase ASCII letters, digits \
             and '_', starting with a letter or '_', at most {MAX_TABLE_NAME_BYTES} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_successor_bounds_exactly_the_prefixed_strings() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn table_names_that_would_need_quoting_are_refused() {
        assert!(validate_table_name("atmostonce_entries").is_ok());
        assert!(validate_table_name("_t2").is_ok());
        for bad in ["", "Entries", "2t", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(validate_table_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
