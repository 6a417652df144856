//! An incremental Server-Sent Events parser: bytes in, [`SseEvent`]s out.
//!
//! It follows the WHATWG event-stream rules (LF, CRLF or CR line ends; `:` comments; `event`,
//! `data`, `id` and `retry` fields; one optional space after the colon; multi-line `data`
//! joined with `\n`; events without data are not dispatched). Bytes are buffered until a line
//! ends, so UTF-8 code points split across network chunks decode intact. Unlike the spec, a
//! final event without a trailing blank line is still delivered by [`SseParser::finish`],
//! because some servers end their stream that way.
//!
//! ```
//! use agentry_llm::sse::SseParser;
//! let mut parser = SseParser::new();
//! let mut events = parser.push(b"event: delta\ndata: {\"a\":").unwrap();
//! events.extend(parser.push(b"1}\n\n").unwrap());
//! assert_eq!(events[0].event.as_deref(), Some("delta"));
//! assert_eq!(events[0].data, "{\"a\":1}");
//! ```

use std::time::Duration;

/// Lines and events above this size are refused, so a broken or hostile server cannot make the
/// parser buffer without bound.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, `None` for the default `message` type.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream (ids persist across events, as the spec says, so
    /// a reconnecting client can send it as `Last-Event-ID`).
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE line or event exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

#[derive(Debug, Clone)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next chunk belongs to that line end.
    skip_lf: bool,
    first_line: bool,
    event: Option<String>,
    data: String,
    last_id: Option<String>,
    retry: Option<Duration>,
    max_event_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            skip_lf: false,
            first_line: true,
            event: None,
            data: String::new(),
            last_id: None,
            retry: None,
            max_event_bytes,
        }
    }

    /// The reconnection delay from the last `retry:` field, if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The last event id seen.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds bytes and returns the events they complete.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            if self.line.is_empty() {
                self.line_done(&chunk[..end], &mut events)?;
            } else {
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut events)?;
            }
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            chunk = &chunk[next..];
        }
        self.line.extend_from_slice(chunk);
        if self.line.len() > self.max_event_bytes {
            return Err(self.too_large());
        }
        Ok(events)
    }

    /// Ends the stream: a final unterminated line and a final event without its blank line are
    /// processed and delivered.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events)?;
        }
        self.skip_lf = false;
        self.dispatch(&mut events);
        Ok(events.pop())
    }

    fn too_large(&self) -> SseError {
        SseError::TooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let text = String::from_utf8_lossy(line);
        let mut text: &str = &text;
        if self.first_line {
            self.first_line = false;
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        if text.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        if text.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event_bytes {
                    return Err(self.too_large());
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_string());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        events.push(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.push(chunk).unwrap());
        }
        events.extend(parser.finish().unwrap());
        events
    }

    fn data(event: &str) -> SseEvent {
        SseEvent {
            data: event.to_string(),
            ..SseEvent::default()
        }
    }

    #[test]
    fn parses_simple_events() {
        let events = parse_all(&[b"data: one\n\ndata: two\n\n"]);
        assert_eq!(events, [data("one"), data("two")]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = "event: delta\r\ndata: h\u{e9}llo \u{1F600}\r\n\r\n: keepalive\n\ndata:x\rdata: y\r\rid: 7\ndata: z\n\n";
        let whole = parse_all(&[stream.as_bytes()]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event.as_deref(), Some("delta"));
        assert_eq!(whole[0].data, "h\u{e9}llo \u{1F600}");
        assert_eq!(whole[1], data("x\ny"));
        assert_eq!(whole[2].id.as_deref(), Some("7"));
        let bytes = stream.as_bytes();
        for split in 0..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_all(&[a, b]), whole, "split at {split}");
        }
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&single), whole);
    }

    #[test]
    fn split_utf8_code_point_decodes_intact() {
        let text = "data: \u{1F600}\u{e9}\n\n".as_bytes();
        // Split inside the 4-byte emoji.
        let events = parse_all(&[&text[..8], &text[8..]]);
        assert_eq!(events, [data("\u{1F600}\u{e9}")]);
    }

    #[test]
    fn crlf_and_comments() {
        let events = parse_all(&[
            b": OPENROUTER PROCESSING\r\n\r\n",
            b"data: {\"a\":1}\r\n\r\n",
            b":\r\n",
            b"data: [DONE]\r\n\r\n",
        ]);
        assert_eq!(events, [data("{\"a\":1}"), data("[DONE]")]);
    }

    #[test]
    fn cr_at_chunk_end_then_lf() {
        let events = parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\n\n"]);
        assert_eq!(events, [data("a"), data("b")]);
    }

    #[test]
    fn multi_line_data_and_field_forms() {
        let events = parse_all(&[b"data\ndata:  two spaces\ndata:nospace\n\n"]);
        assert_eq!(events, [data("\n two spaces\nnospace")]);
    }

    #[test]
    fn ids_persist_and_reset() {
        let events =
            parse_all(&[b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: x\0y\ndata: d\n\n"]);
        let ids: Vec<Option<&str>> = events.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(ids, [Some("1"), Some("1"), None, None]);
    }

    #[test]
    fn retry_lines() {
        let mut parser = SseParser::new();
        parser.push(b"retry: 1500\n\nretry: soon\n\n").unwrap();
        assert_eq!(parser.retry(), Some(Duration::from_millis(1500)));
        parser.push(b"retry: 20\n").unwrap();
        assert_eq!(parser.retry(), Some(Duration::from_millis(20)));
        assert!(
            parser.finish().unwrap().is_none(),
            "retry alone is no event"
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_type_resets() {
        let events = parse_all(&[b"event: ping\n\ndata: x\n\n"]);
        assert_eq!(events, [data("x")]);
    }

    #[test]
    fn final_event_without_blank_line_is_delivered() {
        assert_eq!(parse_all(&[b"data: last"]), [data("last")]);
        assert_eq!(parse_all(&[b"data: last\n"]), [data("last")]);
        assert_eq!(
            parse_all(&[b"data: a\n\ndata: b\r"]),
            [data("a"), data("b")]
        );
        assert!(parse_all(&[b": just a comment"]).is_empty());
    }

    #[test]
    fn bom_and_unknown_fields() {
        let events = parse_all(&["\u{feff}data: a\nfoo: bar\n\n".as_bytes()]);
        assert_eq!(events, [data("a")]);
    }

    #[test]
    fn refuses_oversized_lines_and_events() {
        let mut parser = SseParser::with_max_event_bytes(8);
        assert_eq!(
            parser.push(b"data: 0123456789"),
            Err(SseError::TooLarge { limit: 8 })
        );
        let mut parser = SseParser::with_max_event_bytes(8);
        parser.push(b"data: 1234\n").unwrap();
        assert!(parser.push(b"data: 5678\n").is_err());
    }
}
