//! Prints where a domain's mail goes: one exchanger per line with its
//! preference and addresses, then the verdict.
//!
//! ```text
//! cargo run --example mx-lookup -- [--nameserver 127.0.0.1:5353] DOMAIN
//! ```

use std::net::SocketAddr;

use postel_mx::{HickoryResolver, RouteOptions, route};
use postel_proto::types::Host;

fn usage() -> ! {
    eprintln!("usage: mx-lookup [--nameserver ADDRESS:PORT] DOMAIN");
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut servers: Vec<SocketAddr> = Vec::new();
    let mut domain = None;
    while let Some(arg) = args.next() {
        if arg == "--nameserver" {
            match args.next().and_then(|a| a.parse().ok()) {
                Some(addr) => servers.push(addr),
                None => usage(),
            }
        } else {
            domain = Some(arg);
        }
    }
    let Some(domain) = domain else { usage() };
    let Ok(host) = Host::try_from(domain.as_str()) else {
        eprintln!("not a domain or address literal: {domain}");
        std::process::exit(2);
    };
    let resolver = if servers.is_empty() {
        HickoryResolver::system()
    } else {
        HickoryResolver::with_servers(&servers)
    };
    let resolver = match resolver {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    // Equal preferences in a different order each run, as RFC 5321 asks.
    let mut state = u64::from(std::process::id()) | 1;
    let mut random = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap_or(0)
    };
    match route(&resolver, &host, &RouteOptions::default(), &mut random).await {
        Ok(plan) => {
            for mx in &plan.exchangers {
                let addrs: Vec<String> = mx.addresses.iter().map(ToString::to_string).collect();
                println!("{:>5} {} {}", mx.preference, mx.name, addrs.join(" "));
            }
            let kind = if plan.implicit { "implicit MX" } else { "MX" };
            let n = plan.exchangers.len();
            let hosts = if n == 1 { "host" } else { "hosts" };
            println!("verdict: deliver ({kind}, {n} {hosts})");
        }
        Err(e) => {
            let (code, enhanced) = e.status();
            let kind = if e.is_permanent() {
                "permanent"
            } else {
                "temporary"
            };
            println!("verdict: {kind} failure {code} {enhanced}: {e}");
            std::process::exit(1);
        }
    }
}
