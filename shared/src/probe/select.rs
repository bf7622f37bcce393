//! Which discovered models a run probes: the target's selection, exclusions and cap.

/// Applies `selected_models` (empty = all), `exclude_models` (globs) and `max_models`
/// (0 = all) to a discovered list, keeping its order.
pub fn select_models(
    discovered: &[String],
    selected: &[String],
    exclude: &[String],
    max_models: usize,
) -> Vec<String> {
    let mut out: Vec<String> = discovered
        .iter()
        .filter(|m| selected.is_empty() || selected.contains(m))
        .filter(|m| !super::route::matches_any(m, exclude))
        .cloned()
        .collect();
    if max_models > 0 {
        out.truncate(max_models);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_selection_filters_in_order() {
        let d: Vec<String> = ["a", "b-embed", "c", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(select_models(&d, &[], &[], 0), d);
        assert_eq!(
            select_models(&d, &["c".into(), "a".into()], &[], 0),
            ["a", "c"]
        );
        assert_eq!(
            select_models(&d, &[], &["*embed*".into()], 0),
            ["a", "c", "d"]
        );
        assert_eq!(select_models(&d, &[], &["*embed*".into()], 2), ["a", "c"]);
    }
}
