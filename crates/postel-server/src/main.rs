//! `postel`: the reference server and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use postel_queue::Queue;
use postel_server::config::Config;
use postel_server::control::{Verb, execute};
use postel_server::users::Users;

const HELP: &str = "postel: an SMTP server (submission, durable queue, MX delivery, Maildir)

usage:
  postel serve [--config FILE] [--dev-tls] [--log-format text|json]
  postel queue list|stats|flush [--config FILE]
  postel queue show|delete|hold|release ID [--config FILE]
  postel user add NAME [--config FILE]     (password read from standard input)
  postel COMMAND --help
  postel --version

Without --config, the embedded default: 127.0.0.1:2525, data under
./postel-data/, mail accepted for postmaster@localhost, nothing relayed.
";

const SERVE_HELP: &str = "postel serve [--config FILE] [--dev-tls] [--log-format text|json]

Runs the server until SIGTERM or SIGINT; SIGHUP reloads the certificate.
  --config FILE      the TOML configuration (see postel.example.toml)
  --dev-tls          generate a self-signed certificate when none is configured
  --log-format json  one JSON object per log line (default: text)
";

const QUEUE_HELP: &str = "postel queue VERB [ID] [--config FILE]

  list           every queued message, one line each
  stats          counts: messages, held, recipients by state, oldest
  show ID        one message with each recipient's state and last result
  flush          make every message due now
  delete ID      remove a message without a bounce
  hold ID        keep a message from delivery
  release ID     release a held message
Talks to the running server through its control socket, or opens the
queue directly when no server runs.
";

const USER_HELP: &str = "postel user add NAME [--config FILE]

Adds or replaces NAME in the users file with an argon2id hash of the
password read from the first line of standard input. NAME may be
local@domain: a user of a local domain also has a mailbox.
";

#[allow(clippy::struct_excessive_bools)] // One per command-line flag.
struct Args {
    words: Vec<String>,
    config: Option<PathBuf>,
    dev_tls: bool,
    help: bool,
    version: bool,
    json_logs: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        words: Vec::new(),
        config: None,
        dev_tls: false,
        help: false,
        version: false,
        json_logs: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => {
                args.config = Some(it.next().ok_or("--config needs a file")?.into());
            }
            "--dev-tls" => args.dev_tls = true,
            "--version" | "-V" => args.version = true,
            "--log-format" => match it.next().as_deref() {
                Some("json") => args.json_logs = true,
                Some("text") => args.json_logs = false,
                _ => return Err("--log-format takes text or json".into()),
            },
            "--help" | "-h" => args.help = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => args.words.push(a),
        }
    }
    Ok(args)
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Config::embedded().map_err(|e| e.to_string()),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("postel: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!("postel {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let help = match words.first() {
        Some(&"serve") => SERVE_HELP,
        Some(&"queue") => QUEUE_HELP,
        Some(&"user") => USER_HELP,
        _ => HELP,
    };
    if args.help || words.is_empty() {
        print!("{help}");
        return if args.help {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let config = match load_config(args.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postel: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postel: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match words.as_slice() {
        ["serve"] => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let logs = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr);
            if args.json_logs {
                // One object per line, its fields (queue_id, client, ...) as
                // keys, for log shippers.
                logs.json().init();
            } else {
                logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .init();
            }
            runtime
                .block_on(postel_server::serve(config, args.dev_tls))
                .map_err(|e| e.to_string())
        }
        ["queue", rest @ ..] => match Verb::parse(&rest.join(" ")) {
            Some(verb) => runtime.block_on(queue_command(&config, &verb)),
            None => Err(format!("unknown queue command\n\n{QUEUE_HELP}")),
        },
        ["user", "add", name] => add_user(&config, name),
        _ => Err(format!("unknown command\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postel: {e}");
            ExitCode::from(1)
        }
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

fn add_user(config: &Config, name: &str) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| e.to_string())?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Users::add(&config.users_file, name, password).map_err(|e| e.to_string())?;
    println!("user {name} written to {}", config.users_file.display());
    Ok(())
}
