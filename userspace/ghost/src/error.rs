//! Errors that say what failed, on which file or ioctl, and with which errno.

use std::fmt;

/// A failed operation of the ghost library.
///
/// `what` names the operation and its object as a user would type it
/// (`write /sys/fs/ghost/enclave_1/tasks`, `GHOST_IOC_COMMIT_TXN on
/// /sys/fs/ghost/enclave_1/ctl`); `errno` is the kernel's answer, 0 when the
/// failure is not a system call's (a parse error, a bad argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The operation and the file, ioctl or syscall it was on.
    pub what: String,
    /// The errno, or 0.
    pub errno: i32,
    /// An explanation for errors that are not an errno, or extra context.
    pub detail: Option<String>,
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failed system call: `what` got `errno`.
    pub fn sys(what: impl Into<String>, errno: i32) -> Self {
        Self {
            what: what.into(),
            errno,
            detail: None,
        }
    }

    /// A failed system call, with the errno of the last call (read it
    /// before anything else can change it).
    pub fn last(what: impl Into<String>) -> Self {
        Self::sys(what, last_errno())
    }

    /// A failure that is not an errno (bad input, unexpected content).
    pub fn msg(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            errno: 0,
            detail: Some(detail.into()),
        }
    }

    /// Adds context to the error.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what)?;
        if self.errno != 0 {
            write!(f, ": {} ({})", errno_name(self.errno), strerror(self.errno))?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The C library's text for `errno` ("No such file or directory"), without
/// the "(os error N)" that `io::Error` appends.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The errno of the last failed system call of this thread.
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno (`EBUSY`), or `errno N`.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "0",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTTY => "ENOTTY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ESTALE => "ESTALE",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_and_errno() {
        let e = Error::sys("write /sys/fs/ghost/enclave_1/tasks", libc::EBUSY);
        let s = e.to_string();
        assert!(
            s.starts_with("write /sys/fs/ghost/enclave_1/tasks: EBUSY ("),
            "{s}"
        );
        let e = Error::msg("parse cpulist", "`1-` has no end");
        assert_eq!(e.to_string(), "parse cpulist: `1-` has no end");
    }
}
