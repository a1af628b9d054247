//! `bhyt-verify pki ...`: the CA for operators, on the command line.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Pki, PkiError, Validity};
use crate::config::Config;
use crate::tls::identity::{Claims, Role, Serial};

#[derive(Args, Debug)]
pub struct PkiArgs {
    /// The CA directory (default: `<data_dir>/pki`).
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create the private CA (ECDSA P-256) and its empty CRL.
    Init {
        #[arg(long, default_value = "bhyt-verify private CA")]
        ca_name: String,
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a client certificate: station, his, auditor or admin.
    Issue {
        #[arg(long)]
        role: Role,
        /// Facility code (station and his).
        #[arg(long)]
        facility: Option<String>,
        /// Station id (station; optional for his).
        #[arg(long)]
        station: Option<String>,
        /// File name under issued/ (default: the station id, else the role).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Issue the server's certificate.
    IssueServer {
        #[arg(long, default_value = "server")]
        name: String,
        #[arg(long = "dns")]
        dns: Vec<String>,
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Revoke a certificate by name (or by serial) and re-sign the CRL; a running server picks
    /// it up within `crl_reload_secs` and refuses the holder's next call.
    Revoke {
        #[arg(long, required_unless_present = "serial", conflicts_with = "serial")]
        name: Option<String>,
        /// Hex serial, for a certificate whose file is gone.
        #[arg(long)]
        serial: Option<Serial>,
    },
    /// Re-sign the CRL (it states a next update 30 days ahead).
    Crl,
}

pub fn run(config: &Config, args: PkiArgs) -> Result<(), PkiError> {
    let dir = args.dir.unwrap_or_else(|| config.data_dir.join("pki"));
    match args.command {
        PkiCommand::Init { ca_name, days } => {
            let pki = Pki::init(&dir, &ca_name, Validity::days(days))?;
            println!("CA created: {}", pki.layout().ca_cert().display());
            println!("CRL: {}", pki.layout().crl_file().display());
        }
        PkiCommand::Issue {
            role,
            facility,
            station,
            name,
            days,
        } => {
            let name = name
                .or_else(|| station.clone())
                .unwrap_or_else(|| role.to_string());
            let claims = Claims::new(role, facility, station)?;
            let issued = Pki::open(&dir)?.issue_client(&name, &claims, Validity::days(days))?;
            print_issued(&issued);
        }
        PkiCommand::IssueServer {
            name,
            dns,
            ips,
            days,
        } => {
            let issued = Pki::open(&dir)?.issue_server(&name, &dns, &ips, Validity::days(days))?;
            print_issued(&issued);
        }
        PkiCommand::Revoke { name, serial } => {
            let pki = Pki::open(&dir)?;
            let serial = match (name, serial) {
                (Some(name), _) => pki.revoke(&name)?,
                (None, Some(serial)) => {
                    pki.revoke_serial(&serial, "-")?;
                    serial
                }
                (None, None) => unreachable!("clap requires --name or --serial"),
            };
            println!(
                "revoked serial {serial}; CRL {}",
                pki.layout().crl_file().display()
            );
        }
        PkiCommand::Crl => {
            let path = Pki::open(&dir)?.write_crl()?;
            println!("CRL re-signed: {}", path.display());
        }
    }
    Ok(())
}

fn print_issued(issued: &super::Issued) {
    println!(
        "issued {} serial {} valid until {}\n  certificate {}\n  key         {}",
        issued.name,
        issued.serial,
        issued.not_after.date(),
        issued.cert_path.display(),
        issued.key_path.display()
    );
}
