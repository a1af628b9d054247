//! reader-agent: the program at the reception desk (filled in by the agent issue).

fn main() {
    eprintln!("reader-agent: not yet built; see the README");
    std::process::exit(2);
}
