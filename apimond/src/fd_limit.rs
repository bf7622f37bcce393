//! The open-file limit: raised from its soft value to the hard one at start (each HTTP
//! connection, SQLite file, run log and outbound probe holds a descriptor; the common
//! soft default of 1,024 is far too few for a busy daemon), and read for the resources
//! report and the HTTP connection cap.

/// The process's `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The limit now; `None` if the system will not say.
pub fn current() -> Option<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    // rlim_t is u64 on Linux; the conversion keeps other targets building.
    #[allow(clippy::unnecessary_cast)]
    (rc == 0).then_some(FdLimit {
        soft: lim.rlim_cur as u64,
        hard: lim.rlim_max as u64,
    })
}

/// The limit apimond found at its first start in this process, before raising it.
static AT_START: std::sync::OnceLock<FdLimit> = std::sync::OnceLock::new();

pub fn at_start() -> Option<FdLimit> {
    AT_START.get().copied()
}

/// Descriptors open now.
pub fn open_count() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// Raises the soft limit to the hard one; returns the limit in force afterwards.
pub fn raise() -> Option<FdLimit> {
    let before = current()?;
    let _ = AT_START.set(before);
    if before.soft < before.hard {
        let lim = libc::rlimit {
            rlim_cur: before.hard as libc::rlim_t,
            rlim_max: before.hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we own.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        if rc != 0 {
            tracing::warn!(
                soft = before.soft,
                hard = before.hard,
                error = %std::io::Error::last_os_error(),
                "cannot raise the open-file limit"
            );
        }
    }
    current()
}
