//! Reading request lines from socket peers with bounded memory: a line may be up to
//! [`MAX_LINE`] bytes (an import chunk), but beyond a small allowance per connection
//! its bytes come from one budget shared by all connections, so a hundred peers each
//! sending almost 4 MiB cannot make the daemon hold 400 MiB. A line that started
//! must end within [`LINE_TIMEOUT`], so nobody holds the budget by stalling.

use std::sync::Arc;
use std::time::Duration;

use shared::rpc::MAX_LINE;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes of a line any connection may buffer without drawing on the shared budget.
const FREE_BYTES: usize = 32 * 1024;
/// The shared budget is counted in units of this many bytes.
const UNIT: usize = 32 * 1024;
/// Bytes all connections together may buffer beyond their free allowance: room for
/// a few import chunks at once.
pub const SHARED_BUDGET: usize = 16 * 1024 * 1024;
/// Longest a peer may take to finish a line it started.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared budget of line bytes.
pub type LineBudget = Arc<Semaphore>;

pub fn budget() -> LineBudget {
    Arc::new(Semaphore::new(SHARED_BUDGET / UNIT))
}

/// One line read from a peer.
pub enum Line {
    Text(String),
    /// Longer than [`MAX_LINE`]; its bytes were skipped up to the newline.
    TooLong,
    /// The shared budget was spent by other connections; skipped likewise.
    Busy,
}

/// Why a line was being skipped.
#[derive(Clone, Copy, PartialEq)]
enum Skip {
    No,
    TooLong,
    Busy,
}

/// Reads lines of at most [`MAX_LINE`] bytes. A line too long, or one the budget
/// cannot hold, is skipped (not buffered), so the connection stays usable after it.
/// The partial line lives here, not in the future, so a read cancelled by `select!`
/// (an event to send) loses nothing.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    skip: Skip,
    budget: LineBudget,
    held: Vec<OwnedSemaphorePermit>,
    /// When the line in progress must be finished.
    deadline: Option<Instant>,
}

impl<R: tokio::io::AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, budget: LineBudget) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            skip: Skip::No,
            budget,
            held: Vec::new(),
            deadline: None,
        }
    }

    fn take(&mut self) -> Line {
        let line = match self.skip {
            Skip::TooLong => Line::TooLong,
            Skip::Busy => Line::Busy,
            Skip::No => Line::Text(String::from_utf8_lossy(&self.buf).into_owned()),
        };
        self.forget_line();
        line
    }

    /// Drops the partial line and gives its budget back.
    fn forget_line(&mut self) {
        self.buf = Vec::new();
        self.held.clear();
        self.skip = Skip::No;
        self.deadline = None;
    }

    /// Room for `more` bytes of the current line, from the allowance or the budget.
    fn room_for(&mut self, more: usize) -> Skip {
        let want = self.buf.len() + more;
        if want > MAX_LINE {
            return Skip::TooLong;
        }
        let units = want.saturating_sub(FREE_BYTES).div_ceil(UNIT);
        while self.held.len() < units {
            match self.budget.clone().try_acquire_owned() {
                Ok(p) => self.held.push(p),
                Err(_) => return Skip::Busy,
            }
        }
        Skip::No
    }

    /// The next line; `None` at the end. An error when a started line is not
    /// finished within [`LINE_TIMEOUT`].
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        use tokio::io::AsyncBufReadExt;
        loop {
            let chunk = match self.deadline {
                None => self.inner.fill_buf().await?,
                Some(at) => match tokio::time::timeout_at(at, self.inner.fill_buf()).await {
                    Ok(chunk) => chunk?,
                    Err(_) => {
                        self.forget_line();
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "a request line was not finished in time",
                        ));
                    }
                },
            };
            if chunk.is_empty() {
                let pending = !self.buf.is_empty() || self.skip != Skip::No;
                return Ok(pending.then(|| self.take()));
            }
            let (len, used) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, Some(i + 1)),
                None => (chunk.len(), None),
            };
            if self.deadline.is_none() && (len > 0 || used.is_none()) {
                self.deadline = Some(Instant::now() + LINE_TIMEOUT);
            }
            if self.skip == Skip::No {
                self.skip = self.room_for(len);
                if self.skip == Skip::No {
                    let chunk = self.inner.fill_buf().await?;
                    self.buf.extend_from_slice(&chunk[..len]);
                } else {
                    // Skipped lines keep nothing.
                    self.buf = Vec::new();
                    self.held.clear();
                }
            }
            self.inner.consume(used.unwrap_or(len));
            if used.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], budget: LineBudget) -> Vec<String> {
        let mut r = LineReader::new(tokio::io::BufReader::new(input), budget);
        let mut out = Vec::new();
        while let Some(l) = r.next().await.unwrap() {
            out.push(match l {
                Line::Text(t) => t,
                Line::TooLong => "<too long>".into(),
                Line::Busy => "<busy>".into(),
            });
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_an_overlong_one_is_skipped() {
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 1]);
        input.extend(b"\nthree");
        assert_eq!(
            lines(&input, budget()).await,
            ["one", "two", "<too long>", "three"]
        );
    }

    #[tokio::test]
    async fn a_large_line_needs_the_shared_budget() {
        let big = vec![b'y'; 1024 * 1024];
        let mut input = big.clone();
        input.push(b'\n');
        input.extend(b"small\n");
        let empty = Arc::new(Semaphore::new(0));
        assert_eq!(lines(&input, empty).await, ["<busy>", "small"]);
        let shared = budget();
        let got = lines(&input, shared.clone()).await;
        assert_eq!(got[0].len(), big.len());
        assert_eq!(
            shared.available_permits(),
            SHARED_BUDGET / UNIT,
            "given back"
        );
    }
}
