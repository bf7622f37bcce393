//! Which misbehaviour a requested model name asks for (see the crate docs for what
//! each one does on the wire).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    RoleOnlyHang,
    ReasoningOnly,
    Flaky429,
    Flaky,
    Err500,
    Err503,
    Err529,
    Err429,
    Quota,
    Err401,
    NotFound,
    Err400,
    MultiLine,
    Error200,
    CnFail,
    CodeFail,
    Midstream,
    NonJson,
    EmptyText,
    Reasoning,
    Slow,
    Hang,
    Huge,
    Endless,
    Cut,
    WrongModel,
    DatedModel,
    WrongAnswer,
    Filter,
    Garbage,
    /// Only from [`crate::Failure::ErrorAfterFirstByte`], never from a name.
    CutAfterFirstByte,
    Normal,
}

/// Checked in order: a name that contains a longer marker (`roleonlyhang`,
/// `reasoningonly`, `flaky429`) must not be taken for the shorter one it contains.
const MARKERS: &[(&str, Behaviour)] = &[
    ("roleonlyhang", Behaviour::RoleOnlyHang),
    ("reasoningonly", Behaviour::ReasoningOnly),
    ("flaky429", Behaviour::Flaky429),
    ("flaky", Behaviour::Flaky),
    ("err500", Behaviour::Err500),
    ("err503", Behaviour::Err503),
    ("err529", Behaviour::Err529),
    ("err429", Behaviour::Err429),
    ("quota", Behaviour::Quota),
    ("err401", Behaviour::Err401),
    ("notfound", Behaviour::NotFound),
    ("err400", Behaviour::Err400),
    ("multiline", Behaviour::MultiLine),
    ("error200", Behaviour::Error200),
    ("cnfail", Behaviour::CnFail),
    ("codefail", Behaviour::CodeFail),
    ("midstream", Behaviour::Midstream),
    ("nonjson", Behaviour::NonJson),
    ("emptytext", Behaviour::EmptyText),
    ("reasoning", Behaviour::Reasoning),
    ("slow", Behaviour::Slow),
    ("hang", Behaviour::Hang),
    ("huge", Behaviour::Huge),
    ("endless", Behaviour::Endless),
    ("cut", Behaviour::Cut),
    ("wrongmodel", Behaviour::WrongModel),
    ("datedmodel", Behaviour::DatedModel),
    ("wronganswer", Behaviour::WrongAnswer),
    ("filter", Behaviour::Filter),
    ("garbage", Behaviour::Garbage),
];

impl Behaviour {
    pub fn for_model(model: &str) -> Behaviour {
        MARKERS
            .iter()
            .find(|(marker, _)| model.contains(marker))
            .map_or(Behaviour::Normal, |(_, b)| *b)
    }
}

/// `relay` changes the framing, not the content, so it combines with the others.
pub(crate) fn relay_framing(model: &str) -> bool {
    model.contains("relay")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_markers_win_over_the_ones_they_contain() {
        assert_eq!(
            Behaviour::for_model("x-roleonlyhang"),
            Behaviour::RoleOnlyHang
        );
        assert_eq!(Behaviour::for_model("x-hang"), Behaviour::Hang);
        assert_eq!(
            Behaviour::for_model("o3-reasoningonly"),
            Behaviour::ReasoningOnly
        );
        assert_eq!(Behaviour::for_model("o3-reasoning"), Behaviour::Reasoning);
        assert_eq!(Behaviour::for_model("m-flaky429"), Behaviour::Flaky429);
        assert_eq!(Behaviour::for_model("m-flaky"), Behaviour::Flaky);
        assert_eq!(Behaviour::for_model("gpt-4o"), Behaviour::Normal);
        assert_eq!(Behaviour::for_model("gpt-relay"), Behaviour::Normal);
    }
}
