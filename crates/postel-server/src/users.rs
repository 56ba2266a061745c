//! Users who may authenticate: a file of `name:hash` lines, the hash in PHC
//! format (argon2id). Passwords never appear in it or in logs.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Why the users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing the file failed.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `name:hash`.
    #[error("users file {path}, line {line}: not `name:argon2-hash`")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based.
        line: usize,
    },
    /// A name that cannot be stored.
    #[error("user name {0:?} may not be empty or contain ':' or white space")]
    BadName(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The users, loaded once at start.
#[derive(Debug, Clone, Default)]
pub struct Users {
    entries: Vec<(String, String)>,
}

impl Users {
    /// Reads the file; a missing file means no users.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err(UsersError::Malformed {
                    path: path.display().to_string(),
                    line: i + 1,
                });
            };
            if PasswordHash::new(hash).is_err() {
                return Err(UsersError::Malformed {
                    path: path.display().to_string(),
                    line: i + 1,
                });
            }
            entries.push((name.to_lowercase(), hash.to_owned()));
        }
        Ok(Users { entries })
    }

    /// True when `name` and `password` match an entry. Slow on purpose (the
    /// hash's cost): call it off the I/O threads.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let name = name.to_lowercase();
        let Some((_, hash)) = self.entries.iter().find(|(n, _)| *n == name) else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    /// Local parts of users whose name is `local@domain`: they have mailboxes.
    pub fn local_parts(&self, domain: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|(n, _)| {
                let (local, d) = n.rsplit_once('@')?;
                d.eq_ignore_ascii_case(domain).then(|| local.to_owned())
            })
            .collect()
    }

    /// Adds or replaces a user in the file, with a fresh salt.
    pub fn add(path: &Path, name: &str, password: &str) -> Result<(), UsersError> {
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(UsersError::BadName(name.to_owned()));
        }
        let io = |source| UsersError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut salt = [0u8; 16];
        fill_random(&mut salt).map_err(io)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| UsersError::Hash(e.to_string()))?
            .to_string();
        let old = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let name = name.to_lowercase();
        let mut out = String::new();
        for line in old
            .lines()
            .filter(|l| l.split_once(':').is_none_or(|(n, _)| n != name))
        {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&name);
        out.push(':');
        out.push_str(&hash);
        out.push('\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

impl Users {
    /// The names in the users file, in its order.
    pub fn names(path: &Path) -> Result<Vec<String>, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(t
                .lines()
                .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(UsersError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Removes a user from the file; false when there was none by that name.
    pub fn delete(path: &Path, name: &str) -> Result<bool, UsersError> {
        let io = |source| UsersError::Io {
            path: path.display().to_string(),
            source,
        };
        let old = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(e)),
        };
        let name = name.to_lowercase();
        let kept: Vec<&str> = old
            .lines()
            .filter(|l| l.split_once(':').is_none_or(|(n, _)| n != name))
            .collect();
        if kept.len() == old.lines().count() {
            return Ok(false);
        }
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(true)
    }
}

/// Fills `buf` from the kernel's random source.
pub fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}
