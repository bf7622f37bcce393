//! What a subscription sends after its reply: one notification per event, and a
//! `lagged` notice when the subscriber fell behind and missed some.

use serde_json::{Value, json};

use super::Message;

#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// An event of the daemon's bus, as its JSON object (`type` names it).
    Event(Value),
    /// The subscriber read too slowly and missed this many events.
    Lagged { missed: u64 },
}

impl Notification {
    const EVENT: &'static str = "event";
    const LAGGED: &'static str = "lagged";

    pub fn to_message(&self) -> Message {
        match self {
            Notification::Event(e) => Message::notification(Self::EVENT, e.clone()),
            Notification::Lagged { missed } => {
                Message::notification(Self::LAGGED, json!({ "missed": missed }))
            }
        }
    }

    /// The notification a message carries; `None` for replies and unknown kinds
    /// (a newer daemon may send more).
    pub fn from_message(m: &Message) -> Option<Notification> {
        let params = m.params.clone().unwrap_or(Value::Null);
        match m.method.as_deref()? {
            Self::EVENT => Some(Notification::Event(params)),
            Self::LAGGED => Some(Notification::Lagged {
                missed: params["missed"].as_u64().unwrap_or(0),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_back_as_they_were_sent() {
        for n in [
            Notification::Event(json!({"type": "target_deleted", "target_id": 3})),
            Notification::Lagged { missed: 7 },
        ] {
            let line = n.to_message().to_line();
            let m: Message = serde_json::from_str(&line).unwrap();
            assert_eq!(Notification::from_message(&m), Some(n));
        }
    }
}
