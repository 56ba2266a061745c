//! `postel`: the reference server and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use postel_queue::Queue;
use postel_server::config::Config;
use postel_server::control::{Verb, execute};
use postel_server::users::Users;

/// postel: an SMTP server (submission, durable queue, MX delivery, Maildir
/// and LMTP). Without --config, the embedded default: 127.0.0.1:2525, data
/// under ./postel-data/, mail accepted for postmaster@localhost, nothing
/// relayed.
#[derive(Debug, Parser)]
#[command(name = "postel", version, about, long_about = None)]
struct Cli {
    /// The TOML configuration (see postel.example.toml).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server until SIGTERM or SIGINT; SIGHUP reloads the
    /// configuration, the users and the certificate.
    Serve {
        /// Generate a self-signed certificate when none is configured.
        #[arg(long)]
        dev_tls: bool,
        /// How log lines are written.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// The queue, through the running server's control socket, or opened
    /// directly when no server runs.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The users file.
    #[command(subcommand)]
    User(UserCommand),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// DKIM signing keys.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// The TLS delivery uses.
    #[command(subcommand, name = "tls-policy")]
    TlsPolicy(TlsPolicyCommand),
    /// Prints a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Every queued message, one line each.
    List {
        /// One JSON object per message instead.
        #[arg(long)]
        json: bool,
    },
    /// Counts: messages, held, recipients by state, oldest.
    Stats,
    /// One message with each recipient's state and last result.
    Show {
        /// The queue id.
        id: String,
        /// As a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Makes every message due now.
    Flush,
    /// Removes a message without a bounce.
    Delete {
        /// The queue id.
        id: String,
    },
    /// Keeps a message from delivery.
    Hold {
        /// The queue id.
        id: String,
    },
    /// Releases a held message.
    Release {
        /// The queue id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Adds or replaces NAME with an argon2id hash of the password read from
    /// the first line of standard input. NAME may be local@domain: a user of
    /// a local domain also has a mailbox.
    Add {
        /// The user name.
        name: String,
    },
    /// The users, one per line.
    List,
    /// Removes a user.
    Delete {
        /// The user name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum DkimCommand {
    /// Generates a signing key for DOMAIN, writes it under the data
    /// directory (or to --out), and prints the configuration to add and
    /// the TXT record to publish.
    Generate {
        /// The domain mail is signed for (the From address's).
        domain: String,
        /// The selector: the key's name in DNS (SELECTOR._domainkey.DOMAIN).
        #[arg(long, short)]
        selector: Option<String>,
        /// The algorithm.
        #[arg(long, short, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
        algorithm: KeyAlgorithm,
        /// Where to write the private key.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TlsPolicyCommand {
    /// Prints how mail to DOMAIN would use TLS, and why.
    Check {
        /// The recipient domain.
        domain: String,
        /// For a message sent with REQUIRETLS.
        #[arg(long)]
        requiretls: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeyAlgorithm {
    /// ed25519-sha256 (RFC 8463): short keys, fast; not every verifier has it.
    Ed25519,
    /// rsa-sha256, 2048 bits: every verifier has it.
    Rsa,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Checks the configuration without starting, and prints it as postel
    /// reads it, every default filled in.
    Check,
}

/// Why a command failed, with its exit status (the sysexits conventions).
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The configuration does not validate: 78 (`EX_CONFIG`).
    #[error("{0}")]
    Config(String),
    /// The server or queue could not be reached or used: 69 (`EX_UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
    /// Bad input to the command: 65 (`EX_DATAERR`).
    #[error("{0}")]
    Data(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Config(_) => 78,
            CliError::Unavailable(_) => 69,
            CliError::Data(_) => 65,
        })
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, CliError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::embedded(),
    }
    .map_err(|e| CliError::Config(e.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postel: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "postel", &mut std::io::stdout());
        return Ok(());
    }
    let config = load_config(cli.config.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Unavailable(format!("cannot start the runtime: {e}")))?;
    match cli.command {
        Command::Serve {
            dev_tls,
            log_format,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let logs = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr);
            if log_format == LogFormat::Json {
                // One object per line, its fields (queue_id, client, ...) as
                // keys, for log shippers.
                logs.json().init();
            } else {
                logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .init();
            }
            runtime
                .block_on(postel_server::serve(config, dev_tls))
                .map_err(|e| match e {
                    postel_server::ServeError::NeedsTls(_) => CliError::Config(e.to_string()),
                    other => CliError::Unavailable(other.to_string()),
                })
        }
        Command::Queue(q) => {
            let verb = match q {
                QueueCommand::List { json: false } => Verb::List,
                QueueCommand::List { json: true } => Verb::ListJson,
                QueueCommand::Stats => Verb::Stats,
                QueueCommand::Show { id, json: false } => Verb::Show(id),
                QueueCommand::Show { id, json: true } => Verb::ShowJson(id),
                QueueCommand::Flush => Verb::Flush,
                QueueCommand::Delete { id } => Verb::Delete(id),
                QueueCommand::Hold { id } => Verb::Hold(id),
                QueueCommand::Release { id } => Verb::Release(id),
            };
            runtime
                .block_on(queue_command(&config, &verb))
                .map_err(CliError::Unavailable)
        }
        Command::User(UserCommand::Add { name }) => add_user(&config, &name),
        Command::User(UserCommand::List) => {
            let names = Users::names(&config.users_file)
                .map_err(|e| CliError::Unavailable(e.to_string()))?;
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        Command::User(UserCommand::Delete { name }) => {
            match Users::delete(&config.users_file, &name) {
                Ok(true) => {
                    println!("user {name} removed from {}", config.users_file.display());
                    Ok(())
                }
                Ok(false) => Err(CliError::Data(format!("no user {name}"))),
                Err(e) => Err(CliError::Unavailable(e.to_string())),
            }
        }
        Command::Dkim(DkimCommand::Generate {
            domain,
            selector,
            algorithm,
            out,
        }) => dkim_generate(&config, &domain, selector, algorithm, out),
        Command::TlsPolicy(TlsPolicyCommand::Check { domain, requiretls }) => {
            let answer = runtime
                .block_on(postel_server::tls_policy(&config, &domain, requiretls))
                .map_err(|e| CliError::Unavailable(e.to_string()))?;
            println!("{answer}");
            Ok(())
        }
        Command::Config(ConfigCommand::Check) => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Completions { .. } => Ok(()),
    }
}

async fn queue_command(config: &Config, verb: &Verb) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if let Ok(mut sock) = tokio::net::UnixStream::connect(config.control_socket()).await {
        sock.write_all(format!("{}\n", verb.to_line()).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        sock.read_to_string(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        return match answer.split_once('\n') {
            Some(("ok", text)) => {
                print!("{text}");
                Ok(())
            }
            Some((_, text)) => Err(text.trim_end().to_owned()),
            None => Err("no answer from the server".into()),
        };
    }
    let queue = postel_server::backend::open(config)
        .await
        .map_err(|e| e.to_string())?;
    queue
        .recover(std::time::SystemTime::now())
        .await
        .map_err(|e| e.to_string())?;
    let text = execute(&queue, verb).await?;
    print!("{text}");
    Ok(())
}

fn add_user(config: &Config, name: &str) -> Result<(), CliError> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| CliError::Data(e.to_string()))?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(CliError::Data("no password on standard input".into()));
    }
    Users::add(&config.users_file, name, password).map_err(|e| CliError::Data(e.to_string()))?;
    println!("user {name} written to {}", config.users_file.display());
    Ok(())
}

fn dkim_generate(
    config: &Config,
    domain: &str,
    selector: Option<String>,
    algorithm: KeyAlgorithm,
    out: Option<PathBuf>,
) -> Result<(), CliError> {
    use std::io::Write as _;
    let (algorithm, name) = match algorithm {
        KeyAlgorithm::Ed25519 => (postel_auth::Algorithm::Ed25519, "ed25519"),
        KeyAlgorithm::Rsa => (postel_auth::Algorithm::Rsa, "rsa"),
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.unwrap_or_else(|| format!("postel-{name}"));
    let key = postel_auth::generate(algorithm).map_err(|e| CliError::Unavailable(e.to_string()))?;
    // The key must load as the server will load it.
    postel_auth::Signer::default()
        .add(&domain, &selector, &key.private_pem)
        .map_err(|e| CliError::Data(e.to_string()))?;
    let path = out.unwrap_or_else(|| {
        config
            .data_dir
            .join("dkim")
            .join(format!("{domain}.{selector}.pem"))
    });
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::Unavailable(format!("{}: {e}", parent.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| CliError::Unavailable(format!("{}: {e}", path.display())))?;
    file.write_all(key.private_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::Unavailable(format!("{}: {e}", path.display())))?;
    // A TXT record's strings hold at most 255 octets each.
    let value: Vec<String> = key
        .dns_record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    println!("key written to {}", path.display());
    println!();
    println!("Add to the configuration:");
    println!("[[dkim]]");
    println!("domain = \"{domain}\"");
    println!("selector = \"{selector}\"");
    println!("key = \"{}\"", path.display());
    println!();
    println!("Publish in DNS:");
    println!("{selector}._domainkey.{domain}. IN TXT {}", value.join(" "));
    Ok(())
}
