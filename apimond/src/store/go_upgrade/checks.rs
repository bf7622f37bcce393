//! Reading the Go program's rows: typed columns whose errors name the row, and the
//! bounds the Go program itself enforced, checked so that a row it could not have
//! written stops the upgrade with a message rather than landing half-understood.

use rusqlite::Row;

use super::super::{Result, StoreError};

/// A row the upgrade cannot take; the message names it and says why.
pub(super) fn bad(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// A column of a Go row, its conversion error naming the row and the column.
pub(super) fn get<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize, what: &str) -> Result<T> {
    row.get(idx).map_err(|e| {
        let column = row.as_ref().column_name(idx).unwrap_or("?").to_string();
        bad(format!("{what}: column {column}: {e}"))
    })
}

/// A length in characters within the Go program's bounds.
pub(super) fn check_len(
    what: &str,
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<()> {
    let n = value.chars().count();
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(bad(format!(
            "{what}: {field} has {n} characters; the Go program allows {min} to {max}"
        )))
    }
}

/// A number within the Go program's bounds.
pub(super) fn check_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<()> {
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(bad(format!(
            "{what}: {field} is {value}; the Go program allows {min} to {max}"
        )))
    }
}
