//! Server-sent events, parsed incrementally from a byte stream: events end at a blank
//! line; `\n`, `\r\n` and `\r` all end lines; several `data:` lines join with `\n`;
//! lines starting with `:` are comments; `data:` may come with or without a space.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    /// A `\r` ended the last chunk: a `\n` starting the next one belongs to it.
    pending_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut bytes = bytes;
        if self.pending_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.pending_cr = false;
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\n' || b == b'\r' {
                self.buf.extend_from_slice(&bytes[start..i]);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, &mut out);
                if b == b'\r' {
                    if i + 1 < bytes.len() {
                        if bytes[i + 1] == b'\n' {
                            i += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
        out
    }

    /// Ends the stream: an event not closed by a blank line still counts (relays often
    /// end with `data: [DONE]` and no blank line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            let mut out = Vec::new();
            self.line(&line, &mut out);
            if let Some(e) = out.pop() {
                return Some(e);
            }
        }
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if self.data.is_empty() {
            self.event = None;
            return None;
        }
        Some(SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) {
        if raw.is_empty() {
            if let Some(e) = self.dispatch() {
                out.push(e);
            }
            return;
        }
        if raw[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out: Vec<SseEvent> = chunks.iter().flat_map(|c| p.feed(c)).collect();
        out.extend(p.finish());
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.into(),
        }
    }

    #[test]
    fn plain_crlf_comments_and_multiline_data() {
        let got = all(&[b"event: a\ndata: 1\n\n: keep-alive\r\ndata:2\r\ndata: 3\r\n\r\n"]);
        assert_eq!(got, [ev(Some("a"), "1"), ev(None, "2\n3")]);
    }

    #[test]
    fn events_split_anywhere_across_chunks() {
        let text = b"data: {\"x\":1}\r\n\r\nevent: done\r\ndata: [DONE]\r\n\r\n";
        for cut in 1..text.len() {
            let got = all(&[&text[..cut], &text[cut..]]);
            assert_eq!(
                got,
                [ev(None, "{\"x\":1}"), ev(Some("done"), "[DONE]")],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_last_event_without_a_blank_line_still_counts() {
        assert_eq!(
            all(&[b"data: a\n\ndata: [DONE]"]),
            [ev(None, "a"), ev(None, "[DONE]")]
        );
        assert_eq!(all(&[b": only a comment\n"]), []);
    }
}
