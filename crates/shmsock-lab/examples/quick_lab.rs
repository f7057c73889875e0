//! Runs the lab and prints the table: `cargo run --release -p shmsock-lab --example quick_lab
//! [--full] [--json PATH] [MECHANISM...]`. The `shmsock lab` command of the CLI does the same.

fn main() -> Result<(), shmsock_lab::LabError> {
    let mut opts = shmsock_lab::LabOptions {
        mode: shmsock_lab::Mode::Quick,
        ..Default::default()
    };
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--full" => opts.mode = shmsock_lab::Mode::Full,
            "--json" => opts.json = args.next().map(Into::into),
            _ => names.push(arg),
        }
    }
    if !names.is_empty() {
        opts.mechanisms = Some(names);
    }
    shmsock_lab::run(&opts).map(|_| ())
}
