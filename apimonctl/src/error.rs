//! Errors with the exit code they end the program with.

use shared::client::ClientError;
use shared::rpc::code;

#[derive(Debug)]
pub enum CliError {
    /// 2: the command line is wrong.
    Usage(String),
    /// 3: no daemon answered.
    Unreachable(String),
    /// 4: the target or run does not exist.
    NotFound(String),
    /// 5: anything else.
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::NotFound(_) => 4,
            CliError::Other(_) => 5,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m)
            | CliError::Unreachable(m)
            | CliError::NotFound(m)
            | CliError::Other(m) => f.write_str(m),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Unreachable(_) => CliError::Unreachable(format!(
                "{e}\nis apimond running? start it, or point --socket (APIMON_SOCKET) at its socket"
            )),
            ClientError::HttpUnreachable { .. } => CliError::Unreachable(e.to_string()),
            ClientError::Rpc(r) if r.code == code::NOT_FOUND => {
                CliError::NotFound(r.message.clone())
            }
            ClientError::Rpc(r) if r.code == code::INVALID_PARAMS => {
                CliError::Usage(r.message.clone())
            }
            ClientError::Rpc(r) => CliError::Other(r.message.clone()),
            ClientError::Http {
                status: 404,
                detail,
            } => CliError::NotFound(detail.clone()),
            ClientError::Http {
                status: 400,
                detail,
            } => CliError::Usage(detail.clone()),
            ClientError::Http {
                status: 401,
                detail,
            } => CliError::Other(format!("{detail}; pass the token with --token-env VAR")),
            _ => CliError::Other(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Other(e.to_string())
    }
}
